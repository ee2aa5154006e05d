"""The parts of `ganbatch animate` that need no Ray: input discovery and output names, targets, chunked rendering,
the manifest writer, model URIs and the command's flags."""
import json
import math
import os
import textwrap

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from ganbatch.animate.item import ItemSettings
from ganbatch.animate.manifest import ManifestWriter, manifest_row
from ganbatch.animate.plan import PlanError, WorkItem, existing_outputs, find_inputs, plan_items
from ganbatch.animate.resources import ResourceError, plan_stages
from ganbatch.animate.targets import (
    DrivingTarget,
    ExpressionTarget,
    KeyframeTarget,
    SequenceTarget,
    TargetError,
    check_condition,
    face_scale,
    load_targets,
)
from ganbatch.cli import main
from ganbatch.jobs.animate import AnimateExecution, CropSpec, OutputSpec, TargetSpec
from ganbatch.models import GANimationGenerator, describe_generator
from ganbatch.models import locate
from ganbatch.models.locate import ModelNotFoundError, open_model
from ganbatch.render import PreparedClip, render_clip, render_clips
from ganbatch.runtimes.torch_engine import TorchRuntime
from ganbatch.targets import AU_NAMES, expression_aus, write_openface_csv


def touch(root, *names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


# --------------------------------------------------------------------------------------------------- plan


def test_folders_globs_and_lists_name_images_with_their_sub_folders(tmp_path):
    touch(tmp_path, "in/a.jpg", "in/B.PNG", "in/readme.md", "in/.hidden.jpg", "in/x/c.webp", "in/x/y/d.bmp")
    folder = tmp_path / "in"
    assert [(i.uri, i.stem) for i in find_inputs([str(folder)], recursive=False)] == [
        (str(folder / "B.PNG"), "B"), (str(folder / "a.jpg"), "a")]
    assert [i.stem for i in find_inputs([str(folder)], recursive=True)] == ["B", "a", "x/c", "x/y/d"]
    assert [i.stem for i in find_inputs([str(folder / "**" / "*.webp")], recursive=True)] == ["x/c"]

    (tmp_path / "list.txt").write_text("# faces\n\nin/a.jpg\nin/x\n")
    (tmp_path / "list.jsonl").write_text(json.dumps({"input": "in/x/y/d.bmp"}) + "\n")
    images = find_inputs([str(tmp_path / "list.txt"), str(tmp_path / "list.jsonl"), str(folder / "a.jpg")], False)
    assert [(i.uri, i.stem) for i in images] == [
        (str(folder / "a.jpg"), "a"), (str(folder / "x" / "c.webp"), "c"), (str(folder / "x" / "y" / "d.bmp"), "d")]


@pytest.mark.parametrize("inputs, message", [
    (["missing.jpg"], "no such file"),
    (["missing_folder"], "not found"),
    (["empty"], "no images"),
    (["list.txt"], "may not name another list"),
])
def test_bad_inputs_are_plan_errors(tmp_path, monkeypatch, inputs, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "list.txt").write_text("other.txt\n")
    with pytest.raises(PlanError, match=message):
        find_inputs(inputs, recursive=False)


def test_output_names_mirror_stems_and_collisions_are_refused(tmp_path):
    touch(tmp_path, "in/a.jpg", "in/x/a.jpg", "in/a.png")
    images = [i for i in find_inputs([str(tmp_path / "in")], recursive=True) if not i.uri.endswith(".png")]
    items = plan_items(images, ["happy", "sad"], "s3://bucket/out", "mp4")
    assert [(item.output, item.target, item.label) for item in items] == [
        ("s3://bucket/out/a__happy.mp4", 0, "happy"), ("s3://bucket/out/a__sad.mp4", 1, "sad"),
        ("s3://bucket/out/x/a__happy.mp4", 0, "happy"), ("s3://bucket/out/x/a__sad.mp4", 1, "sad")]
    (png,) = plan_items(images[:1], ["happy"], "out", "png")  # a folder of frames, complete once frame 0 is there
    assert (png.output, png.marker) == ("out/a__happy", "a__happy/frame_00000.png")
    with pytest.raises(PlanError, match=r"a\.jpg and .*a\.png would both be written to out/a__happy\.mp4"):
        plan_items(find_inputs([str(tmp_path / "in")], recursive=False), ["happy"], "out", "mp4")


def test_existing_outputs_lists_the_files_below_the_destination(tmp_path):
    touch(tmp_path, "out/a__happy.mp4", "out/x/b__sad/frame_00000.png", "out/.c__happy.mp4.tmp-1234")
    assert existing_outputs(str(tmp_path / "out")) == {"a__happy.mp4", "x/b__sad/frame_00000.png"}
    assert existing_outputs(str(tmp_path / "nothing_yet")) == set()


# --------------------------------------------------------------------------------------------------- targets


def test_expression_targets_go_from_the_source_to_the_preset_with_aus_over_it():
    happy, only_aus = load_targets([TargetSpec(expression="happy:0.5", aus={"AU45": 4}, frames=5),
                                    TargetSpec(aus={"AU12": 5}, frames=3, pingpong=True)])
    source = np.full(17, 1.0, np.float32)
    targets = happy.schedule(source).targets()
    assert targets.shape == (5, 17)
    np.testing.assert_allclose(targets[0], source)
    end = expression_aus("happy") * 0.5
    end[AU_NAMES.index("AU45")] = 4
    np.testing.assert_allclose(targets[-1], end)

    targets = only_aus.schedule(source).targets()  # over the source AUs, there and back
    assert targets.shape == (5, 17)
    expected_end = source.copy()
    expected_end[AU_NAMES.index("AU12")] = 5
    np.testing.assert_allclose(targets[2], expected_end)
    np.testing.assert_allclose(targets[4], source)


def test_default_expression_length_is_two_seconds():
    (target,) = load_targets([TargetSpec(expression="blink", fps=10)])
    assert target.schedule(np.zeros(17, np.float32)).num_frames == 20


def test_openface_csv_rows_as_a_path_or_one_target_per_row(tmp_path):
    rows = np.array([[0.0] * 17, [2.0] * 17, [4.0] * 17], np.float32)
    write_openface_csv(tmp_path / "acted.csv", ["one.jpg", "two.jpg", "three.jpg"], rows)
    (path,) = load_targets([TargetSpec(name="acted", aus_csv=str(tmp_path / "acted.csv"), fps=10, frames=4)])
    assert isinstance(path, SequenceTarget)
    np.testing.assert_allclose(path.schedule(np.zeros(17)).targets(), rows[[0, 1, 2, 2]])  # the last row held

    per_row = load_targets([TargetSpec(name="acted", aus_csv=str(tmp_path / "acted.csv"), aus_csv_mode="per-row")])
    assert [target.label for target in per_row] == ["acted-one", "acted-two", "acted-three"]
    assert all(isinstance(target, ExpressionTarget) for target in per_row)
    np.testing.assert_allclose(per_row[1].schedule(np.zeros(17, np.float32)).targets()[-1], rows[1])


def test_keyframe_file_with_landmark_files_and_job_timing_over_the_file(tmp_path):
    points = np.random.default_rng(0).uniform(4, 28, (68, 2)).astype(np.float32)
    np.savetxt(tmp_path / "open.txt", points.reshape(1, -1))
    (tmp_path / "keys.yaml").write_text(textwrap.dedent("""
        fps: 10
        duration: 1.0
        keyframes:
          - {frame: 0, landmarks: open.txt}
          - {frame: 3, landmarks: open.txt}
    """))
    (from_file,) = load_targets([TargetSpec(keyframes=str(tmp_path / "keys.yaml"))])
    assert isinstance(from_file, KeyframeTarget) and from_file.condition == "landmarks"
    schedule = from_file.schedule(np.zeros(17, np.float32))
    assert (schedule.fps, schedule.num_frames) == (10, 10)
    np.testing.assert_allclose(schedule.targets()[5], points[np.r_[0:60, 61:64, 65:68]], atol=1e-4)  # 66 of 68

    (overridden,) = load_targets([TargetSpec(keyframes=str(tmp_path / "keys.yaml"), frames=4, pingpong=True)])
    schedule = overridden.schedule(np.zeros(17, np.float32))
    assert (schedule.fps, schedule.path_frames, schedule.num_frames) == (10, 4, 7)


def test_bad_keyframes_and_wrong_kinds_are_target_errors(tmp_path):
    with pytest.raises(TargetError, match="target 'late'.*past the last frame"):
        load_targets([TargetSpec(name="late", frames=3, keyframes=[{"frame": 0, "preset": "happy"},
                                                                    {"frame": 5, "preset": "sad"}])])
    (expression,) = load_targets([TargetSpec(expression="happy")])
    with pytest.raises(TargetError, match="target 'happy' gives aus, but m.pt is a gannotation model"):
        check_condition([expression], "gannotation", "landmarks", "m.pt")
    (points,) = load_targets([TargetSpec(name="points", keyframes=[{"frame": 0, "landmarks": [[1, 2]] * 66}])])
    check_condition([expression], "ganimation", "aus", "m.pt")
    check_condition([points], "gannotation", "landmarks", "m.pt")
    with pytest.raises(TargetError) as every:  # each target that does not fit is named, in one line
        check_condition([expression, points, expression], "gannotation", "landmarks", "m.pt")
    assert str(every.value).count("gives aus, but m.pt is a gannotation model, conditioned on landmarks: use "
                                  "landmarks, driving_video or landmark keyframes") == 2
    with pytest.raises(TargetError, match="^target 'points' gives landmarks, but m.pt is a ganimation model"):
        check_condition([points], "ganimation", "aus", "m.pt")


def test_driving_motion_is_scaled_to_the_source_face():
    rng = np.random.default_rng(0)
    source = rng.uniform(0, 30, (66, 2)).astype(np.float32)
    offsets = np.array([[5, 5], [6, 4], [9, 1]], np.float32)
    driving = 2 * source[None] + offsets[:, None]  # the same face at twice the size, moving
    assert face_scale(driving[0]) == pytest.approx(2 * face_scale(source), rel=1e-5)
    target = DrivingTarget("mimic", TargetSpec(driving_video="d.mp4", fps=10), driving=driving)
    targets = target.schedule(np.zeros(17, np.float32), source).targets()
    np.testing.assert_allclose(targets, source[None] + (offsets - offsets[0])[:, None] / 2, atol=1e-4)


# --------------------------------------------------------------------------------------------------- rendering


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    generator = GANimationGenerator(conv_dim=8, repeat_num=1).eval()
    return generator, describe_generator(generator, image_size=16)


def test_clips_batched_together_equal_render_clip_per_clip(tiny):
    """Frames of three clips (one with an untouched first frame) cut into shared forward passes of 4 frames."""
    generator, info = tiny
    rng = np.random.default_rng(1)
    clips = [PreparedClip(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), rng.uniform(0, 5, (count, 17)),
                          input_first) for count, input_first in ((3, False), (6, True), (2, False))]
    runtime = TorchRuntime(generator, info)
    made = render_clips(runtime, clips, batch_size=4, return_maps=True)
    for clip, got in zip(clips, made):
        expected = render_clip(generator, info, clip.face, clip.targets, chunk_size=4, input_first=clip.input_first,
                               return_maps=True)
        np.testing.assert_allclose(got.frames, expected.frames, atol=1)  # other batch compositions: last-bit noise
        np.testing.assert_allclose(got.attention, expected.attention, atol=1e-4)
    np.testing.assert_array_equal(made[1].frames[0], clips[1].face)
    (alone,) = render_clips(runtime, clips[1:2], batch_size=4)  # one clip: exactly render_clip's batches
    np.testing.assert_array_equal(alone.frames, render_clip(generator, info, clips[1].face, clips[1].targets,
                                                            chunk_size=4, input_first=True).frames)


class Counting(TorchRuntime):
    """A torch runtime that records the batch size of each forward pass."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def _run(self, x, cond):
        self.calls.append(len(x))
        return super()._run(x, cond)


def test_render_clips_uses_few_forward_passes(tiny):
    generator, info = tiny
    face = np.zeros((16, 16, 3), np.uint8)
    clips = [PreparedClip(face, np.random.default_rng(index).uniform(0, 5, (5, 17))) for index in range(3)]
    runtime = Counting(generator, info)
    render_clips(runtime, clips, batch_size=8)
    assert runtime.calls == [8, 7]  # 15 frames of 3 clips in 2 passes, not 3 x 1


def test_frames_with_the_same_target_are_generated_once(tiny):
    """A ping-pong path with held frames: the way back and the holds are copies of frames generated once."""
    from ganbatch.targets import expression_schedule

    generator, info = tiny
    targets = expression_schedule(np.zeros(17), expression_aus("happy"), frames=6, hold_frames=2,
                                  pingpong=True).targets()
    distinct = len({row.tobytes() for row in np.ascontiguousarray(targets)})
    assert len(targets) > distinct + 4  # the path really repeats itself
    face = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    runtime = Counting(generator, info)
    (clip,) = render_clips(runtime, [PreparedClip(face, targets)], batch_size=64, return_maps=True)
    assert runtime.calls == [distinct]
    each = np.concatenate([render_clip(generator, info, face, targets[index:index + 1], return_maps=True).frames
                           for index in range(len(targets))])
    np.testing.assert_allclose(clip.frames, each, atol=1)  # batch composition: last-bit noise at most
    for index, later in enumerate(targets):
        for earlier in range(index):
            if np.array_equal(targets[earlier], later):
                np.testing.assert_array_equal(clip.frames[index], clip.frames[earlier])
                np.testing.assert_array_equal(clip.attention[index], clip.attention[earlier])


def test_an_item_failure_is_a_row_naming_the_reason(tiny, tmp_path):
    """The stages' functions without Ray: a missing photo fails in prepare and encode makes its row."""
    from ganbatch.animate.stages import GeneratorSpec, RunSpec, encode, item_row, prepare

    settings = ItemSettings(model="tiny.pt", crop=CropSpec(), output=OutputSpec())
    generator_spec = GeneratorSpec("tiny.pt", "torch", "cpu", "fp32", False, 4, False, 0.0)
    spec = RunSpec(settings, load_targets([TargetSpec(expression="happy")]), 16, 0.0, generator_spec)
    item = WorkItem(str(tmp_path / "gone.jpg"), str(tmp_path / "gone__happy.mp4"), "gone__happy.mp4", 0, "happy")
    row = json.loads(encode(prepare(item_row(item), spec), spec)["row"])
    assert row["status"] == "failed" and "gone.jpg" in row["error"] and "not found" in row["error"]
    assert list(row) == ["input", "output", "status", "frames", "fps", "seconds", "error", "model", "target",
                         "model_digest", "runtime", "source_aus", "driving_held_frames"]


# --------------------------------------------------------------------------------------------------- resources


def stages(cpus, gpus=0.0, nodes=1, todo=100, frames=16, **execution):
    return plan_stages(AnimateExecution(**execution), cpus=cpus, gpus=gpus, cpu_nodes=nodes, node_cpus=cpus / nodes,
                       todo=todo, frames_per_clip=frames)


def test_on_a_cluster_the_actors_of_a_lost_node_restart_next_to_the_cpu_stages():
    for nodes, workers in ((2, 2), (3, 2), (3, 5), (10, 10)):  # worker nodes of 2 CPUs each
        plan = stages(2 * nodes, nodes=nodes, workers=workers)
        on_a_survivor = math.ceil(workers / (nodes - 1))  # the actors spread over the nodes left
        assert on_a_survivor * plan.generator_cpus + 2 * plan.task_cpus <= 2 + 1e-9, (nodes, workers, plan)
    assert stages(2 * 2, nodes=2, workers=2).generator_cpus == 0.5
    small = plan_stages(AnimateExecution(workers=2), cpus=10, gpus=0, cpu_nodes=2, node_cpus=2, todo=10,
                        frames_per_clip=16)  # the smallest node sets the share
    assert small.generator_cpus == 0.5


def test_default_stage_sizes_leave_room_for_the_cpu_stages():
    plan = stages(2)
    assert (plan.workers, plan.generator_cpus, plan.generator_gpus, plan.threads) == (1, 1.0, 0.0, None)
    assert plan.task_cpus == 0.5 and plan.clips_per_call == 1
    for workers in (2, 3, 10):  # shares of the CPU, never the CPU stages' room
        plan = stages(2, workers=workers)
        assert plan.workers * plan.generator_cpus + 2 * plan.task_cpus <= 2
    assert stages(1).generator_cpus == 0.5 and stages(1).task_cpus == 0.25  # a 1-CPU machine still runs
    gpu = stages(16, gpus=4, nodes=2, frames=8, batch_size=256)
    assert (gpu.workers, gpu.generator_gpus, gpu.generator_cpus, gpu.actors_per_node) == (4, 1.0, 1.0, 2)
    assert gpu.clips_per_call == 32  # 256 frames per pass from 8-frame clips
    assert stages(8, workers=5, todo=2).workers == 2  # never more actors than items
    explicit = stages(8, cpus_per_worker=3)
    assert (explicit.generator_cpus, explicit.threads) == (3, 3)


@pytest.mark.parametrize("execution, cpus, gpus, message", [
    ({"workers": 40}, 2, 0, "use at most 20 workers"),
    ({"cpus_per_worker": 4}, 2, 0, "fewer --cpus-per-worker"),
    ({"gpus_per_worker": 1}, 8, 0, "the cluster has 0"),
    ({"device": "cuda"}, 8, 0, "needs GPU workers"),
    ({"workers": 3}, 8, 2, "need 3 GPUs"),
])
def test_stage_sizes_the_cluster_cannot_hold_are_refused(execution, cpus, gpus, message):
    with pytest.raises(ResourceError, match=message):
        stages(cpus, gpus=gpus, **execution)


# --------------------------------------------------------------------------------------------------- manifest, model


def test_s3_manifest_is_uploaded_throttled_and_at_the_end(s3_bucket):
    import boto3

    client = boto3.session.Session().client("s3")
    uri = f"s3://{s3_bucket}/out/manifest.jsonl"

    def uploaded():
        return client.get_object(Bucket=s3_bucket, Key="out/manifest.jsonl")["Body"].read().decode().splitlines()

    row = manifest_row(input="a.jpg", output="a__happy.mp4", status="ok", model="m.pt", target="happy", frames=3)
    with ManifestWriter(uri, upload_every=3600) as writer:
        writer.append(row)
        assert len(uploaded()) == 1  # the first row goes up at once
        writer.append({**row, "input": "b.jpg"})
        assert len(uploaded()) == 1  # within the throttle
    assert [json.loads(line)["input"] for line in uploaded()] == ["a.jpg", "b.jpg"]

    with ManifestWriter(uri) as writer:  # a later run appends to what is there, never over it
        writer.append({**row, "input": "c.jpg"})
    assert [json.loads(line)["input"] for line in uploaded()] == ["a.jpg", "b.jpg", "c.jpg"]


def test_local_manifest_appends_across_runs(tmp_path):
    row = manifest_row(input="a.jpg", output="a__happy.mp4", status="ok", model="m.pt", target="happy", frames=3)
    for name in ("a.jpg", "b.jpg"):
        with ManifestWriter(str(tmp_path / "manifest.jsonl")) as writer:
            writer.append({**row, "input": name})
    lines = (tmp_path / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(line)["input"] for line in lines] == ["a.jpg", "b.jpg"]


def test_model_uris(tmp_path, monkeypatch):
    generator, info = open_model("demo")
    assert (info.family, info.image_size, info.source) == ("ganimation", 64, str(locate.DEMO_MODEL))
    monkeypatch.setattr(locate, "DEMO_MODEL", tmp_path / "not_installed.pt")
    with pytest.raises(ModelNotFoundError, match="bundled demo model is missing"):
        open_model("demo")
    with pytest.raises(ModelNotFoundError, match="missing.pt"):
        open_model(str(tmp_path / "missing.pt"))


# --------------------------------------------------------------------------------------------------- command line


def test_flags_build_targets_and_dry_run_prints_the_plan(tmp_path):
    (tmp_path / "in").mkdir()
    for name in ("a.jpg", "b.png"):
        (tmp_path / "in" / name).write_bytes(b"x")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a__happy.mp4").write_bytes(b"x")
    result = CliRunner().invoke(main, [
        "animate", str(tmp_path / "in"), "--model", "demo", "--out", str(tmp_path / "out"), "--expression", "happy",
        "--expression", "sad:0.5", "--au", "AU45=2", "--frames", "8", "--pingpong", "--workers", "3", "--dry-run"])
    assert result.exit_code == 0, result.output
    job = yaml.safe_load(result.stdout)
    assert [(t["expression"], t["aus"], t["frames"], t["pingpong"]) for t in job["targets"]] == [
        ("happy", {"AU45": 2.0}, 8, True), ("sad:0.5", {"AU45": 2.0}, 8, True)]
    assert job["execution"]["workers"] == 3
    plan = "\n".join(line for line in result.stdout.splitlines() if line.startswith("#"))
    assert "2 images x 2 targets (happy, sad-0.5) = 4 videos: 3 to make, 1 already exist" in plan
    assert "prepare: CPU tasks of" in plan and "encode: CPU tasks of" in plan
    assert "generate: 3 actor(s), one model each" in plan  # the stages and their sizes on this machine
    assert "model: demo (ganimation, 64 px, conditioned on aus)" in plan  # read from the header, not the weights
    assert "frames: 45 to generate" in plan and "time: about" in plan  # 3 videos x 15 (there and back)
    assert "2 files skipped" not in plan


def test_dry_run_checks_the_model_family_and_lists_unused_files(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(b"x")
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    (tmp_path / "in" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    listed = CliRunner().invoke(main, ["animate", str(tmp_path / "in"), "--model", "demo", "--out",
                                       str(tmp_path / "out"), "--expression", "happy", "--dry-run"])
    assert listed.exit_code == 0, listed.output
    assert "2 files skipped: 1 unsupported type, 1 broken link" in listed.output
    landmarks = tmp_path / "talk.txt"
    landmarks.write_text(" ".join(["1 2"] * 68))  # one frame of 68 points
    wrong = CliRunner().invoke(main, ["animate", str(tmp_path / "in"), "--model", "demo", "--out",
                                      str(tmp_path / "out"), "--landmarks", str(landmarks), "--dry-run"])
    assert wrong.exit_code == 1 and "target 'talk' gives landmarks, but demo is a ganimation model" in wrong.output, \
        wrong.output
    assert "Traceback" not in wrong.output


def test_timing_flags_need_target_flags(tmp_path):
    result = CliRunner().invoke(main, ["animate", str(tmp_path), "--model", "m.pt", "--out", "o", "--fps", "30"])
    assert result.exit_code == 2 and "--fps apply to targets given by flags" in result.output


CPU_STAGES_ALONE = """
import sys
import numpy as np
from PIL import Image
from ganbatch.animate.item import ItemSettings
from ganbatch.animate.plan import WorkItem
from ganbatch.animate.stages import GeneratorSpec, RunSpec, encode, item_row, pack, prepare, unpack
from ganbatch.animate.targets import load_targets
from ganbatch.clips import Clip
from ganbatch.jobs.animate import CropSpec, OutputSpec, TargetSpec

folder, size = sys.argv[1], (int(sys.argv[2]) if sys.argv[2] != "none" else None)
Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(f"{folder}/face.png")
settings = ItemSettings(model="tiny.pt", crop=CropSpec(), output=OutputSpec(size=size))
spec = RunSpec(settings, load_targets([TargetSpec(expression="happy", frames=4)]), 16, 0.0,
               GeneratorSpec("tiny.pt", "torch", "cpu", "fp32", False, 4, False, 0.0))
row = prepare(item_row(WorkItem(f"{folder}/face.png", f"{folder}/face__happy.mp4", "face__happy.mp4", 0, "happy")),
              spec)
after_prepare = "torch" in sys.modules
prepared = unpack(row["clip"])
generated = Clip(np.repeat(prepared.face[None], len(prepared.targets), axis=0))  # what generate would hand on
made = encode({**row, "clip": pack(generated), "runtime": "none", "model_seconds": 0.0, "decision": ""}, spec)
print(made["row"])
print(after_prepare, "torch" in sys.modules)
"""


@pytest.mark.parametrize("size, torch_loaded", [("none", "False False"), ("32", "True True")])
def test_the_cpu_stages_load_torch_only_for_a_job_that_resamples(tmp_path, size, torch_loaded):
    """A Ray worker that runs prepare or encode imports ganbatch.animate.stages and runs it. The default output (a
    photo that is not model-sized, the face alone at the model's size) loads no torch: its import was about 1.6 s of
    each such worker's start-up, on the cores the generator needs. A job whose encode resamples with torch (panels
    rescaled to `output.size`, paste-back) loads it in prepare, while the generator starts, not later in encode."""
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run([sys.executable, "-c", CPU_STAGES_ALONE, str(tmp_path), size], capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 0, done.stderr[-3000:]
    row, loaded = done.stdout.strip().splitlines()[-2:]
    assert json.loads(row)["status"] == "ok" and (tmp_path / "face__happy.mp4").is_file(), row
    assert loaded == torch_loaded
