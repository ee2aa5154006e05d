"""`ganbatch animate`: face photos x targets -> one video each, on a pool of Ray model actors.

Modules, one job each: `plan` (inputs x targets -> work items, output names, skipping finished ones), `targets`
(target specs + a face's source AUs/landmarks -> per-frame targets), `item` (one video, no Ray), `manifest` (the JSONL
manifest), `preview` (preview.gif) and `pipeline` (Ray actors, streaming, progress, summary; `run_animate` and
`plan_animate`, the runner protocol of ganbatch.runner).
"""
from ganbatch.animate.pipeline import AnimateError, AnimateResult, plan_animate, run_animate

__all__ = ["AnimateError", "AnimateResult", "plan_animate", "run_animate"]
