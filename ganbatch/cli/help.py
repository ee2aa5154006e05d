"""How the CLI's --help reads: options in named sections, choices taken from the job schema's Literal types.

`GroupedCommand` is a click.Command whose help lists options under headings instead of one flat list (click has
no option groups of its own; this is the few lines of `format_options` that click-option-group would add as a
dependency, without its extra decorator syntax):

    @click.command(cls=GroupedCommand, sections={"inputs": ["inputs", "recursive"], "output": ["out", "format"]})

Options named in no section are listed last under "other options". `literal_choices` reads the closed set of
values of a Literal field, which `cli.options` turns into a click.Choice, so the set is spelt once, in the schema.
"""
import ast
import importlib.util
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import click


def literal_choices(annotation: Any) -> list[str]:
    """The allowed values of a Literal annotation, also inside Optional[...] or list[...]; [] for other types."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return [str(choice) for choice in typing.get_args(annotation)]
    if origin in (list, typing.Union, types.UnionType, typing.Annotated):
        for argument in typing.get_args(annotation):
            found = literal_choices(argument)
            if found:
                return found
    return []


def preset_names() -> list[str]:
    """The expression presets (`ganbatch.targets.aus.EXPRESSIONS`' names), for --help.

    Read from the module's source rather than imported: importing anything under `ganbatch.targets` loads its
    package, which imports scipy (schedules), and `--help` must stay free of it. Falls back to the import when
    EXPRESSIONS is ever not a plain literal.
    """
    spec = importlib.util.find_spec("ganbatch.targets")
    source = (spec.submodule_search_locations[0] + "/aus.py") if spec and spec.submodule_search_locations else None
    if source:
        with open(source, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "EXPRESSIONS" for t in node.targets):
                try:
                    return list(ast.literal_eval(node.value))
                except ValueError:
                    break
    from ganbatch.targets.aus import EXPRESSIONS

    return list(EXPRESSIONS)


class GroupedCommand(click.Command):
    """A command whose --help shows its options in named sections (see the module doc)."""

    def __init__(self, *args, sections: Mapping[str, Sequence[str]] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.sections = dict(sections)
        known = {param.name for param in self.params}
        unknown = [name for names in self.sections.values() for name in names if name not in known]
        if unknown:
            raise ValueError(f"help sections of {self.name} name no parameter: {', '.join(unknown)}")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        records = {}
        for param in self.get_params(ctx):
            if not isinstance(param, click.Option):
                continue  # arguments are named in the usage line and the command's help text
            record = param.get_help_record(ctx)
            if record is not None:
                records[param.name] = record
        placed = set()
        for title, names in self.sections.items():
            rows = [records[name] for name in names if name in records]
            placed.update(names)
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
        rest = [record for name, record in records.items() if name not in placed]
        if rest:
            with formatter.section("other options"):
                formatter.write_dl(rest)
