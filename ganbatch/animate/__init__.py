"""`ganbatch animate`: face photos x targets -> one video each, streamed through three stages on Ray Data or, for a
small local job, in the command's own process.

Modules, one job each: `plan` (inputs x targets -> work items, output names, skipping finished ones), `targets`
(target specs + a face's source AUs/landmarks -> per-frame targets), `item` (the three steps of one video: prepare,
generate, encode), `stages` (prepare and encode as row functions: no Ray, no torch), `generate` (the generator
stage, the one that loads torch and a model), `ray_stream` (the stages as a Ray Data stream: CPU tasks, a generator
actor pool, CPU tasks), `in_process` (the same stages in this process, no Ray), `resources` (each stage's size from
the cluster or this machine), `watch` (noticing a Ray stream that cannot progress), `manifest` (the JSONL manifest),
`lock` (one run at a time per destination), `preview` (preview.gif), `gallery` (DEST/index.html) and `pipeline` (the
driver: plan, choose the executor, stream, manifest, progress, summary; `run_animate` and `plan_animate`, the runner
protocol of ganbatch.runner).
"""
import importlib
import sys
import types

__all__ = ["AnimateError", "AnimateResult", "plan_animate", "run_animate"]


def __getattr__(name: str):
    """The driver's names, imported when first asked for: a Ray worker that runs one stage imports that stage's
    module only, not the driver (nor, for the CPU stages, torch)."""
    if name in __all__:
        return getattr(importlib.import_module("ganbatch.animate.pipeline"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _AnimatePackage(types.ModuleType):
    """This package is also `ganbatch.animate(inputs, out=..., targets=...)`, the Python API's animate (the package
    and the function share the name: importing the package sets `ganbatch.animate` to it)."""

    def __call__(self, *args, **kwargs):
        from ganbatch.api import animate

        return animate(*args, **kwargs)


sys.modules[__name__].__class__ = _AnimatePackage
