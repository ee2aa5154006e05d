"""What is wrong with a job, and where: `jobs/x.yaml:14: targets[1].aus.AU99: unknown action unit; ...`."""
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional

from ganbatch.jobs.paths import Path, format_path


@dataclass(frozen=True)
class Origin:
    """Where a value came from: a manifest line (and column, for syntax errors), a CLI option, or `--set KEY`."""

    source: str
    line: Optional[int] = None
    column: Optional[int] = None

    def __str__(self) -> str:
        return ":".join(str(part) for part in (self.source, self.line, self.column) if part is not None)


@dataclass(frozen=True)
class Problem:
    """One mistake in a job: its origin, the path of the value in the job, and the reason (never the value)."""

    origin: Origin
    path: Path
    message: str

    def __str__(self) -> str:
        location = f"{format_path(self.path)}: " if self.path else ""
        return f"{self.origin}: {location}{self.message}"


class ManifestError(ValueError):
    """An invalid job manifest or set of CLI options; `problems` holds every mistake found: manifest problems in
    file order, then those of CLI options in the order found."""

    def __init__(self, problems: Iterable[Problem]):
        unique = dict.fromkeys(problems)
        self.problems = sorted(
            unique, key=lambda p: (p.origin.line is None, p.origin.source if p.origin.line else "", p.origin.line or 0)
        )
        super().__init__("\n".join(str(problem) for problem in self.problems))

    def __reduce__(self):
        return type(self), (self.problems,)
