"""Paths into job data: the tuple of keys and list indices that leads to a value, and its dotted spelling.

`("targets", 1, "keyframes", 0, "aus")` is written `targets[1].keyframes[0].aus`; `targets.1.keyframes` is read
the same way.
"""
import re
from typing import Union

Path = tuple[Union[str, int], ...]

_SEGMENT = re.compile(r"([^.\[\]]+)((?:\[\d+\])*)")


def format_path(path: Path) -> str:
    """`targets[1].keyframes[0].aus` for `("targets", 1, "keyframes", 0, "aus")`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def parse_path(text: str) -> Path:
    """The path of a dotted key such as `targets[1].keyframes.0.at`; ValueError when it is not one.

    Index segments (`[1]` or a dotted `1`) become ints; everything else is a key.
    """
    path: list[Union[str, int]] = []
    for segment in text.split("."):
        match = _SEGMENT.fullmatch(segment)
        if match is None:
            raise ValueError(f"'{text}' is not a dotted key such as execution.workers or targets[0].expression")
        name, indices = match.groups()
        path.append(int(name) if name.isdigit() else name)
        path.extend(int(index) for index in re.findall(r"\d+", indices))
    return tuple(path)
