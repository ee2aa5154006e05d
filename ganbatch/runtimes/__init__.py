"""Runtimes: how a generator runs (engine, device, precision), behind one call.

`open_runtime(model_uri, runtime="auto", device=..., precision=...)` opens a model for inference and returns a
`Runtime` (`ganbatch.runtimes.base`): `runtime(x, cond) -> (image, color, attention)`. The renderer, the animate
generate stage, eval and the benchmarks all call it, so every engine is checked by the same parity tests.

- `registry`: the engines, one module each (`torch_engine`, `onnxruntime_engine`, `openvino_engine`,
  `tensorrt_engine`); `source`: a model URI opened header first; `build`: one named engine for a model, its
  exported file kept in `cache`; `auto`: the fastest engine here that passes `gate`, decided once per model and
  machine (`machine`).

This package's modules import torch; `registry` does not (the job schema reads its names), and neither does
importing the package: its names below load their module when first used.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "open_runtime": "opener", "Runtime": "base", "RuntimeUnavailableError": "base", "PRECISIONS": "base",
    "RUNTIMES": "registry", "RuntimeCache": "cache", "build_runtime": "build", "ModelSource": "source",
    "model_info": "source", "open_source": "source",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
