"""The job commands' options come from the schema: every field of every job kind reaches the job through its flag
or `--set`, each generated option is named, typed and helped from its field, help lists every closed set's choices,
and the few flags that differ are declared once."""
import functools
import typing

import click
import pytest
import yaml
from click.testing import CliRunner

from ganbatch.cli import main
from ganbatch.cli.animate import ANIMATE, TARGET, targets_from_flags
from ganbatch.cli.eval import EVAL
from ganbatch.cli.help import literal_choices
from ganbatch.cli.jobs import flag_values
from ganbatch.cli.options import Flag, SchemaOptions, is_list, leaf_fields, schema_field, union_members_text, value_type
from ganbatch.cli.export import EXPORT
from ganbatch.cli.synth import SYNTH
from ganbatch.cli.train import TRAIN
from ganbatch.jobs import AnimateJob, SynthJob
from ganbatch.jobs.load import load_job
from ganbatch.jobs.paths import parse_path
from ganbatch.jobs.problems import ManifestError

# command name, its options, the smallest job of its kind (what the command's required flags would give)
COMMANDS = {
    "animate": (ANIMATE, {"model": "m.pt", "inputs": ["a.png"], "out": "videos", "targets": [{"expression": "happy"}]}),
    "train": (TRAIN, {"data": "data", "out": "runs", "name": "r"}),
    "synth": (SYNTH, {"out": "data"}),
    "eval": (EVAL, {"model": "m.pt"}),
    "export": (EXPORT, {"source": "runs/r", "out": "m.onnx"}),
}
FAMILIES = [{"family": name} for name in literal_choices(schema_field(TRAIN.model, "family").annotation)]


def _sample(field) -> typing.Any:
    """A value for `field` other than its default, of its type: another choice, the other boolean, default + 1."""
    default = field.get_default(call_default_factory=True)
    choices = literal_choices(field.annotation)
    kind = value_type(field.annotation)
    if choices:
        value = next((value for value in reversed(choices) if value not in (default, [default])), choices[0])
        return [value] if is_list(field.annotation) else value
    if kind is bool:
        return not default
    if kind in (int, float):
        return kind((default or 0) + 1)
    return f"x{default}" if isinstance(default, str) else "x.yaml"


def _job_path(dotted: str):
    """The path in the job of a field: a target field is the first target's."""
    return ("targets", 0, *dotted.removeprefix(TARGET).split(".")) if dotted.startswith(TARGET) \
        else parse_path(dotted)


def _value_at(job, path):
    return functools.reduce(lambda node, part: node[part] if isinstance(part, int) else getattr(node, part), path,
                            job)


def _reaches(kind: str, dotted: str, value, *, flags: list[str] | None) -> None:
    """Give `value` to field `dotted` by its flag (`flags` the command line) or by --set; the job holds the value,
    or the only problems are that value's own (at its path, from that flag) or a cross-field rule of a model above
    it, never an unknown, unsettable or missing key."""
    options, base = COMMANDS[kind]
    bases = [{**base, **family} for family in FAMILIES] if kind == "train" else [base]
    failures = []
    for data in bases:
        values = [(key, item, "base") for key, item in data.items()]
        overrides = ()
        label = "--set"
        if flags is None:
            overrides = (f"{'targets[0].' + dotted[len(TARGET):] if dotted.startswith(TARGET) else dotted}="
                         f"{yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}",)
        else:
            command = main.commands[kind]
            ctx = command.make_context(kind, flags)
            given = flag_values(ctx, {name: path for name, path in options.fields.items()
                                      if not path.startswith(TARGET)})
            label = given[0][2] if given else "target flags"
            if kind == "animate" and dotted.startswith(TARGET):
                given = [("targets", targets_from_flags(ctx), "target flags")]
            values += given
        try:
            job = load_job(None, kind=kind, values=values, overrides=overrides).job
        except ManifestError as error:
            path = _job_path(dotted)
            # the value's own problem (at its path, from its flag), or a rule across the fields of a model above it
            wrong = [p for p in error.problems if not (p.path == path and p.origin.source == label
                                                       or len(p.path) < len(path) and p.path == path[:len(p.path)])
                     or "unknown key" in p.message or "cannot set" in p.message or "missing" in p.message]
            if not wrong:
                return
            failures.append(wrong)
            continue
        got = _value_at(job, _job_path(dotted))
        expected = value[0] if isinstance(value, list) and not isinstance(got, list) else value
        if got == expected or (dotted == "targets.aus" and got == {"AU12": 3.0}):
            return
        failures.append(f"{dotted}: job holds {got!r}, not {value!r}")
    pytest.fail(f"{kind} {dotted} does not reach the job: {failures}")


def _flag_arguments(flag: Flag, option: click.Option, value) -> list[str]:
    if option.is_flag or option.secondary_opts:
        return [option.opts[0] if value else option.secondary_opts[0]]
    if flag.field == "targets.aus":
        return ["--au", "AU12=3"]
    items = value if isinstance(value, list) else [value]
    return [part for item in items for part in (option.opts[0], str(item))]


@pytest.mark.parametrize("kind", list(COMMANDS))
def test_every_schema_field_reaches_the_job_by_its_flag_or_set(kind):
    options, _ = COMMANDS[kind]
    params = {param.name: param for param in main.commands[kind].params}
    by_field = {flag.field: flag for flag in options.flags.values()}
    fields = leaf_fields(options.model)
    if kind == "animate":  # the target flags fill each target's fields
        fields = [f for f in fields if not f.startswith("targets")] + leaf_fields(AnimateJob, "targets")
        fields = [f if not f.startswith("targets") else TARGET + f[len("targets."):] for f in fields]
    assert len(fields) >= 5
    for dotted in fields:
        if dotted in ("kind",) or dotted.startswith(TARGET + "keyframes."):
            continue  # the job kind is the command; inline keyframes are a manifest's (a file by flag)
        value = _sample(schema_field(options.model, dotted))
        flag = by_field.get(dotted)
        if flag is None:
            _reaches(kind, dotted, value, flags=None)
            continue
        arguments = _flag_arguments(flag, params[flag.parameter], value)
        if kind == "animate" and dotted.startswith(TARGET) and dotted[len(TARGET):] not in ("expression", "aus"):
            sources = ("aus_csv", "keyframes", "landmarks", "driving_video")
            if dotted[len(TARGET):] not in sources:
                arguments += ["--expression", "happy"]
        _reaches(kind, dotted, value if dotted != TARGET + "expression" else "happy",
                 flags=arguments if dotted != TARGET + "expression" else ["--expression", "happy"])


@pytest.mark.parametrize("kind", list(COMMANDS))
def test_options_are_named_typed_and_helped_from_their_fields(kind):
    options, _ = COMMANDS[kind]
    params = {param.name: param for param in main.commands[kind].params}
    for name, flag in options.flags.items():
        option, field = params[name], schema_field(options.model, flag.field)
        if flag.name is None:  # not declared otherwise: the field's own name
            assert option.opts[0] == "--" + flag.field.rsplit(".", 1)[-1].replace("_", "-")
        if flag.help is None and field.description:
            assert option.help.startswith(field.description)
        assert option.default in (None, ())  # the schema holds the defaults
        choices = literal_choices(field.annotation)
        if choices:
            assert isinstance(option.type, click.Choice) and list(option.type.choices) == choices
        elif field.annotation in (bool, typing.Optional[bool]):
            assert option.secondary_opts == ["--no-" + option.opts[0][2:]]
        elif field.annotation in (int, float):
            assert option.type.name == {int: "integer", float: "float"}[field.annotation]


@pytest.mark.parametrize("kind", list(COMMANDS))
def test_help_lists_every_choice_and_every_option_in_a_section(kind):
    options, _ = COMMANDS[kind]
    text = CliRunner().invoke(main, [kind, "--help"], terminal_width=400).output
    for flag in options.flags.values():
        choices = literal_choices(schema_field(options.model, flag.field).annotation)
        if choices:
            assert f"{flag.option} [{'|'.join(choices)}]" in text
    other = text.split("other options:")[-1].strip().splitlines()
    assert len(other) == 1 and "--help" in other[0]  # only --help is in no section


def test_the_flags_that_differ_are_few_and_declared_once():
    renamed = {flag.option: flag.field for options, _ in COMMANDS.values() for flag in options.flags.values()
               if flag.name is not None}
    assert renamed == {"--au": "targets.aus", "--crop": "crop.mode", "--detector": "crop.backend",
                       "--layout": "layouts"}
    with pytest.raises(ValueError, match="--out is declared twice"):
        SchemaOptions(SynthJob, {"a": ["out"], "b": [Flag("layouts", name="--out")]})
    with pytest.raises(KeyError, match="no field crop.colour"):
        SchemaOptions(AnimateJob, {"faces": ["crop.colour"]})


def test_a_family_only_objective_field_is_a_flag_checked_by_the_schema(tmp_path):
    only = {flag: union_members_text(TRAIN.model, flag.field) for flag in TRAIN.flags.values()}
    only = {flag: text.removesuffix(" only") for flag, text in only.items() if text}
    assert {flag.field for flag in only} >= {"objective.lambda_au", "objective.lambda_triple"}
    for flag, own in only.items():
        assert f"{own} only" in TRAIN.option(flag)[1]["help"]
        other = next(family["family"] for family in FAMILIES if family["family"] != own)
        result = CliRunner().invoke(main, ["train", "--family", other, "--data", "d", "--out", str(tmp_path),
                                           "--name", "r", flag.option, "1", "--dry-run"])
        assert result.exit_code == 2 and "objective" in result.stderr, (flag.option, result.output)
