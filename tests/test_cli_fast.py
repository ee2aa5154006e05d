"""The CLI starts fast: importing it and every `--help` load no torch, Ray, scipy, scikit-image, boto3 or pyarrow;
help reads well (sections, choices, one style of defaults, no auto-capitalisation, fitting --set examples)."""
import json
import subprocess
import sys

from click.testing import CliRunner

from ganbatch.cli import main

HEAVY = ("torch", "ray", "scipy", "skimage", "boto3", "botocore", "pyarrow")
COMMANDS = ("animate", "train", "synth", "eval", "run", "validate", "export")


def _loaded_after(code: str) -> list[str]:
    """The heavy top-level modules loaded in a fresh interpreter after `code` ran."""
    script = (f"import sys\n{code}\n"
              f"import json; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_cli_and_every_help_load_no_heavy_module():
    calls = "; ".join(f"CliRunner().invoke(main, [{command!r}, '--help'])" for command in ("--help",) + COMMANDS)
    code = ("from click.testing import CliRunner\nfrom ganbatch.cli import main\n"
            f"results = [{calls.replace('; ', ', ')}]\n"
            "assert all(r.exit_code == 0 for r in results), [r.output for r in results]")
    assert _loaded_after(code) == []


def test_the_eval_job_defaults_are_the_benchmarks():
    from ganbatch.eval import benchmark
    from ganbatch.jobs import EvalJob

    defaults = EvalJob(model="demo")
    assert (defaults.identities, defaults.random_pairs, defaults.path_frames) == (
        benchmark.DEFAULT_IDENTITIES, benchmark.DEFAULT_RANDOM_PAIRS, benchmark.DEFAULT_PATH_FRAMES)


def test_the_preset_list_in_help_is_the_schemas():
    from ganbatch.cli.help import preset_names
    from ganbatch.targets.aus import EXPRESSIONS

    assert preset_names() == list(EXPRESSIONS)
    text = CliRunner().invoke(main, ["animate", "--help"], terminal_width=200).output
    assert "presets: " + ", ".join(EXPRESSIONS) in text


def _help(*command: str) -> str:
    result = CliRunner().invoke(main, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def test_animate_help_is_grouped_with_choices_and_one_default_style():
    text = _help("animate")
    headings = [line.rstrip(":") for line in text.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert headings[:7] == ["inputs", "targets", "timing", "faces", "output", "execution", "job"]
    for option, choices in [("--crop", "[none|detect]"), ("--detector", "[auto|face-alignment|dlib|lbp]"),
                            ("--format", "[mp4|webm|gif|png]"), ("--layout", "[single|side-by-side|with-mask]"),
                            ("--easing", "[linear|ease-in-out|cubic|hold]"), ("--device", "[auto|cpu|cuda]")]:
        assert f"{option} {choices}" in text
    assert "[default:" not in text and "default: mp4" in text
    assert "fp16/bf16 autocast" in text and "Fp16" not in text
    assert "--set 'targets[0].expression=happy'" in text


def test_each_command_shows_a_set_example_that_fits_it():
    assert "--set objective.lambda_cycle=5" in _help("train") and "targets[0]" not in _help("train")
    assert "--set 'layouts=[ganimation]'" in _help("synth") and "targets[0]" not in _help("synth")
    assert "steps.train.steps=200" in _help("run")
    eval_help = _help("eval")
    assert "[default:" not in eval_help and "default: 8" in eval_help


def test_every_closed_set_of_the_schema_is_a_choice():
    """Every option filling a Literal field of the job schema offers its choices (click.Choice)."""
    import click

    from ganbatch.cli.synth import SYNTH, synth
    from ganbatch.cli.animate import ANIMATE, animate
    from ganbatch.cli.help import literal_choices
    from ganbatch.cli.options import schema_field
    from ganbatch.cli.train import TRAIN, train

    checked = 0
    for command, options in [(animate, ANIMATE), (train, TRAIN), (synth, SYNTH)]:
        params = {param.name: param for param in command.params}
        for name, dotted in options.fields.items():
            choices = literal_choices(schema_field(options.model, dotted).annotation)
            if choices:
                assert isinstance(params[name].type, click.Choice), f"{command.name} --{name}"
                assert list(params[name].type.choices) == choices
                checked += 1
    assert checked >= 12
