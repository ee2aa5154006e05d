"""`kind: pipeline`: step references are checked when the job is validated and filled in when the steps run.

The pipeline tests run the real synth runner and stand-in train/animate runners defined in this module (the runner
table is pointed here), which record the jobs they receive.
"""
import importlib
import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from ganbatch.cli import main
from ganbatch.jobs import JOB_ADAPTER
from ganbatch.jobs.load import load_job
from ganbatch.jobs.problems import ManifestError
from ganbatch.runner import RUNNER_MODULES, plan_job, run_job

JOBS = Path(__file__).resolve().parents[1] / "jobs"
RECEIVED: list = []


@dataclass
class RecordedResult:
    ok: bool
    outputs: dict = field(default_factory=dict)


def run_train(job):
    RECEIVED.append(job)
    run = os.path.join(job.out, job.name)
    return RecordedResult(ok=job.steps > 0 and job.seed != 13, outputs={"model": os.path.join(run, "model.pt"),
                                                                       "run": run})


def plan_train(job):
    return f"{job.steps} steps"


def run_animate(job):
    RECEIVED.append(job)
    return RecordedResult(ok=True, outputs={"out": job.out, "manifest": os.path.join(job.out, job.manifest)})


def plan_animate(job):
    return f"{len(job.inputs)} inputs x {len(job.targets)} targets"


@pytest.fixture
def recorded_runners(monkeypatch):
    """Point the train and animate runners at this module; the list of jobs they received."""
    RECEIVED.clear()
    monkeypatch.setitem(RUNNER_MODULES, "train", __name__)
    monkeypatch.setitem(RUNNER_MODULES, "animate", __name__)
    return RECEIVED


# run_train above fails for this seed; `--set steps.train.seed=13` makes the pipeline's train step fail.
FAILING_TRAIN = "steps.train.seed=13"


def pipeline_file(tmp_path: Path) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(textwrap.dedent(f"""
        kind: pipeline
        steps:
          data:
            kind: synth
            out: {tmp_path / 'data'}
            identities: 2
            per_identity: 1
            size: 64
            layouts: [ganimation]
            contact_sheet: false
          train:
            kind: train
            name: tiny
            family: ganimation
            data: ${{steps.data.data}}
            out: {tmp_path / 'runs'}
          videos:
            kind: animate
            model: ${{steps.train.model}}
            inputs: ["${{steps.data.data}}/imgs"]
            out: {tmp_path / 'videos'}
            targets: [{{expression: happy}}]
    """))
    return path


def test_steps_run_in_order_with_earlier_outputs_filled_in(tmp_path, recorded_runners):
    result = run_job(load_job(pipeline_file(tmp_path)).job)
    assert result.ok
    train, animate = recorded_runners
    data = str(tmp_path / "data")
    assert train.data == data
    assert animate.model == str(tmp_path / "runs" / "tiny" / "model.pt")
    assert animate.inputs == [f"{data}/imgs"]
    assert len(list((tmp_path / "data" / "imgs").glob("*.jpg"))) == 2  # the real synth step ran first
    assert result.outputs == {
        "data.data": data, "train.model": animate.model, "train.run": str(tmp_path / "runs" / "tiny"),
        "videos.out": str(tmp_path / "videos"), "videos.manifest": str(tmp_path / "videos" / "manifest.jsonl"),
    }


def test_a_failed_step_stops_the_pipeline(tmp_path, recorded_runners):
    result = run_job(load_job(pipeline_file(tmp_path), overrides=[FAILING_TRAIN]).job)
    assert not result.ok
    assert [name for name, _ in result.steps] == ["data", "train"]
    assert [job.kind for job in recorded_runners] == ["train"]


def test_run_command_prints_outputs_and_fails_with_the_pipeline(tmp_path, recorded_runners):
    good = CliRunner().invoke(main, ["run", str(pipeline_file(tmp_path))])
    assert good.exit_code == 0, good.output
    assert f"train.model: {tmp_path / 'runs' / 'tiny' / 'model.pt'}" in good.stdout
    assert "step 2/3 train (train)" in good.stderr
    bad = CliRunner().invoke(main, ["run", str(pipeline_file(tmp_path)), "--set", FAILING_TRAIN])
    assert bad.exit_code == 1 and "the pipeline job failed" in bad.stderr


def test_plan_lists_steps_and_defers_those_that_need_earlier_outputs(tmp_path, recorded_runners):
    plan = plan_job(load_job(pipeline_file(tmp_path)).job).splitlines()
    assert plan[0] == "step 1/3 data (synth)" and plan[1].startswith("  2 identities x 1 images")
    assert plan[2:] == [
        "step 2/3 train (train)", "  uses the outputs of data; planned when it starts",
        "step 3/3 videos (animate)", "  uses the outputs of train, data; planned when it starts",
    ]


@pytest.mark.parametrize("reference, message", [
    ("${steps.trian.model}", "no earlier step named 'trian'; earlier steps: data, train; did you mean 'train'?"),
    ("${steps.train.modle}",
     "step 'train' (train) has no output 'modle'; its outputs: model, run; did you mean 'model'?"),
    ("${steps.later.out}", "step 'later' runs later; a step can use only earlier steps' outputs"),
    ("${steps.again.run}", "step 'again' is this step; a step can use only earlier steps' outputs"),
    ("${steps.data.data}", None),
])
def test_step_references_are_checked_when_validating(tmp_path, reference, message):
    path = tmp_path / "refs.yaml"
    text = textwrap.dedent(f"""\
        kind: pipeline
        steps:
          data: {{kind: synth, out: data}}
          train: {{kind: train, name: tiny, family: ganimation, data: data, out: runs}}
          again:
            kind: train
            name: again
            family: ganimation
            data: "{reference}"
            out: runs
          later: {{kind: train, name: later, family: ganimation, data: data, out: runs}}
    """)
    path.write_text(text)
    line = next(number for number, line in enumerate(text.splitlines(), 1) if reference in line)
    if message is None:
        assert load_job(path).job.steps["again"].data == reference  # a valid reference stays as a placeholder
        return
    with pytest.raises(ManifestError) as caught:
        load_job(path)
    assert [str(p) for p in caught.value.problems] == [f"{path}:{line}: steps.again.data: {message}"]


def test_step_names_and_shape_are_checked_and_out_of_pipeline_references_rejected(tmp_path):
    badly_named = tmp_path / "badly_named.yaml"
    badly_named.write_text("kind: pipeline\nsteps:\n  data: {kind: synth, out: a}\n  2nd try: {kind: synth, out: b}\n")
    with pytest.raises(ManifestError) as caught:
        load_job(badly_named)
    assert [str(p) for p in caught.value.problems] == [
        f"{badly_named}:4: steps.2nd try: a step name starts with a letter and holds only letters, digits, '_' and '-'"
    ]
    listed = tmp_path / "listed.yaml"
    listed.write_text("kind: pipeline\nsteps:\n  - {kind: synth, out: a}\n")
    with pytest.raises(ManifestError, match=r"listed.yaml:2: steps: map each step's name to its job"):
        load_job(listed)
    alone = tmp_path / "alone.yaml"
    alone.write_text("kind: train\nname: t\nfamily: ganimation\ndata: ${steps.synth.data}\nout: runs\n")
    with pytest.raises(ManifestError, match=r"alone.yaml:4: data: \$\{steps...\} references work only inside"):
        load_job(alone)


def test_python_api_validation_also_checks_references():
    data = {"kind": "pipeline", "steps": {
        "data": {"kind": "synth", "out": "data"},
        "train": {"kind": "train", "name": "t", "family": "ganimation", "data": "${steps.dat.data}", "out": "runs"},
    }}
    with pytest.raises(ValidationError, match=r"steps.train.data: no earlier step named 'dat'"):
        JOB_ADAPTER.validate_python(data)


def _has_runner(kind: str) -> bool:
    try:
        return hasattr(importlib.import_module(RUNNER_MODULES[kind]), f"run_{kind}")
    except ImportError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not (_has_runner("train") and _has_runner("animate")), reason="run_train/run_animate not built yet")
def test_quickstart_runs_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the quickstart writes under ./out/quickstart
    result = CliRunner().invoke(main, ["run", str(JOBS / "quickstart.yaml")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out/quickstart/runs/tiny/model.pt").is_file()
    videos = list((tmp_path / "out/quickstart/videos").rglob("*.gif"))
    assert len(videos) == 4  # 2 identities x 2 images, one target
    assert (tmp_path / "out/quickstart/videos/manifest.jsonl").is_file()
