"""Pydantic validation errors as located, readable problems.

A pydantic `loc` mixes keys of the data with markers: `[key]` for dict-key errors, union member tags such as
`list[KeyframeSpec]` or `function-after[check_uri(), str]`, and discriminator tags such as `animate`. Walking the loc
along the data tells them apart: a part that is a key (or index) of the data at that point is a step into the data,
anything else is a marker. A union reports one error per member; only the member that fits the value's type is kept,
so one mistake gives one message. Messages never contain the input value: the path says which value is meant.
"""
import difflib
import re
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ganbatch.jobs.paths import Path
from ganbatch.jobs.problems import Origin, Problem

# Error types meaning "the value has the wrong type for this union member" (as opposed to a bad value of the
# right type), and the words for the type each one expected.
_TYPE_WORDS = {
    "list": "a list", "tuple": "a list", "set": "a list", "string": "a string", "dict": "a mapping",
    "model": "a mapping", "model_attributes": "a mapping", "int": "an integer", "float": "a number",
    "bool": "true or false", "none_required": "null",
}
_TYPE_ERROR = re.compile(rf"^({'|'.join(_TYPE_WORDS)})(_type|_parsing)?$")


@dataclass(frozen=True)
class _Located:
    """A pydantic error with its loc split into the data path and the union branch it belongs to (if any)."""

    error: dict
    path: Path
    union_at: Path | None  # data path where the first union member tag appeared
    branch: str | None  # that tag

    @property
    def is_type_mismatch(self) -> bool:
        return self.path == self.union_at and _TYPE_ERROR.match(self.error["type"]) is not None


def validation_problems(
    errors: Iterable[dict], data: Any, schema: Any, origin_of: Callable[[Path], Origin]
) -> list[Problem]:
    """Problems for pydantic `errors` (ValidationError.errors()) raised while validating `data` as `schema`.

    `schema` is the annotation or model the data was validated against (for key suggestions); `origin_of` maps a
    data path to where the value came from.
    """
    located = _collapse_unions([_locate(error, data) for error in errors])
    return [Problem(origin_of(item.path), item.path, _message(item, data, schema)) for item in located]


def _locate(error: dict, data: Any) -> _Located:
    path: list = []
    union_at = branch = None
    node = data
    loc = error["loc"]
    for position, part in enumerate(loc):
        last = position == len(loc) - 1
        if part == "[key]":
            continue  # the error is about the key itself, whose path is already complete
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif last and error["type"] == "missing":
            path.append(part)
        elif isinstance(node, dict) and part in node.values():
            pass  # a discriminator tag (e.g. `train` for `kind: train`): the data picked one member, not a branch
        elif union_at is None:
            union_at, branch = tuple(path), part  # a union member tag: `str`, `list[...]`, `function-after[...]`
    if error["type"] in ("union_tag_not_found", "union_tag_invalid"):
        path.append(error["ctx"]["discriminator"].strip("'"))  # the error is about the `kind:` key
    return _Located(error, tuple(path), union_at, branch)


def _collapse_unions(located: list[_Located]) -> list[_Located]:
    """Keep, per union, the errors of the member that fits the value's type; merge pure type mismatches into one."""
    branches: dict[Path, dict[str, list[_Located]]] = {}
    for item in located:
        if item.branch is not None:
            branches.setdefault(item.union_at, {}).setdefault(item.branch, []).append(item)
    kept: list[_Located] = []
    handled: set[Path] = set()
    for item in located:
        if item.branch is None:
            kept.append(item)
            continue
        if item.union_at in handled:
            continue
        handled.add(item.union_at)
        members = branches[item.union_at]
        fitting = [errors for errors in members.values() if not all(e.is_type_mismatch for e in errors)]
        if fitting:
            kept.extend(fitting[0])
        else:
            words = dict.fromkeys(_type_words(errors[0].error["type"]) for errors in members.values())
            merged = {**item.error, "type": "union_type", "msg": f"expected {' or '.join(words)}"}
            kept.append(_Located(merged, item.union_at, None, None))
    return kept


def _type_words(error_type: str) -> str:
    match = _TYPE_ERROR.match(error_type)
    return _TYPE_WORDS[match.group(1)] if match else error_type


def _message(item: _Located, data: Any, schema: Any) -> str:
    error = item.error
    error_type = error["type"]
    if error_type == "extra_forbidden":
        return _unknown_key_message(item.path, data, schema)
    if error_type == "missing":
        return "missing required key"
    if error_type == "finite_number":
        return "must be a finite number (not NaN or infinity)"
    if error_type == "union_tag_not_found":
        discriminator = item.path[-1]
        tags = [str(model.model_fields[discriminator].default) for model in _models_at(schema, data, item.path[:-1])]
        return f"missing required key; one of: {', '.join(tags)}"
    if error_type == "union_tag_invalid":
        tags = [tag.strip(" '") for tag in error["ctx"]["expected_tags"].split(",")]
        close = difflib.get_close_matches(str(error["ctx"]["tag"]), tags, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"unknown {item.path[-1]}; known: {', '.join(tags)}{hint}"
    message = re.sub(r"^(Value error|Assertion failed), ", "", error["msg"])
    return _without_value(message, error.get("input"))


def _without_value(message: str, value: Any) -> str:
    """`message` with the input value taken out (validators sometimes quote it; values may be secrets)."""
    if not isinstance(value, str) or not value:
        return message
    message = re.sub(rf"\s?(['\"]){re.escape(value)}\1", "", message)
    if len(value) >= 3:
        message = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", "<value>", message)
    return message


def _unknown_key_message(path: Path, data: Any, schema: Any) -> str:
    known = sorted({name for model in _models_at(schema, data, path[:-1]) for name in model.model_fields})
    if not known:
        return "unknown key"
    close = difflib.get_close_matches(str(path[-1]), known, n=1)
    if close:
        return f"unknown key; did you mean '{close[0]}'?"
    return f"unknown key; known keys: {', '.join(known)}"


def _models_at(schema: Any, data: Any, path: Path) -> list[type[BaseModel]]:
    """The pydantic models that describe the mapping at `path` of `data` (several where a union allows several)."""
    candidates = [schema]
    node = data
    for part in path:
        following = []
        for shape in (s for annotation in candidates for s in union_members(annotation)):
            if isinstance(shape, type) and issubclass(shape, BaseModel):
                if _fits(shape, node) and part in shape.model_fields:
                    following.append(shape.model_fields[part].annotation)
            elif typing.get_origin(shape) in (list, tuple) and isinstance(part, int):
                following.extend(typing.get_args(shape)[:1])
            elif typing.get_origin(shape) is dict and isinstance(part, str):
                following.extend(typing.get_args(shape)[1:2])
        candidates = following
        node = node[part] if isinstance(node, (dict, list)) else None
    return [
        shape for annotation in candidates for shape in union_members(annotation)
        if isinstance(shape, type) and issubclass(shape, BaseModel) and _fits(shape, node)
    ]


def union_members(annotation: Any) -> list[Any]:
    """`annotation` with Annotated, Optional and Union unwrapped into its member types (None left out)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return union_members(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [shape for member in typing.get_args(annotation) for shape in union_members(member)]
    return [] if annotation is type(None) else [annotation]


def _fits(model: type[BaseModel], node: Any) -> bool:
    """Whether the mapping `node` can be this model as far as its Literal fields (e.g. `kind`) tell."""
    if not isinstance(node, dict):
        return True
    for name, field in model.model_fields.items():
        if name in node and typing.get_origin(field.annotation) is typing.Literal:
            if node[name] not in typing.get_args(field.annotation):
                return False
    return True
