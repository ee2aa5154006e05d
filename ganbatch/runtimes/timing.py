"""How fast a model's generator runs here: one timed call through its runtime, for the time estimates of
`ganbatch animate --dry-run` and `ganbatch eval --dry-run` (both layers above import it from here)."""
import time

import numpy as np

from ganbatch.families import get_family
from ganbatch.runtimes.opener import open_runtime


def generator_seconds_per_frame(model_uri: str, *, chunk_size: int, runtime: str = "torch", device: str = "cpu",
                                trust_pickle: bool = False) -> float:
    """Seconds per frame of the model's generator on one batch of `chunk_size` frames, after one warm-up call."""
    import torch

    engine = open_runtime(model_uri, runtime=runtime, device=device, trust_pickle=trust_pickle,
                          batch_size=chunk_size, tune=False)
    family = get_family(engine.info.family)
    size = engine.info.image_size or family.default_image_size
    x = torch.zeros(chunk_size, 3, size, size)
    cond = family.targets_to_cond(np.zeros((chunk_size, *family.target_shape), np.float32), size)
    engine(x, cond)
    started = time.perf_counter()
    engine(x, cond)
    return (time.perf_counter() - started) / chunk_size
