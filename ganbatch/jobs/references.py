"""`${...}` references inside job data: `${env:NAME}` (an environment variable; `${env:NAME:-default}` gives the
text after `:-` when NAME is unset) and `${steps.STEP.OUTPUT}` (an output of an earlier pipeline step).

Job data here is plain YAML-shaped data (dicts, lists, scalars). References live in string values, never in keys.
"""
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ganbatch.jobs.paths import Path

REFERENCE = re.compile(r"\$\{([^{}]*)\}")
_ENV_NAME = re.compile(r"env:([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?")
STEP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")  # a pipeline step's key under `steps:`
_STEP_OUTPUT = re.compile(rf"steps\.({STEP_NAME.pattern})\.([A-Za-z_][A-Za-z0-9_]*)")
REFERENCE_FORMS = "${env:NAME}, ${env:NAME:-default} or ${steps.STEP.OUTPUT}"
UNSET_ENV = "environment variable {} is not set"  # the problem an unset variable without a default gives
_UNSET_ENV = re.compile(re.escape(UNSET_ENV).replace(r"\{\}", "([A-Za-z_][A-Za-z0-9_]*)"))


def unset_env_variable(message: str) -> str | None:
    """The variable named by an UNSET_ENV problem message, else None (`validate` reports those as notes)."""
    match = _UNSET_ENV.fullmatch(message)
    return match.group(1) if match else None


@dataclass(frozen=True)
class StepReference:
    """`${steps.STEP.OUTPUT}`: output OUTPUT of the pipeline step named STEP."""

    step: str
    output: str


def strings(data: Any, path: Path = ()) -> Iterator[tuple[Path, str]]:
    """Every string value in nested dicts and lists, with its path."""
    if isinstance(data, str):
        yield path, data
    elif isinstance(data, Mapping):
        for key, value in data.items():
            yield from strings(value, path + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from strings(value, path + (index,))


def map_strings(data: Any, function: Callable[[Path, str], Any], path: Path = ()) -> Any:
    """A copy of `data` with every string value replaced by `function(path, value)`."""
    if isinstance(data, str):
        return function(path, data)
    if isinstance(data, Mapping):
        return {key: map_strings(value, function, path + (key,)) for key, value in data.items()}
    if isinstance(data, list):
        return [map_strings(value, function, path + (index,)) for index, value in enumerate(data)]
    return data


def step_references(text: str) -> list[StepReference]:
    """The `${steps.STEP.OUTPUT}` references in a string."""
    found = []
    for match in REFERENCE.finditer(text):
        step = _STEP_OUTPUT.fullmatch(match.group(1))
        if step:
            found.append(StepReference(step.group(1), step.group(2)))
    return found


def _malformed(text: str) -> bool:
    """Whether a string holds a `${...}` that is neither an env nor a step reference."""
    return any(
        not (_ENV_NAME.fullmatch(body) or _STEP_OUTPUT.fullmatch(body))
        for body in (match.group(1) for match in REFERENCE.finditer(text))
    )


@dataclass
class EnvResolution:
    """Job data with `${env:NAME}` replaced by the variables' values.

    `templates` keeps the original text of every string that held a reference (path -> text) and `values` the
    variables used (name -> value), so output meant for people can show `${env:NAME}` instead of a value that may be
    secret. `problems` lists (path, message) for unset variables and references of no known form.
    """

    data: Any
    templates: dict[Path, str]
    values: dict[str, str]
    problems: list[tuple[Path, str]]


def resolve_env(data: Any, environ: Mapping[str, str] = os.environ) -> EnvResolution:
    """Replace `${env:NAME}` in every string value; step references are left in place for the pipeline runner."""
    templates: dict[Path, str] = {}
    values: dict[str, str] = {}
    problems: list[tuple[Path, str]] = []

    def substitute(path: Path, text: str) -> str:
        if REFERENCE.search(text) is None:
            return text
        templates[path] = text
        if _malformed(text):
            problems.append((path, f"unknown ${{...}} reference; use {REFERENCE_FORMS}"))

        def value_of(match: re.Match) -> str:
            env = _ENV_NAME.fullmatch(match.group(1))
            if env is None:
                return match.group(0)
            if env.group(1) not in environ:
                if env.group(2) is not None:
                    return env.group(2)
                problems.append((path, UNSET_ENV.format(env.group(1))))
                return match.group(0)
            values[env.group(1)] = environ[env.group(1)]
            return environ[env.group(1)]

        return REFERENCE.sub(value_of, text)

    return EnvResolution(map_strings(data, substitute), templates, values, problems)


def substitute_step_outputs(data: Any, outputs: Mapping[str, Mapping[str, str]]) -> Any:
    """A copy of `data` with every `${steps.STEP.OUTPUT}` replaced by `outputs[STEP][OUTPUT]`."""

    def value_of(match: re.Match) -> str:
        step = _STEP_OUTPUT.fullmatch(match.group(1))
        return outputs[step.group(1)][step.group(2)] if step else match.group(0)

    return map_strings(data, lambda path, text: REFERENCE.sub(value_of, text))
