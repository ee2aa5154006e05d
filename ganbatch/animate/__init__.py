"""`ganbatch animate`: face photos x targets -> one video each, as a streaming Ray Data pipeline.

Modules, one job each: `plan` (inputs x targets -> work items, output names, skipping finished ones), `targets`
(target specs + a face's source AUs/landmarks -> per-frame targets), `item` (the three steps of one video, no Ray:
prepare, generate, encode), `stages` (those steps as Ray Data stages: CPU tasks, a generator actor pool, CPU tasks),
`resources` (each stage's size from the cluster), `manifest` (the JSONL manifest), `preview` (preview.gif) and
`pipeline` (the driver: plan, stream, manifest, progress, summary; `run_animate` and `plan_animate`, the runner
protocol of ganbatch.runner).
"""
import sys
import types

from ganbatch.animate.pipeline import AnimateError, AnimateResult, plan_animate, run_animate

__all__ = ["AnimateError", "AnimateResult", "plan_animate", "run_animate"]


class _AnimatePackage(types.ModuleType):
    """This package is also `ganbatch.animate(inputs, out=..., targets=...)`, the Python API's animate (the package
    and the function share the name: importing the package sets `ganbatch.animate` to it)."""

    def __call__(self, *args, **kwargs):
        from ganbatch.api import animate

        return animate(*args, **kwargs)


sys.modules[__name__].__class__ = _AnimatePackage
