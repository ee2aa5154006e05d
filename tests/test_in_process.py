"""`animate` in this process, without Ray (ganbatch.animate.in_process): which jobs auto runs there, the same frames
and rows as the Ray stream, bad input, a model that cannot open, and a bounded read-ahead. Real ffmpeg, no Ray."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from pydantic import ValidationError

from ganbatch.animate import in_process, pipeline, run_animate
from ganbatch.animate.pipeline import _executor
from ganbatch.animate.plan import WorkItem
from ganbatch.animate.resources import plan_stages
from ganbatch.animate.stages import GeneratorSpec, RunSpec
from ganbatch.animate.targets import load_targets
from ganbatch.animate.item import ItemSettings
from ganbatch.cli import main
from ganbatch.cluster import local_cpus
from ganbatch.jobs import AnimateJob
from ganbatch.jobs.animate import IN_PROCESS_MAX_FRAMES, AnimateExecution, CropSpec, OutputSpec, TargetSpec
from ganbatch.models import GANimationGenerator, load_generator, save_generator
from ganbatch.render import render_clip
from ganbatch.synth import render_face, sample_identity
from ganbatch.targets import expression_aus, expression_schedule

SIZE = 32


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_generator(GANimationGenerator(conv_dim=8, repeat_num=1), path, {"image_size": SIZE})
    return path


@pytest.fixture
def no_ray(monkeypatch):
    """This process as a command's: no RAY_ADDRESS, and no Ray running (the test session's own may be)."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(pipeline, "_ray_running", lambda: False)


@pytest.fixture
def photos(tmp_path):
    """Three synthetic face crops and two files that are not usable photos."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(3):
        Image.fromarray(render_face(sample_identity(seed), np.zeros(17), size=SIZE)[0]).save(folder / f"f{seed}.png")
    (folder / "notes.jpg").write_text("shopping list: eggs, milk\n")
    (folder / "corrupt.png").write_bytes((folder / "f0.png").read_bytes()[:100])
    return folder


def job(model, inputs, out, frames=6, **execution) -> AnimateJob:
    return AnimateJob(model=str(model), inputs=[str(inputs)], out=str(out),
                      targets=[{"expression": "happy", "frames": frames, "fps": 10}],
                      execution={"runtime": "torch", "batch_size": 4, **execution})


def test_auto_runs_a_small_local_job_in_process_and_anything_else_on_ray(model, tmp_path, monkeypatch, no_ray):
    small = job(model, tmp_path, tmp_path / "out")
    assert _executor(small, IN_PROCESS_MAX_FRAMES)[0] == "in-process"
    assert _executor(small, IN_PROCESS_MAX_FRAMES + 1) == (
        "ray", f"{IN_PROCESS_MAX_FRAMES + 1} frames, over the {IN_PROCESS_MAX_FRAMES} that run in process")
    for setting in ({"workers": 1}, {"address": "ray://head:10001"}, {"cpus_per_worker": 1.0}):
        assert _executor(job(model, tmp_path, tmp_path / "out", **setting), 10)[0] == "ray", setting
    assert _executor(job(model, tmp_path, tmp_path / "out", executor="ray"), 10)[0] == "ray"
    assert _executor(job(model, tmp_path, tmp_path / "out", executor="in-process"), 10 ** 6)[0] == "in-process"
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    assert _executor(small, 10) == ("ray", "RAY_ADDRESS is set")
    monkeypatch.delenv("RAY_ADDRESS")
    monkeypatch.setattr(pipeline, "_ray_running", lambda: True)  # e.g. a Python API user's own Ray
    assert _executor(small, 10) == ("ray", "Ray is running in this process")


def test_in_process_with_a_ray_setting_is_a_validation_error_naming_it():
    with pytest.raises(ValidationError, match="in-process runs without Ray, so workers, cpus_per_worker cannot"):
        AnimateExecution(executor="in-process", workers=2, cpus_per_worker=1.0)


def test_dry_run_says_where_the_stages_run(model, photos, tmp_path, no_ray):
    args = ["animate", str(photos), "--model", str(model), "--expression", "happy", "--out", str(tmp_path / "o"),
            "--dry-run"]
    small = CliRunner().invoke(main, [*args, "--frames", "6"])
    assert small.exit_code == 0, small.output
    assert "executor: in this process, no Ray (30 frames, a small local job;" in small.stdout
    assert f"encode: {local_cpus()} thread(s) of this process" in small.stdout
    large = CliRunner().invoke(main, [*args, "--frames", "200"])
    assert "executor: a local Ray, started and stopped with the command (1000 frames, over the 512" in large.stdout
    asked = CliRunner().invoke(main, [*args, "--frames", "6", "--executor", "ray"])
    assert "executor: a local Ray, started and stopped with the command (executor ray;" in asked.stdout


def test_bad_files_fail_alone_and_the_exit_status_tells(model, photos, tmp_path, no_ray):
    out = tmp_path / "videos"
    done = CliRunner().invoke(main, ["-v", "animate", str(photos), "--model", str(model), "--expression", "happy",
                                     "--frames", "6", "--fps", "10", "--runtime", "torch", "--out", str(out)])
    assert done.exit_code == 1, done.output
    assert "using: this process, no Ray" in done.stderr
    assert "5 videos: 3 ok, 2 failed, 0 skipped" in done.stderr and "(in process)" in done.stderr
    rows = {Path(row["input"]).name: row for row in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())}
    assert {name for name, row in rows.items() if row["status"] == "ok"} == {"f0.png", "f1.png", "f2.png"}
    assert "not an image" in rows["notes.jpg"]["error"] and "notes.jpg" in rows["notes.jpg"]["error"]
    assert "corrupt or truncated" in rows["corrupt.png"]["error"]
    assert sorted(path.name for path in out.glob("*.mp4")) == [f"f{seed}__happy.mp4" for seed in range(3)]
    assert not [path for path in out.iterdir() if ".tmp" in path.name]


def test_what_a_writer_stopped_during_the_run_left_is_removed_when_the_run_ends(model, photos, tmp_path, no_ray,
                                                                              monkeypatch, caplog):
    """An encode task killed mid-write (its node lost, its process killed) leaves its hidden temporary file; Ray makes
    the item again elsewhere. The run removes such files once its stream has ended, not only at the next run's start
    (tests/test_animate_faults.py met one after a lost node)."""
    out = tmp_path / "videos"
    stream = pipeline._run_stream

    def stream_with_a_writer_stopped_mid_write(*args):
        stream(*args)
        (out / ".f1__happy.mp4.tmp-0123abcd").write_bytes(b"half a video")

    monkeypatch.setattr(pipeline, "_run_stream", stream_with_a_writer_stopped_mid_write)
    with caplog.at_level("INFO", logger="ganbatch"):
        result = run_animate(job(model, photos, out))
    assert result.succeeded == 3
    assert not [path.name for path in out.iterdir() if ".tmp" in path.name]
    assert "removed 1 temporary file(s) left by workers of this run that were stopped mid-write" in caplog.text


def test_in_process_frames_equal_the_one_clip_renderer(model, tmp_path):
    """Lossless PNG output through the in-process stream against render_clip directly (the Ray stream's own test is
    test_animate.py's test_ray_frames_equal_the_one_clip_renderer)."""
    face = render_face(sample_identity(3), np.zeros(17), size=SIZE)[0]
    Image.fromarray(face).save(tmp_path / "face.png")
    animate = AnimateJob(model=str(model), inputs=[str(tmp_path / "face.png")], out=str(tmp_path / "out"),
                         targets=[{"expression": "sad", "frames": 7, "fps": 25, "input_first": True}],
                         output={"format": "png"}, execution={"batch_size": 3, "runtime": "torch",
                                                              "executor": "in-process"})
    result = run_animate(animate)
    assert result.ok and result.succeeded == 1 and result.executor == "in-process" and result.stats == ""
    targets = expression_schedule(np.zeros(17, np.float32), expression_aus("sad"), fps=25, frames=7,
                                  easing="ease-in-out", input_first=True).targets()
    generator, info = load_generator(model)
    expected = render_clip(generator, info, face, targets, chunk_size=3, input_first=True).frames
    got = np.stack([np.asarray(Image.open(path)) for path in sorted((tmp_path / "out" / "face__sad").glob("*.png"))])
    np.testing.assert_array_equal(got, expected)


def test_a_model_that_cannot_open_fails_every_item_with_the_reason(model, photos, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("no memory for the model")

    monkeypatch.setattr(in_process, "Generate", refuse)
    result = run_animate(job(model, photos, tmp_path / "out", executor="in-process"))
    assert not result.ok and (result.succeeded, result.failed) == (0, 5)
    assert all("the pipeline stopped before this item was made: " in row["error"] and "no memory for the model"
               in row["error"] for row in result.rows)
    assert len((tmp_path / "out" / "manifest.jsonl").read_text().splitlines()) == 5
    assert not result.stream_abandoned


def test_prepare_runs_only_a_few_batches_ahead_of_the_generator(model, tmp_path, monkeypatch):
    """A long job explicitly in process holds a bounded number of prepared clips, not every item's."""
    prepared, generated, most_waiting = [], [], []

    def prepare(row, spec):
        prepared.append(row["output"])
        return row

    class Generate:
        def __init__(self, *args, **kwargs):
            pass

        def __call__(self, batch):
            most_waiting.append(len(prepared) - len(generated))
            generated.extend(batch["output"])
            return batch

    def encode(row, spec):
        return {"output": row["output"], "row": "{}", "model_seconds": 0.0, "decision": ""}

    monkeypatch.setattr(in_process, "prepare", prepare)
    monkeypatch.setattr(in_process, "Generate", Generate)
    monkeypatch.setattr(in_process, "encode", encode)
    items = [WorkItem(f"{index}.png", f"{index}.mp4", f"{index}.mp4", 0, "happy") for index in range(40)]
    settings = ItemSettings(model=str(model), crop=CropSpec(), output=OutputSpec())
    spec = RunSpec(settings, load_targets([TargetSpec(expression="happy")]), SIZE, 0.0,
                   GeneratorSpec(str(model), "torch", "cpu", "fp32", False, 6, False, 0.0))
    plan = plan_stages(AnimateExecution(batch_size=6), cpus=2, gpus=0, cpu_nodes=1, node_cpus=2, todo=40,
                       frames_per_clip=3)
    rows = list(in_process.stream_rows(items, spec, plan, encoders=2))
    assert sorted(row["output"] for row in rows) == sorted(item.output for item in items)
    assert generated == [item.output for item in items]  # in item order, each once
    assert max(most_waiting) <= (in_process.PREPARED_AHEAD + 1) * plan.clips_per_call, most_waiting


def test_the_storage_retry_budget_is_per_thread():
    """Stages in threads each hold their own budget (a global, shared by every thread, let one stage's budget
    change another's)."""
    import threading

    from ganbatch.io import storage

    inside, release, seen = threading.Event(), threading.Event(), {}

    def other_stage():
        with storage.retry_budget(5):
            inside.set()
            release.wait(10)
            seen["other"] = storage.retry_seconds()

    with storage.retry_budget(0):
        thread = threading.Thread(target=other_stage)
        thread.start()
        inside.wait(10)
        seen["main"] = storage.retry_seconds()  # while the other thread is inside its own budget
        release.set()
        thread.join()
    assert seen == {"main": 0, "other": 5} and storage.retry_seconds() == storage.RETRY_SECONDS
