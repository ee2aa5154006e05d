"""Quality of a generator measured on the synthetic world, where the true target face is known.

`evaluate_model(model_uri, identities, seed, out)` (what `ganbatch eval` runs) animates held-out synthetic identities
(seed 10_000 + seed) from a source to a target expression and reports fidelity (PSNR/SSIM), expression accuracy
(read by the shipped AU regressor), identity/background preservation and smoothness, each next to the "copy the
input" baseline. Modules: `metrics` (pure image and sequence metrics), `au_regressor` (the CNN that reads AUs off
faces), `benchmark` (pairs, running the model, aggregation), `report` (table and JSON), `html` (the report page),
`plan` (the dry run) and `job` (`run_eval` and `plan_eval`, the runner protocol of ganbatch.runner).
"""
from ganbatch.eval.au_regressor import AURegressor, AURegressorError, load_au_regressor, predict_aus
from ganbatch.eval.benchmark import (EVAL_SEED_OFFSET, eval_identities, evaluate_generator, evaluate_model,
                                     expression_pairs)
from ganbatch.eval.job import EvalResult, plan_eval, run_eval
from ganbatch.eval.report import format_report, write_report

__all__ = [
    "AURegressor",
    "AURegressorError",
    "EVAL_SEED_OFFSET",
    "EvalResult",
    "eval_identities",
    "evaluate_generator",
    "evaluate_model",
    "expression_pairs",
    "format_report",
    "load_au_regressor",
    "plan_eval",
    "predict_aus",
    "run_eval",
    "write_report",
]
