"""`kind: pipeline`: jobs run in order, later steps using earlier steps' outputs through `${steps.STEP.OUTPUT}`.

A step's name is its own `name:` field where its kind has one (a train step's run name), else its kind. Until a
pipeline runs, a field holding a reference keeps the reference text, which validates as a placeholder path; the runner
substitutes the real outputs and validates each step again just before running it.
"""
import difflib
from typing import Annotated, Any, Literal, Union

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from ganbatch.jobs.animate import AnimateJob
from ganbatch.jobs.common import StrictModel
from ganbatch.jobs.paths import Path, format_path
from ganbatch.jobs.references import step_references, strings
from ganbatch.jobs.synth import SynthJob
from ganbatch.jobs.train import TrainJob

STEP_MODELS = {model.model_fields["kind"].default: model for model in (SynthJob, TrainJob, AnimateJob)}
Step = Annotated[Union[SynthJob, TrainJob, AnimateJob], Field(discriminator="kind")]
# The pydantic error type of PipelineJob's reference check; the manifest loader reports these per field instead.
STEP_REFERENCE_ERROR = "step_reference"


def step_name(step: Union[dict, StrictModel]) -> Any:
    """The name later steps use for a step (its `name:`, else its kind), from a step's data or its model."""
    if isinstance(step, dict):
        return step.get("name") or step.get("kind")
    return getattr(step, "name", None) or step.kind


def reference_problems(job_data: Any) -> list[tuple[Path, str]]:
    """(path, message) for every `${steps.STEP.OUTPUT}` that names no earlier step or no output of that step.

    Outside a pipeline every step reference is a problem. Steps of unknown kind are skipped (validation reports them).
    """
    if not isinstance(job_data, dict):
        return []
    if job_data.get("kind") != "pipeline":
        return [
            (path, "${steps...} references work only inside the steps of a `kind: pipeline` job")
            for path, text in strings(job_data) if step_references(text)
        ]
    steps = job_data.get("steps")
    if not isinstance(steps, list):
        return []
    problems = []
    earlier: list[tuple[int, Any, str]] = []  # (index, name, kind)
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        for path, text in strings(step, ("steps", index)):
            for reference in step_references(text):
                problem = _reference_problem(reference.step, reference.output, earlier, steps, index)
                if problem:
                    problems.append((path, problem))
        if step.get("kind") in STEP_MODELS:
            earlier.append((index, step_name(step), step["kind"]))
    return problems


def _reference_problem(name: str, output: str, earlier: list[tuple[int, Any, str]], steps: list, current: int) -> str:
    """Why step `current`'s `${steps.name.output}` cannot be resolved from the `earlier` steps, or '' when it can."""
    matches = [(index, kind) for index, step, kind in earlier if str(step) == name]
    if not matches:
        later = [i for i in range(current, len(steps))
                 if isinstance(steps[i], dict) and str(step_name(steps[i])) == name]
        if later and later[0] == current:
            return f"step '{name}' is this step; a step can use only earlier steps' outputs"
        if later:
            return f"step '{name}' is steps[{later[0]}], which runs later; a step can use only earlier steps' outputs"
        names = [str(step) for _, step, _ in earlier]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"no earlier step named '{name}'; earlier steps: {', '.join(names) or 'none'}{hint}"
    if len(matches) > 1:
        where = " and ".join(f"steps[{index}]" for index, _ in matches)
        return f"step name '{name}' is ambiguous: {where} both have it"
    kind = matches[0][1]
    outputs = STEP_MODELS[kind].OUTPUTS
    if output not in outputs:
        close = difflib.get_close_matches(output, outputs, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"step '{name}' ({kind}) has no output '{output}'; its outputs: {', '.join(outputs)}{hint}"
    return ""


class PipelineJob(StrictModel):
    """Run `steps` in order; a step may refer to an earlier step's output as `${steps.STEP.OUTPUT}`."""

    kind: Literal["pipeline"] = "pipeline"
    steps: list[Step] = Field(min_length=1, description="jobs run in order; a failed step stops the pipeline")

    @model_validator(mode="after")
    def _references_resolve(self):
        problems = reference_problems(self.model_dump())
        if problems:
            text = "; ".join(f"{format_path(path)}: {message}" for path, message in problems)
            raise PydanticCustomError(STEP_REFERENCE_ERROR, "{problems}", {"problems": text})
        return self
