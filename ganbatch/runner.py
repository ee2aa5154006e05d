"""Run or plan a validated job: each kind goes to its own runner, imported only when needed, and pipelines run
their steps in order, feeding earlier steps' outputs into later ones.

Runner protocol: the module for kind K (RUNNER_MODULES: the package `ganbatch.K` where the kind is a package of its
own, animate, train, eval; else the module `ganbatch.K_job`) has `run_K(job)`, returning a result with `.ok: bool`
and `.outputs: dict[str, str]` (keys: the job model's OUTPUTS) and optionally `.message: str` (text for people, e.g.
eval's table), and `plan_K(job) -> str`, a short plan for --dry-run. Both raise a `ganbatch.errors.JobError` for
anything the user can fix. Heavy modules (Ray, torch models) load only when a job of that kind is planned or run.
"""
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from ganbatch.errors import JobError
from ganbatch.jobs.paths import format_path
from ganbatch.jobs.chain import PipelineJob
from ganbatch.jobs.references import step_references, strings, substitute_step_outputs

RUNNER_MODULES = {"synth": "ganbatch.synth_job", "train": "ganbatch.train", "animate": "ganbatch.animate",
                  "eval": "ganbatch.eval", "export": "ganbatch.export_job", "aus": "ganbatch.aus_job"}


class JobResult(Protocol):
    """What every runner returns."""

    ok: bool
    outputs: dict[str, str]


class PipelineError(JobError):
    """A pipeline step could not start: its job, with earlier steps' outputs filled in, is not valid."""


@dataclass
class PipelineResult:
    """The steps that ran (name, result), in order; `outputs` maps `STEP.OUTPUT` to each step output's URI."""

    ok: bool
    steps: list[tuple[str, Any]] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)


def _runner(kind: str, action: str) -> Callable:
    return getattr(importlib.import_module(RUNNER_MODULES[kind]), f"{action}_{kind}")


def run_job(job: BaseModel, report: Callable[[str], None] = lambda line: None) -> JobResult:
    """Run a job of any kind; `report` receives one line per pipeline step as it starts."""
    if isinstance(job, PipelineJob):
        return run_pipeline(job, report)
    return _runner(job.kind, "run")(job)


def plan_job(job: BaseModel) -> str:
    """The human-readable plan of a job (several lines for a pipeline)."""
    if isinstance(job, PipelineJob):
        return plan_pipeline(job)
    return _runner(job.kind, "plan")(job)


def _uses_earlier_outputs(step: BaseModel) -> list[str]:
    """Names of the earlier steps whose outputs this step refers to."""
    names = (ref.step for _, text in strings(step.model_dump(mode="json")) for ref in step_references(text))
    return list(dict.fromkeys(names))


def plan_pipeline(job: PipelineJob) -> str:
    """Each step's plan; a step that uses earlier outputs is planned only when it runs (its inputs do not exist yet)."""
    lines = []
    for index, (name, step) in enumerate(job.steps.items(), start=1):
        lines.append(f"step {index}/{len(job.steps)} {name} ({step.kind})")
        sources = _uses_earlier_outputs(step)
        plan = f"uses the outputs of {', '.join(sources)}; planned when it starts" if sources else plan_job(step)
        lines += [f"  {line}" for line in plan.splitlines()]
    return "\n".join(lines)


def run_pipeline(job: PipelineJob, report: Callable[[str], None] = lambda line: None) -> PipelineResult:
    """Run the steps in order, substituting `${steps.STEP.OUTPUT}`; stop at the first step that is not ok."""
    result = PipelineResult(ok=True)
    outputs: dict[str, dict[str, str]] = {}
    for index, (name, step) in enumerate(job.steps.items(), start=1):
        report(f"step {index}/{len(job.steps)} {name} ({step.kind})")
        data = substitute_step_outputs(step.model_dump(mode="json"), outputs)
        try:
            ready = type(step).model_validate(data)
        except ValidationError as error:
            problems = "; ".join(f"{format_path(e['loc'])}: {e['msg']}" for e in error.errors())
            raise PipelineError(f"steps.{name} with earlier outputs filled in: {problems}") from None
        step_result = run_job(ready, report)
        result.steps.append((name, step_result))
        outputs[name] = dict(step_result.outputs)
        result.outputs.update({f"{name}.{key}": value for key, value in step_result.outputs.items()})
        if not step_result.ok:
            result.ok = False
            break
    return result
