"""`ganbatch animate` end to end: the real local Ray (ray_local), the real ffmpeg and the moto S3 server.

Tiny random generators (32 px, conv_dim 8, one residual block) keep every run to a few seconds; all runs share the
session's Ray.
"""
import io
import json
import os
from pathlib import Path

import boto3
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from probe import probe_video

from ganbatch.animate import AnimateError, run_animate
from ganbatch.animate.targets import driving_landmarks
from ganbatch.cli import main
from ganbatch.faces import get_detector
from ganbatch.jobs import AnimateJob
from ganbatch.io.video import encode_video
from ganbatch.models import GANimationGenerator, GANnotationGenerator, load_generator, save_generator
from ganbatch.render import render_clip
from ganbatch.synth import render_face, sample_identity
from ganbatch.targets import expression_aus, expression_schedule, to_gannotation66, write_aus_pkl, write_landmarks

pytestmark = pytest.mark.slow

SIZE = 32
GOOD = {"a.png", "b.jpg", "gray.png", "rgba.png", "sub/d.bmp"}
BAD_REASONS = {"corrupt.jpg": "corrupt or truncated", "notes.jpg": "not an image", "tiny.png": "smaller than 16"}


def synthetic_face(seed: int, size: int = SIZE) -> np.ndarray:
    return render_face(sample_identity(seed), np.zeros(17), size=size)[0]


def encoded(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    paths = {"ganimation": folder / "ganimation.pt", "gannotation": folder / "gannotation.pt"}
    save_generator(GANimationGenerator(conv_dim=8, repeat_num=1), paths["ganimation"], {"image_size": SIZE})
    save_generator(GANnotationGenerator(conv_dim=8, repeat_num=1), paths["gannotation"], {"image_size": SIZE})
    return paths


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory):
    """Good face crops in several formats and modes (one in a sub-folder) beside three files that are not usable."""
    folder = tmp_path_factory.mktemp("photos")
    (folder / "sub").mkdir()
    face = Image.fromarray(synthetic_face(2))
    files = {
        "a.png": encoded(Image.fromarray(synthetic_face(0)), "PNG"),
        "b.jpg": encoded(Image.fromarray(synthetic_face(1)), "JPEG", quality=95),
        "gray.png": encoded(face.resize((40, 40)).convert("L"), "PNG"),
        "rgba.png": encoded(face.convert("RGBA"), "PNG"),
        "sub/d.bmp": encoded(face, "BMP"),
        "corrupt.jpg": encoded(face, "JPEG")[:300],
        "notes.jpg": b"shopping list: eggs, milk\n",
        "tiny.png": encoded(Image.new("RGB", (1, 1)), "PNG"),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def read_rows(path: Path, inputs: Path) -> dict[str, dict]:
    """Manifest rows by input path relative to the input folder."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {Path(row["input"]).relative_to(inputs).as_posix(): row for row in rows}


def invoke(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def test_folder_to_folder_with_failures_rerun_and_exit_status(ray_local, models, mixed_folder, tmp_path):
    out = tmp_path / "videos"
    args = ["animate", mixed_folder, "--recursive", "--model", models["ganimation"], "--out", out,
            "--expression", "happy", "--frames", "6", "--pingpong", "--fps", "10", "--workers", "2",
            "--batch-size", "4", "--preview"]
    first = invoke(*args)
    assert first.exit_code == 1, first.output
    assert "8 videos: 5 ok, 3 failed, 0 skipped" in first.stderr

    rows = read_rows(out / "manifest.jsonl", mixed_folder)
    assert set(rows) == GOOD | set(BAD_REASONS)
    for name in GOOD:
        row = rows[name]
        stem = os.path.splitext(name)[0]
        assert row["status"] == "ok" and row["error"] is None, row
        assert row["output"] == str(out / f"{stem}__happy.mp4")  # sub-folders mirrored
        assert (row["frames"], row["fps"], row["target"]) == (11, 10.0, "happy")  # 6 frames there, 5 back
        video = probe_video(row["output"])
        assert (video["frames"], video["width"], video["height"], video["fps"]) == (11, SIZE, SIZE, 10.0)
    for name, reason in BAD_REASONS.items():
        row = rows[name]
        assert row["status"] == "failed" and row["frames"] is None
        assert name in row["error"] and reason in row["error"], row["error"]
        assert not (out / f"{os.path.splitext(name)[0]}__happy.mp4").exists()
    preview = probe_video(out / "preview.gif")
    assert (preview["frames"], preview["height"], preview["width"]) == (11, 128, 4 * 128)

    made = {name: os.stat(rows[name]["output"]).st_mtime_ns for name in GOOD}
    stale = out / ".corrupt__happy.mp4.tmp-0123abcd"  # as a worker killed while encoding leaves it
    stale.write_bytes(b"half a video")
    again = invoke(*args, "--allow-failures")
    assert again.exit_code == 0, again.output
    assert not stale.exists()
    rows = read_rows(out / "manifest.jsonl", mixed_folder)
    assert {name for name, row in rows.items() if row["status"] == "skipped"} == GOOD
    assert {name for name, row in rows.items() if row["status"] == "failed"} == set(BAD_REASONS)
    assert all(rows[name]["frames"] == 11 for name in GOOD)  # carried over from the first run's manifest
    assert {name: os.stat(rows[name]["output"]).st_mtime_ns for name in GOOD} == made


def test_s3_to_s3_and_rerun_skips(ray_local, models, mixed_folder, s3_bucket):
    client = boto3.session.Session().client("s3")
    for path in mixed_folder.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), s3_bucket, f"in/{path.relative_to(mixed_folder).as_posix()}")
    client.upload_file(str(models["ganimation"]), s3_bucket, "models/tiny.pt")
    job = AnimateJob(
        model=f"s3://{s3_bucket}/models/tiny.pt", inputs=[f"s3://{s3_bucket}/in"], recursive=True,
        out=f"s3://{s3_bucket}/videos", targets=[{"expression": "surprise:0.8", "frames": 5, "fps": 8}],
        output={"format": "webm", "layout": "side-by-side", "size": 64}, execution={"workers": 1, "batch_size": 2},
    )
    result = run_animate(job)
    assert not result.ok and (result.succeeded, result.failed, result.skipped) == (5, 3, 0)
    assert result.outputs == {"out": job.out, "manifest": f"{job.out}/manifest.jsonl",  # 8 videos: a gallery too
                              "report": f"{job.out}/index.html"}

    key = "videos/sub/d__surprise-0.8.webm"
    assert client.head_object(Bucket=s3_bucket, Key=key)["ContentType"] == "video/webm"
    local = Path(os.environ.get("TMPDIR", "/tmp")) / f"{s3_bucket}.webm"
    client.download_file(s3_bucket, key, str(local))
    video = probe_video(local)
    local.unlink()
    assert (video["frames"], video["width"], video["height"], video["fps"]) == (5, 2 * 64, 64, 8.0)  # photo | video

    manifest = client.get_object(Bucket=s3_bucket, Key="videos/manifest.jsonl")["Body"].read().decode()
    rows = [json.loads(line) for line in manifest.splitlines()]
    assert sorted(row["status"] for row in rows) == ["failed"] * 3 + ["ok"] * 5
    assert all(row["output"].startswith(f"s3://{s3_bucket}/videos/") for row in rows)
    assert {row["input"].rsplit("/", 1)[-1] for row in rows if row["status"] == "failed"} == set(BAD_REASONS)

    again = run_animate(job.model_copy(update={"allow_failures": True}))
    assert again.ok and (again.succeeded, again.failed, again.skipped) == (0, 3, 5)


def test_ray_frames_equal_the_one_clip_renderer(ray_local, models, tmp_path):
    """Lossless PNG output from the Ray path, with source AUs and input_first, against render_clip directly."""
    face = synthetic_face(3)
    Image.fromarray(face).save(tmp_path / "face.png")
    source = np.linspace(0, 2, 17).astype(np.float32)
    write_aus_pkl(tmp_path / "aus.pkl", {"face": source})
    job = AnimateJob(
        model=str(models["ganimation"]), inputs=[str(tmp_path / "face.png")], out=str(tmp_path / "out"),
        source_aus=str(tmp_path / "aus.pkl"),
        targets=[{"expression": "sad", "aus": {"AU45": 2.5}, "frames": 7, "fps": 25, "input_first": True}],
        output={"format": "png"}, execution={"batch_size": 3, "runtime": "torch"},  # the engine render_clip uses
    )
    result = run_animate(job)
    assert result.ok and result.succeeded == 1
    # three operators, decoding and encoding outside the generator's process (not fused into its actor)
    assert all(f" {name}: " in result.stats for name in ("Map(prepare)", "MapBatches(Generate)", "Map(encode)"))
    assert "Map(prepare)->" not in result.stats and "->Map(encode)" not in result.stats

    end = expression_aus("sad").copy()
    end[16] = 2.5  # AU45, the last of the 17
    targets = expression_schedule(source, end, fps=25, frames=7, easing="ease-in-out", input_first=True).targets()
    generator, info = load_generator(models["ganimation"])
    assert info.digest and result.rows[0]["model_digest"] == info.digest
    expected = render_clip(generator, info, face, targets, chunk_size=3, input_first=True).frames
    folder = tmp_path / "out" / "face__sad"
    got = np.stack([np.asarray(Image.open(path)) for path in sorted(folder.glob("frame_*.png"))])
    assert got.shape == (7, SIZE, SIZE, 3)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got[0], face)
    assert run_animate(job).skipped == 1  # a complete frame folder counts as made


def test_gannotation_driven_by_a_landmark_file_from_a_list_input(ray_local, models, tmp_path):
    identity = sample_identity(4)
    face = synthetic_face(4)
    Image.fromarray(face).save(tmp_path / "face.png")
    (tmp_path / "inputs.txt").write_text("# photos to animate\nface.png\n")
    path = np.stack([render_face(identity, expression_aus(name), size=SIZE)[1] for name in ("happy", "surprise")])
    path = np.concatenate([path, path[::-1]])  # 68-point landmarks of 4 frames in the crop's pixels
    write_landmarks(tmp_path / "talk.txt", path)
    job = AnimateJob(
        model=str(models["gannotation"]), inputs=[str(tmp_path / "inputs.txt")], out=str(tmp_path / "out"),
        targets=[{"name": "talk", "landmarks": str(tmp_path / "talk.txt"), "fps": 5}],
        output={"format": "png"}, execution={"batch_size": 3, "runtime": "torch"},  # the engine render_clip uses
    )
    result = run_animate(job)
    assert result.ok and result.rows[0]["frames"] == 4 and result.rows[0]["fps"] == 5

    generator, info = load_generator(models["gannotation"])
    expected = render_clip(generator, info, face, to_gannotation66(path), chunk_size=3).frames
    folder = tmp_path / "out" / "face__talk"
    got = np.stack([np.asarray(Image.open(frame)) for frame in sorted(folder.glob("frame_*.png"))])
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("family, target", [
    ("gannotation", {"expression": "happy"}),
    ("ganimation", {"landmarks": "talk.txt"}),
])
def test_a_target_the_model_cannot_take_fails_before_any_work(models, tmp_path, family, target):
    Image.fromarray(synthetic_face(0)).save(tmp_path / "face.png")
    write_landmarks(tmp_path / "talk.txt", render_face(sample_identity(0), np.zeros(17), size=SIZE)[1])
    target = {key: str(tmp_path / value) if key == "landmarks" else value for key, value in target.items()}
    job = AnimateJob(model=str(models[family]), inputs=[str(tmp_path / "face.png")], out=str(tmp_path / "out"),
                     targets=[target])
    with pytest.raises(AnimateError, match=f"is a {family} model"):
        run_animate(job)
    assert not (tmp_path / "out").exists()


def test_readme_demo_animates_the_bundled_samples_with_the_bundled_model(ray_local, tmp_path):
    samples = sorted((Path(__file__).parents[1] / "ganbatch" / "assets" / "samples").glob("*.png"))
    assert len(samples) >= 4
    out = tmp_path / "demo_out"
    result = invoke("animate", samples[0], samples[1], "--model", "demo", "--expression", "happy", "--expression",
                    "surprise", "--pingpong", "--frames", "6", "--layout", "side-by-side", "--size", "128",
                    "--preview", "--out", out)
    assert result.exit_code == 0, result.output
    videos = sorted(path.name for path in out.glob("*.mp4"))
    assert videos == sorted(f"{face.stem}__{name}.mp4" for face in samples[:2] for name in ("happy", "surprise"))
    info = probe_video(out / videos[0])
    assert (info["width"], info["height"]) == (256, 128)  # the face beside its animation
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [row["status"] for row in rows] == ["ok"] * 4
    assert (out / "preview.gif").stat().st_size > 0


def placed_on_canvas(face: np.ndarray, at: tuple[int, int], shape=(400, 500), seed=0) -> np.ndarray:
    canvas = np.random.default_rng(seed).integers(0, 256, shape + (3,), dtype=np.uint8)
    x, y = at
    canvas[y:y + face.shape[0], x:x + face.shape[1]] = face
    return canvas


def real_face(shared_fixtures, side: int) -> np.ndarray:
    image = Image.open(shared_fixtures / "gannotation" / "test_1.jpg").convert("RGB")
    return np.asarray(image.resize((side, side), Image.Resampling.BICUBIC))


def test_detect_with_dlib_and_paste_back_into_the_photo(ray_local, models, shared_fixtures, tmp_path):
    x, y, side = 100, 60, 256
    photo = placed_on_canvas(real_face(shared_fixtures, side), (x, y))
    Image.fromarray(photo).save(tmp_path / "party.png")
    noise = np.random.default_rng(1).integers(0, 256, photo.shape, dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "noise.png")
    job = AnimateJob(
        model=str(models["ganimation"]), inputs=[str(tmp_path / "party.png"), str(tmp_path / "noise.png")],
        out=str(tmp_path / "out"), targets=[{"expression": "happy", "frames": 3}],
        crop={"mode": "detect", "backend": "dlib", "margin": 0.2, "pasteback": True},
        output={"format": "png"}, allow_failures=True,
    )
    result = run_animate(job)
    rows = {Path(row["input"]).name: row for row in result.rows}
    assert rows["noise.png"]["status"] == "failed" and "no face found" in rows["noise.png"]["error"]
    assert rows["party.png"]["status"] == "ok", rows["party.png"]

    frames = np.stack([np.asarray(Image.open(p)) for p in sorted(Path(rows["party.png"]["output"]).glob("*.png"))])
    assert frames.shape == (3,) + photo.shape  # the photo's full frame
    # the crop is (1 + margin) x the landmark box, which lies inside the placed face: pixels beyond the face by more
    # than 0.2 x its side keep the photo's values; the face itself is changed by the (random) generator
    reach = int(0.2 * side)
    outside = np.ones(photo.shape[:2], bool)
    outside[max(0, y - reach):y + side + reach, max(0, x - reach):x + side + reach] = False
    assert np.array_equal(frames[:, outside], np.broadcast_to(photo[outside], frames[:, outside].shape))
    assert np.abs(frames[:, y:y + side, x:x + side].astype(int) - photo[y:y + side, x:x + side]).mean() > 1


def test_driving_video_moves_a_gannotation_face(ray_local, models, shared_fixtures, tmp_path):
    side, shifts = 200, [(0, 0), (3, 1), (6, 2), (9, 3)]
    face = real_face(shared_fixtures, side)
    video = np.stack([placed_on_canvas(face, (50 + dx, 40 + dy), shape=(300, 320), seed=2) for dx, dy in shifts])
    encode_video(video, tmp_path / "driver.mp4", fps=10, format="mp4", crf=12)

    landmarks = driving_landmarks(str(tmp_path / "driver.mp4"), get_detector("dlib"))
    assert landmarks.shape == (len(shifts), 66, 2)
    motion = (landmarks - landmarks[:1]).mean(axis=1)  # the face's mean shift per frame
    np.testing.assert_allclose(motion, np.array(shifts, float), atol=1.5)

    Image.fromarray(video[0]).save(tmp_path / "source.png")
    job = AnimateJob(
        model=str(models["gannotation"]), inputs=[str(tmp_path / "source.png")], out=str(tmp_path / "out"),
        targets=[{"name": "mimic", "driving_video": str(tmp_path / "driver.mp4"), "fps": 10}],
        crop={"mode": "detect", "backend": "dlib"}, output={"format": "mp4", "layout": "side-by-side"},
    )
    result = run_animate(job)
    assert result.ok, result.rows
    made = probe_video(result.rows[0]["output"])
    assert (made["frames"], made["width"], made["height"]) == (len(shifts), 2 * SIZE, SIZE)
