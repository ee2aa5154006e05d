"""`open_runtime`: a model URI to a Runtime of a named engine, or of the one `auto` decides."""
from __future__ import annotations

import torch

from ganbatch.runtimes.base import Runtime
from ganbatch.runtimes.build import build_runtime
from ganbatch.runtimes.cache import RuntimeCache
from ganbatch.runtimes.registry import RUNTIMES
from ganbatch.runtimes.source import open_source


def open_runtime(model_uri: str, *, runtime: str = "auto", device="cpu", precision: str = "fp32",
                 threads: int | None = None, trust_pickle: bool = False, batch_size: int = 16,
                 cache: RuntimeCache | None = None, retune: bool = False, tune: bool = True) -> Runtime:
    """Open the model that model_uri names (`demo`, a checkpoint, an exported .onnx file or OpenVINO IR folder;
    local or s3://) on the given runtime, device and precision.

    runtime "auto" (the default) takes the fastest engine and precision here that passes the quality gate,
    decided once per model and machine for batches of batch_size and kept in the runtime cache (precision is then
    ignored; see `ganbatch.runtimes.auto`); an exported model runs on the engines that read it. A named engine
    runs a checkpoint at the asked precision (exported into the cache once for engines that read ONNX or
    OpenVINO IR; int8 calibrated on synthetic faces), and an exported model at the precision it was written at.
    retune makes auto measure again instead of using its cached decision (`ganbatch tune`); tune=False makes it
    use a cached decision or else its safe fallback, never measuring (a dry run's time estimate).
    Raises RuntimeUnavailableError when the engine cannot run this model here (naming what to install or use),
    ValueError for a bad runtime, precision or device, and the errors of opening the model
    (`ganbatch.models.locate.ModelNotFoundError`, the CheckpointError subclasses).
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    device = torch.device(device)
    cache = cache or RuntimeCache()
    with open_source(model_uri, trust_pickle=trust_pickle, cache=cache) as source:
        if runtime == "auto":
            from ganbatch.runtimes.auto import choose_runtime

            return choose_runtime(source, device=device, threads=threads, batch_size=batch_size, cache=cache,
                                  retune=retune, tune_now=tune)
        return build_runtime(source, runtime, device=device, precision=precision, threads=threads, cache=cache)

