"""Click options generated from the job schema: one option per pydantic field, its name, type, choices, help and
--help section taken from the field, so that each option is spelt once, in the schema.

    SYNTH = SchemaOptions(SynthJob, {"output": [Flag("out", metavar="DIR|s3://..."), ...], "data set": [...]})

and the command takes `@SYNTH` as a decorator, `SYNTH.sections` for its --help and `SYNTH.fields` for
`cli.jobs.run_command` (see `ganbatch synth` in cli/synth.py).

A field is named by its dotted path in the job (`crop.backend`; `targets.fps` for the field of a list's items;
union members are searched in order). The option is `--<last name>` (underscores as dashes); a `Flag` declares the
few that differ: another name, a metavar, other help, repeatable. Literal fields become a click.Choice, booleans an
on/off pair, list fields a repeatable option. No option has a default: only values the user gave reach the job
(see `cli.jobs.flag_values`), so the schema stays the one source of defaults, which `field_help` shows.
"""
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

import click
from pydantic import BaseModel

from ganbatch.cli.help import literal_choices
from ganbatch.jobs.validation import union_members


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models that `annotation` holds, directly, in a union or as the items of a list."""
    found = []
    for member in union_members(annotation):
        if typing.get_origin(member) is list:
            found += _models(typing.get_args(member)[0])
        elif isinstance(member, type) and issubclass(member, BaseModel):
            found.append(member)
    return found


def _models_at(model: type[BaseModel], dotted: str) -> list[type[BaseModel]]:
    """The models that describe the value at `dotted` of `model` (`model` itself for ''; several for a union)."""
    owners = [model]
    for part in dotted.split(".") if dotted else []:
        owners = [inner for owner in owners if part in owner.model_fields
                  for inner in _models(owner.model_fields[part].annotation)]
    return owners


def _owners(model: type[BaseModel], dotted: str) -> tuple[list[type[BaseModel]], list[type[BaseModel]]]:
    """(the models at the parent of `dotted` that have its field, all models there)."""
    parent, _, name = dotted.rpartition(".")
    owners = _models_at(model, parent)
    return [owner for owner in owners if name in owner.model_fields], owners


def schema_field(model: type[BaseModel], dotted: str):
    """The pydantic FieldInfo of `dotted` (e.g. `crop.mode`, `targets.fps`) in `model`; KeyError when none."""
    having, _ = _owners(model, dotted)
    if not having:
        raise KeyError(f"{model.__name__} has no field {dotted}")
    return having[0].model_fields[dotted.rsplit(".", 1)[-1]]


def union_members_text(model: type[BaseModel], dotted: str) -> str:
    """`ganimation only` for a field that only some members of a union have (named by their tag), else ''."""
    having, owners = _owners(model, dotted)
    if len(having) == len(owners):
        return ""
    tags = [str(field.default) for owner in having for field in owner.model_fields.values()
            if _is_tag(field.annotation)]
    return f"{', '.join(tags) or ', '.join(owner.__name__ for owner in having)} only"


def _is_tag(annotation: Any) -> bool:
    """Whether a field is a union tag (a Literal of one value, such as `kind` or a member's `family`)."""
    return typing.get_origin(annotation) is typing.Literal and len(typing.get_args(annotation)) == 1


def leaf_fields(model: type[BaseModel], under: str = "") -> list[str]:
    """The dotted paths of every field below `under` (all of `model` when empty) that holds a value rather than
    a sub-model: every member of a union in order, each path once, union tags left out."""
    owners = _models_at(model, under)
    prefix = f"{under}." if under else ""
    paths: list[str] = []
    for owner in owners:
        for name, field in owner.model_fields.items():
            members = union_members(field.annotation)
            if members and all(isinstance(m, type) and issubclass(m, BaseModel) for m in members):
                found = leaf_fields(owner, name)
                paths += [f"{prefix}{path}" for path in found if f"{prefix}{path}" not in paths]
            elif not _is_tag(field.annotation) and f"{prefix}{name}" not in paths:
                paths.append(f"{prefix}{name}")
    return paths


def default_text(default: Any) -> str:
    """`default: VALUE`, the one way --help shows a default (lists joined by commas, booleans lower-case)."""
    shown = ", ".join(map(str, default)) if isinstance(default, list) else str(default).lower() \
        if isinstance(default, bool) else str(default)
    return f"default: {shown}"


def field_help(model: type[BaseModel], dotted: str, extra: str = "") -> str:
    """Help text for the option filling `dotted` of `model`: the field's description as written (no
    capitalisation), which union members have it (`ganimation only`), `extra`, then `default: ...` or `required`
    (choices show in the option's metavar)."""
    field = schema_field(model, dotted)
    parts = [field.description or dotted.rsplit(".", 1)[-1].replace("_", " ")]
    parts += [text for text in (union_members_text(model, dotted), extra) if text]
    if field.is_required():
        parts.append("required")
    else:
        default = field.get_default(call_default_factory=True)
        if default is not None and not isinstance(default, BaseModel) and default != [] and default != {}:
            parts.append(default_text(default))
    return "; ".join(parts)


def choice(model: type[BaseModel], dotted: str) -> click.Choice:
    """click.Choice of the Literal field `dotted` of `model`."""
    values = literal_choices(schema_field(model, dotted).annotation)
    if not values:
        raise TypeError(f"{model.__name__}.{dotted} is not a Literal field")
    return click.Choice(values)


def value_type(annotation: Any) -> Any:
    """The click type of a field's value: bool, int, float or str (str for anything else, e.g. a dict)."""
    for member in union_members(annotation):
        if typing.get_origin(member) is list:
            return value_type(typing.get_args(member)[0])
        if member in (bool, int, float, str):
            return member
    return str


def is_list(annotation: Any) -> bool:
    """Whether a field holds a list of values (not of sub-models)."""
    return any(typing.get_origin(member) is list for member in union_members(annotation)) and not _models(annotation)


@dataclass(frozen=True)
class Flag:
    """An option that differs from what its field would give: another name, a metavar, its own help (`help`
    replaces the field's description, `extra` follows it) or repeatable although the field is no list."""

    field: str
    name: Optional[str] = None
    metavar: Optional[str] = None
    help: Optional[str] = None
    extra: str = ""
    multiple: bool = False

    @property
    def option(self) -> str:
        """The option as typed, e.g. `--detector`."""
        return self.name or "--" + self.field.rsplit(".", 1)[-1].replace("_", "-")

    @property
    def parameter(self) -> str:
        """The click parameter name, e.g. `detector`."""
        return self.option.lstrip("-").replace("-", "_")


class SchemaOptions:
    """The options of one job command, from the fields of `model`; `sections` maps each --help heading to its
    fields (dotted paths, or Flags where an option differs). Applied as a decorator, it adds the options in order."""

    def __init__(self, model: type[BaseModel], sections: Mapping[str, Sequence[Union[str, Flag]]]):
        self.model = model
        self.flags: dict[str, Flag] = {}
        self.sections: dict[str, list[str]] = {}
        for title, entries in sections.items():
            for entry in entries:
                flag = entry if isinstance(entry, Flag) else Flag(entry)
                schema_field(model, flag.field)  # a KeyError names a field the schema does not have
                if flag.parameter in self.flags:
                    raise ValueError(f"{flag.option} is declared twice ({self.flags[flag.parameter].field}, "
                                     f"{flag.field})")
                self.flags[flag.parameter] = flag
            self.sections[title] = [
                (entry if isinstance(entry, Flag) else Flag(entry)).parameter for entry in entries
            ]

    @property
    def fields(self) -> dict[str, str]:
        """click parameter name -> dotted path in the job (what `cli.jobs.flag_values` takes)."""
        return {name: flag.field for name, flag in self.flags.items()}

    def option(self, flag: Flag) -> tuple[list[str], dict[str, Any]]:
        """The declarations and settings of `flag`'s click option."""
        annotation = schema_field(self.model, flag.field).annotation
        choices = literal_choices(annotation)
        multiple = flag.multiple or is_list(annotation)
        kind = value_type(annotation)
        text = flag.help if flag.help is not None else field_help(self.model, flag.field, flag.extra)
        if multiple and "repeatable" not in text:
            text += "; repeatable"
        settings: dict[str, Any] = {"help": text, "metavar": flag.metavar, "multiple": multiple}
        if kind is bool and not multiple:
            declarations = [f"{flag.option}/--no-{flag.option[2:]}"]
        else:
            declarations = [flag.option]
            settings["type"] = click.Choice(choices) if choices else kind
        return [*declarations, flag.parameter], {**settings, "default": () if multiple else None}

    def __call__(self, command):
        for flag in reversed(list(self.flags.values())):
            declarations, settings = self.option(flag)
            command = click.option(*declarations, **settings)(command)
        return command
