"""The runner of `kind: eval` jobs (`ganbatch.runner` protocol): an EvalJob through the benchmark, the JSON and
HTML reports written where the job says."""
import logging
from dataclasses import dataclass, field

from ganbatch.errors import EvalError
from ganbatch.jobs.eval import EvalJob

log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """The report (see `ganbatch.eval.benchmark`), its table for people (`message`), and the files written."""

    report: dict
    message: str
    outputs: dict[str, str] = field(default_factory=dict)
    ok: bool = True


def _library_errors() -> tuple[type[Exception], ...]:
    """The errors of the modules an evaluation uses that mean "this model or runtime cannot be used"."""
    from ganbatch.eval import AURegressorError
    from ganbatch.io.storage import StorageError
    from ganbatch.models.checkpoint import CheckpointError
    from ganbatch.runtimes import RuntimeUnavailableError

    return CheckpointError, StorageError, RuntimeUnavailableError, AURegressorError


def plan_eval(job: EvalJob) -> str:
    """The model's header (not its weights), the pairs and frames counted and the generator's time estimated."""
    from ganbatch.eval import plan

    try:
        return plan.describe_evaluation(job.model, identities=job.identities, random_pairs=job.random_pairs,
                                        path_frames=job.path_frames, chunk_size=job.chunk_size, runtime=job.runtime,
                                        device=job.device, trust_pickle=job.trust_pickle)
    except _library_errors() as error:
        raise EvalError(str(error)) from None


def run_eval(job: EvalJob) -> EvalResult:
    """Evaluate the job's model; writes the JSON report to `out` and the HTML page to `report` when given. The
    model is opened once, on the job's runtime: the page's pictures come from the engine that made its numbers."""
    from ganbatch.eval import evaluate_model, format_report
    from ganbatch.eval.html import write_html_report
    from ganbatch.runtimes import open_runtime

    try:
        engine = open_runtime(job.model, runtime=job.runtime, device=job.device, trust_pickle=job.trust_pickle)
        report = evaluate_model(engine, job.identities, job.seed, job.out, model_name=job.model,
                                random_pairs=job.random_pairs, path_frames=job.path_frames, device=job.device,
                                chunk_size=job.chunk_size)
        outputs = {"out": job.out} if job.out else {}
        if job.report:
            write_html_report(report, job.report, runtime=engine)
            outputs["report"] = job.report
    except _library_errors() as error:
        raise EvalError(str(error)) from None
    return EvalResult(report=report, message=format_report(report), outputs=outputs)
