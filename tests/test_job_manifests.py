"""Job manifests: the documented examples validate; broken manifests give located, complete, value-free errors."""
import itertools
import re
import textwrap
from pathlib import Path

import pytest

from ganbatch.jobs import AnimateJob, PipelineJob, SynthJob, TrainJob
from ganbatch.jobs.document import JobDocument
from ganbatch.jobs.load import load_job, parse_override
from ganbatch.jobs.paths import format_path, parse_path
from ganbatch.jobs.problems import ManifestError, Origin
from ganbatch.models import load_generator
from ganbatch.models.locate import DEMO_GANNOTATION_MODEL, DEMO_MODEL

JOBS = Path(__file__).resolve().parents[1] / "jobs"
EXAMPLE_ENV = {"GANBATCH_BUCKET": "example-bucket", "RAY_ADDRESS": "ray://head-node:10001"}


def write(tmp_path: Path, text: str, name: str = "job.yaml") -> tuple[Path, str]:
    """The manifest written to a file, and its text (dedented)."""
    text = textwrap.dedent(text).lstrip("\n")
    path = tmp_path / name
    path.write_text(text)
    return path, text


def line_of(text: str, marker: str) -> int:
    """1-based number of the first line of `text` containing `marker`."""
    return next(number for number, line in enumerate(text.splitlines(), 1) if marker in line)


def problems_of(path: Path, **kwargs) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_job(path, **kwargs)
    return [str(problem) for problem in caught.value.problems]


# ---------------------------------------------------------------------------------------------------------------
# The documented examples


def test_jobs_folder_holds_the_documented_examples():
    names = {path.name for path in JOBS.glob("*.yaml")}
    assert {
        "animate_local.yaml", "animate_s3.yaml", "gannotation_landmarks.yaml", "train_ganimation.yaml",
        "train_cluster_s3.yaml", "quickstart.yaml", "demo_model.yaml",
    } <= names


@pytest.mark.parametrize("example", sorted(JOBS.glob("*.yaml")), ids=lambda path: path.name)
def test_every_example_validates_and_is_documented(example, monkeypatch):
    for name, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(name, value)
    text = example.read_text()
    loaded = load_job(example)
    assert isinstance(loaded.job, (AnimateJob, TrainJob, SynthJob, PipelineJob))
    assert text.count("\n#") + text.count("  # ") >= 3, "examples explain their fields in comments"


def test_quickstart_is_synth_train_animate_at_toy_sizes():
    job = load_job(JOBS / "quickstart.yaml").job
    assert list(job.steps) == ["data", "train", "videos"]
    assert [step.kind for step in job.steps.values()] == ["synth", "train", "animate"]
    synth, train, animate = job.steps.values()
    assert synth.size == train.network.size == 64
    assert train.network.conv_dim <= 8 and train.network.res_blocks == 1 and train.steps <= 10
    assert train.data == "${steps.data.data}"
    assert animate.model == "${steps.train.model}"


def _same_place(recorded: str, recipe_path: str) -> bool:
    """Whether a path a model records is the recipe's relative path, as written or made absolute (a run started
    from another folder records absolute paths)."""
    recorded_parts, recipe_parts = Path(recorded).parts, Path(recipe_path).parts
    return recorded == recipe_path or (Path(recorded).is_absolute()
                                       and recorded_parts[-len(recipe_parts):] == recipe_parts)


@pytest.mark.parametrize("recipe, model", [("demo_model.yaml", DEMO_MODEL),
                                           ("demo_gannotation.yaml", DEMO_GANNOTATION_MODEL)])
def test_demo_recipes_are_the_shipped_models_training(recipe, model):
    """Each demo recipe writes its data sets (synth steps) and trains runs in phases (one run resumed to more steps)
    whose attention-mask weight never rises and ends at the published 0.1; a later run fine-tunes the one before it
    (`init` is that run's model). The last phase is what the bundled model records, with the data set it names."""
    job = load_job(JOBS / recipe).job
    data_sets = {name: step for name, step in job.steps.items() if step.kind == "synth"}
    phases = [(name, step) for name, step in job.steps.items() if step.kind != "synth"]
    assert next(iter(job.steps)) in data_sets and {phase.kind for _, phase in phases} == {"train"}
    runs = [list(group) for _, group in itertools.groupby(phases, key=lambda item: (item[1].name, item[1].out))]
    assert len(runs) == len({(run[0][1].name, run[0][1].out) for run in runs})  # each run's phases in one block
    for index, run in enumerate(runs):
        steps = [phase.steps for _, phase in run]
        masks = [phase.objective.lambda_mask for _, phase in run]
        assert steps == sorted(set(steps))  # one run resumed to more steps per phase
        assert masks == sorted(masks, reverse=True) and masks[-1] == 0.1
        expected_init = f"${{steps.{runs[index - 1][-1][0]}.model}}" if index else None
        assert {phase.init for _, phase in run} == {expected_init}
    final = phases[-1][1]
    synth = data_sets[re.fullmatch(r"\$\{steps\.(\w+)\.data\}", final.data).group(1)]
    recorded = load_generator(model)[1].config["training"]
    assert recorded["step"] == recorded["steps"] == final.steps
    assert recorded["network"] == final.network.resolved().model_dump()
    assert recorded["batch_size"] == final.batch_size and _same_place(recorded["data"], synth.out)
    assert recorded["augment"] == final.augment.model_dump()
    assert recorded["optimizer"] == final.resolved_optimizer().model_dump()
    base = runs[-2][-1][1] if len(runs) > 1 else None
    if base:
        assert _same_place(recorded["init"], f"{base.out}/{base.name}/model.pt")
    else:
        assert recorded.get("init") is None
    resolved = final.resolved_objective().model_dump()
    assert {key: recorded["objective"][key] for key in resolved} == resolved


def test_bundled_demo_models_are_small():
    assert DEMO_MODEL.stat().st_size + DEMO_GANNOTATION_MODEL.stat().st_size <= 20_000_000


# ---------------------------------------------------------------------------------------------------------------
# Paths and overrides


def test_dotted_paths_round_trip():
    assert parse_path("targets[1].keyframes[0].aus.AU12") == ("targets", 1, "keyframes", 0, "aus", "AU12")
    assert parse_path("targets.1.expression") == ("targets", 1, "expression")
    assert format_path(("targets", 1, "keyframes", 0, "aus", "AU12")) == "targets[1].keyframes[0].aus.AU12"
    for bad in ("", "a..b", "a[x]", "a.[0]"):
        with pytest.raises(ValueError):
            parse_path(bad)


def test_override_values_are_yaml():
    assert parse_override("execution.workers=4") == (("execution", "workers"), 4)
    assert parse_override("inputs=[a.jpg, b/]") == (("inputs",), ["a.jpg", "b/"])
    assert parse_override("targets[0].expression=happy:0.8") == (("targets", 0, "expression"), "happy:0.8")
    assert parse_override("execution.address=") == (("execution", "address"), None)
    with pytest.raises(ValueError, match="dotted.key=value"):
        parse_override("workers")


def test_document_set_replaces_subtrees_and_their_origins():
    document = JobDocument({"crop": {"mode": "none", "margin": 0.2}, "targets": [{"expression": "happy"}]},
                           {(): Origin("f", 1), ("crop",): Origin("f", 3), ("crop", "margin"): Origin("f", 5)})
    document.set(("crop",), {"mode": "detect"}, Origin("--set"))
    assert document.data["crop"] == {"mode": "detect"}
    assert document.origin(("crop", "margin")) == Origin("--set")
    document.set(("targets", 1, "expression"), "sad", Origin("--set"))  # the next index appends
    assert document.data["targets"] == [{"expression": "happy"}, {"expression": "sad"}]
    with pytest.raises(ValueError, match="past its end"):
        document.set(("targets", 5, "expression"), "sad", Origin("--set"))
    with pytest.raises(ValueError, match="not a mapping"):
        document.set(("crop", "mode", "x"), 1, Origin("--set"))


def test_set_overrides_the_file_and_fills_defaults(tmp_path):
    path, _ = write(tmp_path, """
        kind: synth
        out: data
        identities: 3
    """)
    job = load_job(path, overrides=["identities=5", "layouts=[openface]"]).job
    assert (job.identities, job.layouts) == (5, ["openface"])
    assert job.per_identity == SynthJob.model_fields["per_identity"].default


# ---------------------------------------------------------------------------------------------------------------
# Broken manifests


def test_wrong_types_are_located(tmp_path):
    path, text = write(tmp_path, """
        kind: synth
        out: data
        identities: many
        contact_sheet: [1, 2]
    """)
    problems = problems_of(path)
    assert problems[0].startswith(f"{path}:{line_of(text, 'identities')}: identities: Input should be a valid integer")
    assert problems[1].startswith(f"{path}:{line_of(text, 'contact_sheet')}: contact_sheet: ")
    assert len(problems) == 2


def test_unknown_keys_suggest_the_close_field(tmp_path):
    path, text = write(tmp_path, """
        kind: animate
        model: demo
        inputs: [photos/]
        out: videos
        targets:
          - expression: happy
        crop:
          mdoe: detect
        output:
          zzz: 1
    """)
    problems = problems_of(path)
    assert f"{path}:{line_of(text, 'mdoe')}: crop.mdoe: unknown key; did you mean 'mode'?" in problems
    unrelated = next(p for p in problems if "output.zzz" in p)
    assert unrelated.startswith(f"{path}:{line_of(text, 'zzz')}: output.zzz: unknown key; known keys: ")
    assert "format" in unrelated and "layout" in unrelated


def test_unknown_key_inside_a_pipeline_step_suggests_that_kinds_field(tmp_path):
    path, text = write(tmp_path, """
        kind: pipeline
        steps:
          data:
            kind: synth
            out: data
            identites: 2
    """)
    assert problems_of(path) == [f"{path}:{line_of(text, 'identites')}: steps.data.identites: unknown key; "
                                 f"did you mean 'identities'?"]


def test_missing_required_keys_point_at_their_mapping(tmp_path):
    path, text = write(tmp_path, """
        # a comment first: the job mapping starts on line 2
        kind: animate
        inputs: [photos/]
        targets:
          - {expression: happy}
          - {fps: 30}
    """)
    problems = problems_of(path)
    assert f"{path}:2: model: missing required key" in problems
    assert f"{path}:2: out: missing required key" in problems
    assert any(p.startswith(f"{path}:{line_of(text, 'fps: 30')}: targets[1]: give a target") for p in problems)
    assert len(problems) == 3


def test_bad_action_units_name_the_key_path(tmp_path):
    path, text = write(tmp_path, """
        kind: animate
        model: demo
        inputs: [photos/]
        out: videos
        targets:
          - expression: happy
          - keyframes:
              - at: 0
                aus: {AU99: 2}
    """)
    (problem,) = problems_of(path)
    assert problem.startswith(
        f"{path}:{line_of(text, 'AU99')}: targets[1].keyframes[0].aus.AU99: unknown action unit; known: AU1, AU2, "
    )


def test_union_fields_give_one_message_per_mistake(tmp_path):
    path, text = write(tmp_path, """
        kind: animate
        model: demo
        inputs: [photos/]
        out: videos
        targets:
          - keyframes: {at: 0}
          - keyframes: ""
    """)
    problems = problems_of(path)
    empty_line = line_of(text, 'keyframes: ""')
    assert problems == [
        f"{path}:{line_of(text, '{at: 0}')}: targets[0].keyframes: expected a list or a string",
        f"{path}:{empty_line}: targets[1].keyframes: must not be empty",
    ]


def test_bad_uris_are_rejected_without_echoing_them(tmp_path):
    path, text = write(tmp_path, """
        kind: train
        family: ganimation
        data: s3://Private_Bucket_Name/data
        out: http://example.com/runs
        name: r1
    """)
    problems = problems_of(path)
    assert problems[0].startswith(f"{path}:{line_of(text, 'data:')}: data: the S3 bucket name is not valid")
    assert problems[1].startswith(f"{path}:{line_of(text, 'out:')}: out: unsupported URI scheme 'http://'")
    assert not any("Private_Bucket_Name" in p or "example.com" in p for p in problems)


@pytest.mark.parametrize("text, line, column, problem", [
    ("kind: synth\nout: x: y\n", 2, 7, "mapping values are not allowed here"),
    ("kind: synth\nout: [a, b\nseed: 1\n", 3, 5, "expected ',' or ']'"),
    ("kind: synth\n\tout: x\n", 2, 1, "found character '\\t' that cannot start any token"),
])
def test_yaml_syntax_errors_give_line_and_column(tmp_path, text, line, column, problem):
    path = tmp_path / "syntax.yaml"
    path.write_text(text)
    (message,) = problems_of(path)
    assert message.startswith(f"{path}:{line}:{column}: YAML syntax error: {problem}")


def test_files_that_are_no_job_mapping(tmp_path):
    empty, _ = write(tmp_path, "", "empty.yaml")
    listed, _ = write(tmp_path, "- kind: synth\n", "list.yaml")
    assert problems_of(empty) == [f"{empty}:1: the file is empty; a job is a mapping with a `kind:` key"]
    assert problems_of(listed) == [f"{listed}:1: a job is a mapping with a `kind:` key, not a list or value"]


def test_kind_missing_or_misspelt(tmp_path):
    missing, _ = write(tmp_path, "out: data\n", "missing.yaml")
    misspelt, _ = write(tmp_path, "out: data\nkind: synht\n", "misspelt.yaml")
    assert problems_of(missing) == [f"{missing}:1: kind: missing required key; one of: animate, train, synth, eval, export, aus, pipeline"]
    (problem,) = problems_of(misspelt)
    assert problem.startswith(f"{misspelt}:2: kind: unknown kind; known: animate, train, synth, eval, export, aus, pipeline")
    assert problem.endswith("did you mean 'synth'?")


def test_duplicate_keys_are_reported(tmp_path):
    path, _ = write(tmp_path, """
        kind: synth
        out: a
        size: 64
        out: b
    """)
    assert problems_of(path) == [f"{path}:4: out: duplicate key (first at line 2)"]


def test_secret_looking_keys_are_refused_without_echoing_them(tmp_path):
    path, text = write(tmp_path, """
        kind: synth
        out: s3://bucket-name/data
        aws_secret_access_key: wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY
        execution_token: tok-123456
    """)
    problems = problems_of(path)
    assert len(problems) == 2, "one message per key, no extra 'unknown key'"
    first, second = problems
    assert first.startswith(f"{path}:{line_of(text, 'aws_secret')}: aws_secret_access_key: credentials do not belong")
    assert "AWS_PROFILE" in first and "AWS_SECRET_ACCESS_KEY" in first
    assert second.startswith(f"{path}:{line_of(text, 'execution_token')}: execution_token: credentials")
    assert not any("wJalrXUtnFEMI" in p or "tok-123456" in p for p in problems)


def test_env_references_resolve_and_unset_ones_are_located(tmp_path, monkeypatch):
    path, text = write(tmp_path, """
        kind: synth
        out: s3://${env:GANBATCH_TEST_BUCKET}/data
        identities: ${env:GANBATCH_TEST_COUNT}
        seed: ${nonsense}
    """)
    monkeypatch.delenv("GANBATCH_TEST_BUCKET", raising=False)
    monkeypatch.setenv("GANBATCH_TEST_COUNT", "7")
    problems = problems_of(path)
    assert problems == [
        f"{path}:{line_of(text, 'out:')}: out: environment variable GANBATCH_TEST_BUCKET is not set",
        f"{path}:{line_of(text, 'seed:')}: seed: unknown ${{...}} reference; use ${{env:NAME}}, "
        f"${{env:NAME:-default}} or ${{steps.STEP.OUTPUT}}",
    ]
    monkeypatch.setenv("GANBATCH_TEST_BUCKET", "my-bucket")
    path.write_text(text.replace("seed: ${nonsense}\n", ""))
    job = load_job(path).job
    assert (job.out, job.identities) == ("s3://my-bucket/data", 7)


def test_env_values_are_not_echoed_in_errors(tmp_path, monkeypatch):
    path, text = write(tmp_path, """
        kind: synth
        out: ${env:GANBATCH_TEST_OUT}
        identities: ${env:GANBATCH_TEST_COUNT}
    """)
    monkeypatch.setenv("GANBATCH_TEST_OUT", "s3://Secret_Value_Here/x")
    monkeypatch.setenv("GANBATCH_TEST_COUNT", "secretcount")
    problems = problems_of(path)
    assert [p.split(": ")[1] for p in problems] == ["out", "identities"]
    assert not any("Secret_Value_Here" in p or "secretcount" in p for p in problems)


def test_every_error_is_listed_at_once_in_file_order(tmp_path):
    path, text = write(tmp_path, """
        kind: animate
        model: demo
        inputs: []
        out: videos
        targets:
          - expression: hapyp
            fps: -1
        crop: {mode: detect, margn: 0.2}
        output: {format: avi}
        password: hunter22
    """)
    problems = problems_of(path, overrides=["execution.workers=zero"])
    expected_lines = [line_of(text, marker) for marker in ("inputs", "hapyp", "fps", "margn", "avi", "password")]
    assert [int(p.split(":")[1]) for p in problems[:-1]] == expected_lines
    assert problems[-1].startswith("--set: execution.workers: Input should be a valid integer")
    assert "did you mean 'happy'?" in problems[1] and "did you mean 'margin'?" in problems[3]
    assert not any("hunter22" in p or "hapyp" in p for p in problems)


def test_command_kind_mismatch_and_flag_origins(tmp_path):
    path, text = write(tmp_path, """
        kind: train
        family: ganimation
        data: d
        out: o
        name: r
    """)
    (problem,) = problems_of(path, kind="synth")
    assert problem.startswith(f"{path}:1: kind: this command runs `kind: synth` jobs")
    problems = problems_of(None, kind="synth", values=[("identities", 0, "--identities")])
    assert problems == ["command line: out: missing required key",
                        "--identities: identities: Input should be greater than or equal to 1"]


def test_yaml_merge_keys_share_settings_and_own_keys_win(tmp_path):
    path, text = write(tmp_path, """
        kind: pipeline
        steps:
          data: {kind: synth, out: data}
          first: &train
            kind: train
            name: first
            family: ganimation
            data: ${steps.data.data}
            out: runs
            execution: {workers: 1}
          second:
            <<: *train
            name: second
            execution: {workers: 2}
            batch_size: 3
    """)
    (problem,) = problems_of(path)
    line = line_of(text, "second:")
    assert problem == f"{path}:{line}: steps.second: batch_size 3 does not split evenly over 2 workers"
    path.write_text(text.replace("batch_size: 3", "batch_size: 4"))
    steps = load_job(path).job.steps
    first, second = steps["first"], steps["second"]
    assert (second.name, second.family, second.data) == ("second", "ganimation", "${steps.data.data}")
    assert (first.execution.workers, second.execution.workers) == (1, 2)
