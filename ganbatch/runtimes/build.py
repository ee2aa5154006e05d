"""One named engine for an opened model: the file it reads (the model's own, or the checkpoint exported into the
runtime cache once), then the engine's Runtime."""
from __future__ import annotations

import importlib.metadata
from pathlib import Path

import torch

from ganbatch.models.export import EXPORT_RECIPE, ExtraMissingError, export_generator
from ganbatch.runtimes.base import Runtime, RuntimeUnavailableError, check_precision
from ganbatch.runtimes.cache import RuntimeCache
from ganbatch.runtimes.registry import engine as get_engine
from ganbatch.runtimes.registry import runtime_class
from ganbatch.runtimes.source import ModelSource

# The packages whose versions change what an export holds (a new version may export or quantise differently).
_EXPORT_PACKAGES = ("torch", "onnx", "openvino", "nncf", "onnxruntime")


def package_versions(names=_EXPORT_PACKAGES) -> dict[str, str]:
    """Installed versions of the named distributions (absent ones left out)."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _run_precision(source: ModelSource, runtime: str, precision: str) -> str:
    """The precision an exported model runs at for the asked precision: its own (fp32, the default, means "as
    exported"), or a compute hint the engine applies to it (OpenVINO bf16, TensorRT fp16 on an fp32 file)."""
    written = source.exported_precision
    if precision in ("fp32", written):
        return written
    if (runtime, precision) in (("openvino", "bf16"), ("tensorrt", "fp16")) and written in ("fp32", "fp16"):
        return precision
    raise ValueError(f"{source.info.source} was exported at {written}; {runtime} runs it at {written} "
                     f"(export the model again with --precision {precision})")


def artifact_key(source: ModelSource, format: str, precision: str) -> dict:
    """The runtime cache's key of a checkpoint exported as format at precision (fp32 also serves bf16/fp16
    compute hints)."""
    stored = "int8" if precision == "int8" else "fp32"
    return {"model": source.identity, "format": format, "precision": stored, "versions": package_versions(),
            "recipe": EXPORT_RECIPE}


def engine_file(source: ModelSource, runtime: str, precision: str, cache: RuntimeCache) -> Path:
    """The file the engine reads: the exported model's own, or the checkpoint exported for it into the cache."""
    engine = get_engine(runtime)
    if engine.opens(source.kind, source.exported_precision):
        return source.path
    if source.kind != "checkpoint":
        readers = " or ".join(f"--runtime {name}" for name in ("onnxruntime", "openvino", "tensorrt")
                              if get_engine(name).opens(source.kind, source.exported_precision))
        what = f"an exported {source.exported_precision} {source.kind} model"
        raise RuntimeUnavailableError(f"{source.info.source} is {what}: run it with "
                                      f"{readers} (or leave --runtime at auto)")
    if precision in ("bf16", "fp16") and runtime == "onnxruntime":
        raise ValueError(f"onnxruntime runs a checkpoint at fp32 or int8; for {precision}, export the model with "
                         f"--precision {precision}, or use --runtime openvino (bf16) / tensorrt (fp16)")
    key = artifact_key(source, engine.export, precision)

    def build(out: Path) -> Path:
        return export_generator(source.generator, source.info, out.with_suffix(".onnx") if engine.export == "onnx"
                                else out, format=engine.export, precision=key["precision"])

    try:
        return cache.artifact(key, build)
    except ExtraMissingError as error:
        raise RuntimeUnavailableError(str(error)) from error


def build_runtime(source: ModelSource, runtime: str, *, device: torch.device, precision: str,
                  threads: int | None = None, cache: RuntimeCache | None = None) -> Runtime:
    """A Runtime of the engine named runtime (not "auto") for an opened model; see `open_runtime`."""
    engine = get_engine(runtime)
    device = torch.device(device)
    if source.kind == "checkpoint":
        check_precision(device, precision)
        run_at = precision
    else:
        run_at = _run_precision(source, runtime, precision)
    if not engine.installed():
        raise RuntimeUnavailableError(f"{engine.package} is not installed: pip install 'ganbatch[cpu-fast]' "
                                      f"(or pip install {engine.package})")
    if not engine.offers(device.type, run_at):
        offered = ", ".join(engine.precisions.get(device.type, ())) or "nothing"
        raise RuntimeUnavailableError(f"the {runtime} runtime runs {offered} on {device.type}, not {run_at}")
    if engine.export is None:
        if source.kind != "checkpoint":
            raise RuntimeUnavailableError(f"{source.info.source} is an exported {source.kind} model; {runtime} "
                                          "needs a checkpoint (leave --runtime at auto, or use an engine that reads "
                                          f"{source.kind})")
        return runtime_class(runtime)(source.generator, source.info, device=device, precision=run_at,
                                      threads=threads)
    cache = cache or RuntimeCache()
    path = engine_file(source, runtime, run_at, cache)
    options = {"compiled_cache": cache.compiled_folder(runtime)} if engine.keeps_compiled else {}
    return runtime_class(runtime)(path, source.info, device=device, precision=run_at, threads=threads, **options)
