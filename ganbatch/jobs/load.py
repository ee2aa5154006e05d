"""Load a job: a YAML manifest and/or CLI values, `--set` overrides on top, `${env:NAME}` resolved, then validated.

Precedence, lowest first: the manifest's values, CLI option values, `--set dotted.key=value` overrides; pydantic
defaults fill whatever none of them gives. Every problem found is raised at once as a ManifestError whose lines name
the file and line (or the option) and the path of the value, e.g.
`jobs/x.yaml:14: targets[1].keyframes[0].aus.AU99: unknown action unit; known: AU1, AU2, ...`.
"""
import functools
import operator
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any, Optional, Union

import yaml
from pydantic import BaseModel, ValidationError

from ganbatch import safe_yaml
from ganbatch.jobs import JOB_ADAPTER, Job
from ganbatch.jobs.document import JobDocument, read_manifest
from ganbatch.jobs.paths import Path, parse_path
from ganbatch.jobs.chain import STEP_REFERENCE_ERROR, reference_problems
from ganbatch.jobs.problems import ManifestError, Origin, Problem
from ganbatch.jobs.references import resolve_env
from ganbatch.jobs.validation import validation_problems

# Keys that name credentials; a manifest must not hold them (it gets committed, copied and printed).
SECRET_KEY = re.compile(r"secret|passw(or)?d|token|credential|private_?key|access_?key|api_?key", re.IGNORECASE)
CREDENTIALS_ADVICE = (
    "credentials do not belong in a job file; keep them in the environment (AWS_ACCESS_KEY_ID, "
    "AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), an AWS profile (AWS_PROFILE, ~/.aws/credentials) or an instance role"
)


@dataclass(frozen=True)
class LoadedJob:
    """A validated job, plus what it took from the environment, so that text for people can hide those values."""

    job: BaseModel  # one of the Job models (AnimateJob, TrainJob, SynthJob, PipelineJob)
    env_templates: Mapping[Path, str]  # path -> the original text of a value that held `${env:...}`
    env_values: Mapping[str, str]  # variable name -> value, for every variable used

    def redact(self, text: str) -> str:
        """`text` (e.g. a plan) with the value of each variable used (4 characters or longer) shown as `${env:NAME}`."""
        for name, value in sorted(self.env_values.items(), key=lambda item: -len(item[1])):
            if len(value) >= 4:
                text = re.sub(rf"(?<![\w-]){re.escape(value)}(?![\w-])", f"${{env:{name}}}", text)
        return text

    def to_yaml(self) -> str:
        """The fully resolved job as YAML, defaults filled in (unset optional values left out), with `${env:NAME}`
        shown instead of its value."""
        data = self.job.model_dump(mode="json", exclude_none=True)
        for path, text in self.env_templates.items():
            _replace_if_present(data, path, text)
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120)


def parse_override(text: str) -> tuple[Path, Any]:
    """`dotted.key=value` as (path, value); the value is read as YAML (`4` is a number, `[a, b]` a list).

    ValueError (never quoting the value) when it is not of that form.
    """
    key, separator, value = text.partition("=")
    if not separator or not key.strip():
        raise ValueError("expected dotted.key=value, e.g. execution.workers=4")
    path = parse_path(key.strip())
    try:
        return path, safe_yaml.safe_load(value) if value.strip() else None
    except safe_yaml.YamlLimitError as error:
        raise ValueError(f"the value for {key.strip()} is refused: {error}") from None
    except yaml.YAMLError:
        raise ValueError(f"the value for {key.strip()} is not valid YAML") from None


def load_job(
    manifest: Optional[Union[str, FilePath]] = None,
    *,
    kind: Optional[str] = None,
    values: Iterable[tuple[str, Any, str]] = (),
    overrides: Sequence[str] = (),
    environ: Mapping[str, str] = os.environ,
) -> LoadedJob:
    """Build and validate a job; raises ManifestError listing every problem.

    manifest: a YAML file, or None for a job made from `values` alone.
    kind: the job kind a command runs (`animate`, ...): set when the manifest gives none, a problem when it differs.
    values: (dotted path, value, origin label such as "--out") from CLI options, over the manifest's values.
    overrides: `dotted.key=value` texts from `--set`, applied last.
    """
    if manifest is None:
        document, problems = JobDocument.empty(Origin("command line")), []
    else:
        document, problems = read_manifest(manifest)
    if kind is not None:
        problems += _apply_kind(document, kind)
    for dotted, value, label in values:
        problems += _apply(document, parse_path(dotted), value, Origin(label))
    for text in overrides:
        try:
            path, value = parse_override(text)
        except ValueError as error:
            problems.append(Problem(Origin("--set"), (), str(error)))
            continue
        problems += _apply(document, path, value, Origin("--set"))

    secrets = _secret_keys(document.data)
    resolved = resolve_env(document.data, environ)
    # Values already reported as credentials or unresolvable references get no further validation messages.
    reported = secrets + [path for path, _ in resolved.problems]
    problems += [Problem(document.origin(path), path, CREDENTIALS_ADVICE) for path in secrets]
    problems += [Problem(document.origin(path), path, message) for path, message in resolved.problems]
    problems += [Problem(document.origin(path), path, message) for path, message in reference_problems(resolved.data)]

    try:
        job = JOB_ADAPTER.validate_python(resolved.data)
    except ValidationError as error:
        errors = [e for e in error.errors() if e["type"] != STEP_REFERENCE_ERROR]  # located above already
        problems += [
            problem for problem in validation_problems(errors, resolved.data, Job, document.origin)
            if not any(problem.path[: len(path)] == path for path in reported)
        ]
    if problems:
        raise ManifestError(problems)
    return LoadedJob(job, resolved.templates, resolved.values)


def _apply_kind(document: JobDocument, kind: str) -> list[Problem]:
    given = document.data.get("kind")
    if given is None:
        document.set(("kind",), kind, document.origin(()))
        return []
    if given != kind:
        message = f"this command runs `kind: {kind}` jobs; run other kinds with `ganbatch run`"
        return [Problem(document.origin(("kind",)), ("kind",), message)]
    return []


def _apply(document: JobDocument, path: Path, value: Any, origin: Origin) -> list[Problem]:
    try:
        document.set(path, value, origin)
    except ValueError as error:
        return [Problem(origin, path, f"cannot set this key: {error}")]
    return []


def _secret_keys(data: Any, path: Path = ()) -> list[Path]:
    """Paths of every mapping key, at any depth, that names a credential."""
    found = []
    if isinstance(data, dict):
        for key, value in data.items():
            if SECRET_KEY.search(str(key)):
                found.append(path + (key,))
            found += _secret_keys(value, path + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _secret_keys(value, path + (index,))
    return found


def _replace_if_present(data: Any, path: Path, value: Any) -> None:
    """Set `data` at `path` to `value` when that path exists (validation may have renamed keys, e.g. au12 -> AU12)."""
    try:
        parent = functools.reduce(operator.getitem, path[:-1], data)
        parent[path[-1]]  # noqa: B018 - raises when the path is gone
    except (KeyError, IndexError, TypeError):
        return
    if isinstance(parent, (dict, list)):
        parent[path[-1]] = value
