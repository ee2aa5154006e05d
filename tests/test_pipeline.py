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


def pipeline_file(tmp_path: Path, train_seed: int = 0) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(textwrap.dedent(f"""
        kind: pipeline
        steps:
          - kind: synth
            out: {tmp_path / 'data'}
            identities: 2
            per_identity: 1
            size: 64
            layouts: [ganimation]
            contact_sheet: false
          - kind: train
            name: tiny
            family: ganimation
            data: ${{steps.synth.data}}
            out: {tmp_path / 'runs'}
            seed: {train_seed}
          - kind: animate
            model: ${{steps.tiny.model}}
            inputs: ["${{steps.synth.data}}/imgs"]
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
        "synth.data": data, "tiny.model": animate.model, "tiny.run": str(tmp_path / "runs" / "tiny"),
        "animate.out": str(tmp_path / "videos"), "animate.manifest": str(tmp_path / "videos" / "manifest.jsonl"),
    }


def test_a_failed_step_stops_the_pipeline(tmp_path, recorded_runners):
    result = run_job(load_job(pipeline_file(tmp_path, train_seed=13)).job)
    assert not result.ok
    assert [name for name, _ in result.steps] == ["synth", "tiny"]
    assert [job.kind for job in recorded_runners] == ["train"]


def test_run_command_prints_outputs_and_fails_with_the_pipeline(tmp_path, recorded_runners):
    good = CliRunner().invoke(main, ["run", str(pipeline_file(tmp_path))])
    assert good.exit_code == 0, good.output
    assert f"tiny.model: {tmp_path / 'runs' / 'tiny' / 'model.pt'}" in good.stdout
    assert "step 2/3 tiny (train)" in good.stderr
    bad = CliRunner().invoke(main, ["run", str(pipeline_file(tmp_path, train_seed=13))])
    assert bad.exit_code == 1 and "the pipeline job failed" in bad.stderr


def test_plan_lists_steps_and_defers_those_that_need_earlier_outputs(tmp_path, recorded_runners):
    plan = plan_job(load_job(pipeline_file(tmp_path)).job).splitlines()
    assert plan[0] == "step 1/3 synth (synth)" and plan[1].startswith("  2 identities x 1 images")
    assert plan[2:] == [
        "step 2/3 tiny (train)", "  uses the outputs of synth; planned when it starts",
        "step 3/3 animate (animate)", "  uses the outputs of tiny, synth; planned when it starts",
    ]


@pytest.mark.parametrize("reference, message", [
    ("${steps.tiyn.model}", "no earlier step named 'tiyn'; earlier steps: synth, tiny; did you mean 'tiny'?"),
    ("${steps.tiny.modle}",
     "step 'tiny' (train) has no output 'modle'; its outputs: model, run; did you mean 'model'?"),
    ("${steps.later.out}", "step 'later' is steps[3], which runs later; a step can use only earlier steps' outputs"),
    ("${steps.again.run}", "step 'again' is this step; a step can use only earlier steps' outputs"),
    ("${steps.synth.data}", None),
])
def test_step_references_are_checked_when_validating(tmp_path, reference, message):
    path = tmp_path / "refs.yaml"
    text = textwrap.dedent(f"""\
        kind: pipeline
        steps:
          - {{kind: synth, out: data}}
          - {{kind: train, name: tiny, family: ganimation, data: data, out: runs}}
          - kind: train
            name: again
            family: ganimation
            data: "{reference}"
            out: runs
          - {{kind: train, name: later, family: ganimation, data: data, out: runs}}
    """)
    path.write_text(text)
    line = next(number for number, line in enumerate(text.splitlines(), 1) if reference in line)
    if message is None:
        assert load_job(path).job.steps[2].data == reference  # a valid reference stays as a placeholder
        return
    with pytest.raises(ManifestError) as caught:
        load_job(path)
    assert [str(p) for p in caught.value.problems] == [f"{path}:{line}: steps[2].data: {message}"]


def test_ambiguous_and_out_of_pipeline_references(tmp_path):
    ambiguous = tmp_path / "ambiguous.yaml"
    ambiguous.write_text(textwrap.dedent("""
        kind: pipeline
        steps:
          - {kind: synth, out: a}
          - {kind: synth, out: b}
          - {kind: train, name: t, family: ganimation, data: "${steps.synth.data}", out: runs}
    """))
    with pytest.raises(ManifestError, match=r"steps\[2\].data: step name 'synth' is ambiguous: steps\[0\] and"):
        load_job(ambiguous)
    alone = tmp_path / "alone.yaml"
    alone.write_text("kind: train\nname: t\nfamily: ganimation\ndata: ${steps.synth.data}\nout: runs\n")
    with pytest.raises(ManifestError, match=r"alone.yaml:4: data: \$\{steps...\} references work only inside"):
        load_job(alone)


def test_python_api_validation_also_checks_references():
    data = {"kind": "pipeline", "steps": [
        {"kind": "synth", "out": "data"},
        {"kind": "train", "name": "t", "family": "ganimation", "data": "${steps.synt.data}", "out": "runs"},
    ]}
    with pytest.raises(ValidationError, match=r"steps\[1\].data: no earlier step named 'synt'"):
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
