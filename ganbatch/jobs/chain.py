"""`kind: pipeline`, a chain of jobs: named jobs run in file order, later steps using earlier steps' outputs as
`${steps.STEP.OUTPUT}` (named apart from animate/pipeline.py, the Ray streaming pipeline of one animate job).

`steps:` maps each step's name to its job. Until a pipeline runs, a field holding a reference keeps the reference
text, which validates as a placeholder path; the runner substitutes the real outputs and validates each step again
just before running it.
"""
import difflib
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ganbatch.jobs.animate import AnimateJob
from ganbatch.jobs.common import StrictModel
from ganbatch.jobs.aus import AusJob
from ganbatch.jobs.eval import EvalJob
from ganbatch.jobs.export import ExportJob
from ganbatch.jobs.paths import Path, format_path
from ganbatch.jobs.references import STEP_NAME, StepReference, step_references, strings
from ganbatch.jobs.synth import SynthJob
from ganbatch.jobs.train import TrainJob

STEP_MODELS = {model.model_fields["kind"].default: model
               for model in (SynthJob, TrainJob, AnimateJob, EvalJob, ExportJob, AusJob)}
Step = Annotated[Union[SynthJob, TrainJob, AnimateJob, EvalJob, ExportJob, AusJob], Field(discriminator="kind")]
# The pydantic error type of PipelineJob's reference check; the manifest loader reports these per field instead.
STEP_REFERENCE_ERROR = "step_reference"


def check_step_name(name: str) -> str:
    """Accept a step name that `${steps.NAME.OUTPUT}` and `--set steps.NAME.key=...` can spell."""
    if not STEP_NAME.fullmatch(name):
        raise ValueError("a step name starts with a letter and holds only letters, digits, '_' and '-'")
    return name


StepName = Annotated[str, AfterValidator(check_step_name)]


def reference_problems(job_data: Any) -> list[tuple[Path, str]]:
    """(path, message) for every `${steps.STEP.OUTPUT}` that names no earlier step or no output of that step.

    Outside a pipeline every step reference is a problem. References to a step of unknown kind are not checked
    (validation reports the kind).
    """
    if not isinstance(job_data, dict):
        return []
    if job_data.get("kind") != "pipeline":
        return [
            (path, "${steps...} references work only inside the steps of a `kind: pipeline` job")
            for path, text in strings(job_data) if step_references(text)
        ]
    steps = job_data.get("steps")
    if not isinstance(steps, dict):
        return []
    names = list(steps)
    problems = []
    for position, name in enumerate(names):
        for path, text in strings(steps[name], ("steps", name)):
            for reference in step_references(text):
                problem = _reference_problem(reference, steps, names[:position], name)
                if problem:
                    problems.append((path, problem))
    return problems


def _reference_problem(reference: StepReference, steps: dict, earlier: list[str], current: str) -> str:
    """Why step `current`'s `reference` cannot be resolved from the `earlier` steps, or '' when it can."""
    name, output = reference.step, reference.output
    if name == current:
        return f"step '{name}' is this step; a step can use only earlier steps' outputs"
    if name not in earlier:
        if name in steps:
            return f"step '{name}' runs later; a step can use only earlier steps' outputs"
        close = difflib.get_close_matches(name, earlier, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"no earlier step named '{name}'; earlier steps: {', '.join(earlier) or 'none'}{hint}"
    kind = steps[name].get("kind") if isinstance(steps[name], dict) else None
    if kind not in STEP_MODELS:
        return ""
    outputs = STEP_MODELS[kind].OUTPUTS
    if output not in outputs:
        close = difflib.get_close_matches(output, outputs, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"step '{name}' ({kind}) has no output '{output}'; its outputs: {', '.join(outputs)}{hint}"
    return ""


class PipelineJob(StrictModel):
    """Run `steps` in file order; a step may refer to an earlier step's output as `${steps.STEP.OUTPUT}`."""

    kind: Literal["pipeline"] = "pipeline"
    steps: dict[StepName, Step] = Field(
        min_length=1, description="step name -> job, run in order; a failed step stops the pipeline"
    )

    @field_validator("steps", mode="before")
    @classmethod
    def _steps_are_named(cls, steps: Any) -> Any:
        if isinstance(steps, list):
            raise ValueError("map each step's name to its job (`train: {kind: train, ...}`) instead of listing steps")
        return steps

    @model_validator(mode="after")
    def _references_resolve(self):
        problems = reference_problems(self.model_dump())
        if problems:
            text = "; ".join(f"{format_path(path)}: {message}" for path, message in problems)
            raise PydanticCustomError(STEP_REFERENCE_ERROR, "{problems}", {"problems": text})
        return self
