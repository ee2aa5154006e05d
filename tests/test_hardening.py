"""Bad input and faults (issue 13): every case ends in a clear one-line error or a correct result; no traceback,
no hang, no output outside the destination, no silent wrong result; refused manifests within 1 s and 200 MB.

Most cases call the functions or the CLI in-process (click's CliRunner); only the end-to-end traversal test and the
worker-error test start Ray. See /work/notes/issue-13.md for the table of cases.
"""
import dataclasses
import io
import json
import os
import pickle
import socket
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ganbatch.io import storage
from ganbatch.animate.lock import (
    LOCK_NAME,
    DestinationError,
    DestinationLock,
    DestinationLockedError,
    LockOwner,
    claim_destination,
)
from ganbatch.animate.plan import (
    InputImage,
    PlanError,
    SkippedFile,
    UnsafeNameError,
    check_destination,
    find_inputs,
    plan_items,
    safe_relative,
)
from ganbatch.cli import main
from ganbatch.errors import one_line, root_cause
from ganbatch.jobs.load import load_job
from ganbatch.jobs.problems import ManifestError, Origin, Problem
from ganbatch.io.images import ImageDecodeError, decode_image, probe_image
from ganbatch.io.video import VideoEncodeError
from ganbatch.models.checkpoint import (
    LAYOUTS,
    NOT_VERIFIABLE,
    UNVERIFIED,
    VERIFIED,
    CheckpointFormatError,
    CheckpointIntegrityError,
    UntrustedCheckpointError,
    load_generator,
    save_generator,
)
from ganbatch.families import get_family
from ganbatch.models.locate import DEMO_MODEL, open_model
from ganbatch.safe_yaml import YamlLimitError
from ganbatch.jobs.keyframes import read_keyframes
from ganbatch.targets.schedule import ScheduleError
from ganbatch.train.data import DataError, find_training_data
from ganbatch.train.state import (
    COMPLETE_FILE,
    STATE_FILE,
    IncompleteCheckpointError,
    ResumeError,
    build_state,
    resume_state,
    save_state,
    verify_checkpoint,
)
from ganbatch.jobs.train import TrainJob

LIMIT_SECONDS = 1.0
LIMIT_BYTES = 200 * 1024 * 1024


def cli(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def _run_with_a_truncated_newest_checkpoint(tmp_path) -> dict:
    """A tiny training run of 3 steps keeping 2 checkpoints (OUT tmp_path/runs, NAME r) whose newest checkpoint's
    state.pt is then cut in half; the job's fields, for running it on."""
    from ganbatch.synth.dataset import write_dataset
    from ganbatch.train import run_train

    write_dataset(tmp_path / "faces", 2, 2, size=64, seed=1, contact_sheet=False)
    fields = {"family": "ganimation", "data": str(tmp_path / "faces"), "out": str(tmp_path / "runs"), "name": "r",
              "network": {"size": 64, "conv_dim": 4, "res_blocks": 1, "d_conv_dim": 4},
              "objective": {"critic_steps": 1}, "batch_size": 2, "checkpoint_every": 1, "log_every": 1,
              "sample_every": 100, "keep_checkpoints": 2}
    assert run_train(TrainJob(**fields, steps=3)).ok
    newest = tmp_path / "runs" / "r" / "checkpoint_00000003" / STATE_FILE
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    return fields


def assert_one_clear_error(result, exit_code, *fragments):
    """Exit status as given, no traceback, and every fragment in the output."""
    output = result.output
    assert result.exit_code == exit_code, output
    assert "Traceback" not in output and not isinstance(result.exception, (TypeError, AttributeError, KeyError))
    for fragment in fragments:
        assert fragment in output, output


def png_bytes(size=(32, 32), mode="RGB", color=128, format="PNG") -> bytes:
    buffer = io.BytesIO()
    value = color if mode in ("L", "I;16", "P", "I") else (color,) * len(mode)
    Image.new(mode, size, value).save(buffer, format=format)
    return buffer.getvalue()


def huge_png_header(width=100_000, height=100_000) -> bytes:
    """A PNG whose header claims width x height (no real pixel data)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


@pytest.fixture
def face_image(tmp_path):
    path = tmp_path / "face.png"
    path.write_bytes(png_bytes((64, 64)))
    return path


# ------------------------------------------------------------------------------------------- output paths

UNSAFE_NAMES = ["../x", "a/../../x", "..", "/etc/passwd", "C:/x", "c:x", "a\\b", "a\x00b", "a\nb", "", "./.",
                "trav/../../../../x/escaped"]


@pytest.mark.parametrize("name", UNSAFE_NAMES)
def test_unsafe_input_names_are_refused(name):
    with pytest.raises(UnsafeNameError):
        safe_relative(name)


@pytest.mark.parametrize("name, normalised", [("a//b", "a/b"), ("./a", "a"), ("a/./b/", "a/b"), ("x/y/z", "x/y/z"),
                                              ("{stem}", "{stem}")])
def test_safe_names_are_normalised(name, normalised):
    assert safe_relative(name) == normalised


@pytest.mark.parametrize("out", ["DEST", "s3://bucket/out"])
def test_an_escaping_input_fails_alone_and_the_others_stay_inside(tmp_path, out):
    out = str(tmp_path / "out") if out == "DEST" else out
    images = [InputImage("s3://bkt/trav/ok.png", "ok"), InputImage("s3://bkt/trav/../../x/escaped.png", "../../x/escaped"),
              InputImage("s3://bkt/trav/a\x00b.png", "a\x00b")]
    items = plan_items(images, ["happy"], out, "mp4")
    assert items[0].problem is None and items[0].output == storage.join(out, "ok__happy.mp4")
    for item in items[1:]:
        assert item.problem and "cannot name an output" in item.problem and item.output == ""
        assert "\x00" not in item.problem  # escaped, printable
    assert all(item.output.startswith(out.rstrip("/") + "/") for item in items if not item.problem)


def test_a_symlinked_sub_folder_of_the_destination_does_not_count_as_inside(tmp_path):
    outside, out = tmp_path / "elsewhere", tmp_path / "out"
    outside.mkdir()
    out.mkdir()
    (out / "party").symlink_to(outside, target_is_directory=True)
    (item,) = plan_items([InputImage(str(tmp_path / "in/party/anna.png"), "party/anna")], ["happy"], str(out), "mp4")
    assert item.problem and "outside the destination" in item.problem


@pytest.mark.parametrize("dest", ["local", "s3"])
def test_s3_key_with_dot_dot_listed_recursively(s3_bucket, tmp_path, dest):
    client = storage.s3_client()
    client.put_object(Bucket=s3_bucket, Key="trav/../../../../x/escaped.png", Body=png_bytes())
    client.put_object(Bucket=s3_bucket, Key="trav/sub/ok.png", Body=png_bytes())
    images = find_inputs([f"s3://{s3_bucket}/trav/"], recursive=True)
    out = str(tmp_path / "out") if dest == "local" else f"s3://{s3_bucket}/out"
    items = {item.input.rsplit("/", 1)[-1]: item for item in plan_items(images, ["happy"], out, "mp4")}
    assert items["escaped.png"].problem and "'..' part" in items["escaped.png"].problem
    assert items["ok.png"].output == storage.join(out, "sub/ok__happy.mp4")


@pytest.mark.parametrize("kind", ["file", "below-a-file"])
def test_a_destination_that_cannot_be_a_folder_is_refused(tmp_path, kind):
    (tmp_path / "taken").write_text("x")
    out = tmp_path / "taken" if kind == "file" else tmp_path / "taken" / "out"
    with pytest.raises(PlanError, match="--out"):
        check_destination(str(out))


@pytest.mark.parametrize("dry_run", [True, False])
def test_animate_out_naming_an_existing_file_is_one_line(tmp_path, face_image, dry_run):
    (tmp_path / "taken.mp4").write_text("x")
    args = [face_image, "--model", "demo", "--out", tmp_path / "taken.mp4", "--expression", "happy"]
    result = cli("animate", *args, *(["--dry-run"] if dry_run else []))
    assert_one_clear_error(result, 1, "is an existing file, not a folder")


def test_animate_out_below_a_file_is_one_line(tmp_path, face_image):
    (tmp_path / "file").write_text("x")
    result = cli("animate", face_image, "--model", "demo", "--out", tmp_path / "file" / "out", "--expression", "happy")
    assert_one_clear_error(result, 1, "is a file, so no folder can be made below it")


@pytest.mark.parametrize("dry_run", [True, False])
def test_animate_out_on_a_read_only_place_is_one_line(tmp_path, face_image, dry_run):
    result = cli("animate", face_image, "--model", "demo", "--out", "/proc/ganbatch-out", "--expression", "happy",
                 *(["--dry-run"] if dry_run else []))
    assert_one_clear_error(result, 1, "--out /proc/ganbatch-out: cannot write to /proc")


@pytest.mark.parametrize("flag", ["--aus-csv", "--source-aus", "--keyframes", "--landmarks"])
def test_a_binary_file_given_as_a_target_or_table_is_one_line(tmp_path, face_image, flag):
    extra = ["--expression", "happy"] if flag == "--source-aus" else []
    result = cli("animate", face_image, "--model", "demo", "--out", tmp_path / "out", flag, face_image, *extra)
    assert_one_clear_error(result, 1, "face.png")


def test_invalid_keyframes_yaml_is_one_line_without_its_text(tmp_path, face_image):
    (tmp_path / "k.yaml").write_text("secret-value: [")
    result = cli("animate", face_image, "--model", "demo", "--out", tmp_path / "out", "--keyframes",
                 tmp_path / "k.yaml")
    assert_one_clear_error(result, 1, "not valid YAML (line 1")
    assert "secret-value" not in result.output
    assert len([line for line in result.output.splitlines() if not line.startswith("note:")]) == 1


def test_a_training_set_with_a_bad_image_fails_in_one_line_before_ray(tmp_path):
    data = _data_set(tmp_path / "data", "id0002_000", b"just text")
    job = {"kind": "train", "family": "ganimation", "data": str(data), "out": str(tmp_path / "runs"), "name": "n",
           "network": TINY, "steps": 1}
    (tmp_path / "train.yaml").write_text(json.dumps(job))
    result = cli("run", tmp_path / "train.yaml")
    assert_one_clear_error(result, 1, "1 of 3 images cannot be used: imgs/id0002_000.jpg (text (9 bytes)")


# ------------------------------------------------------------------------------------------- skipped files

def test_files_not_taken_from_a_folder_are_counted_with_reasons(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes())
    (folder / "anim.gif").write_bytes(b"GIF89a")
    (folder / "notes.txt").write_text("hello")
    (folder / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    os.mkfifo(folder / "pipe.png")
    (folder / ".hidden.png").write_bytes(b"")
    listing = find_inputs([str(folder)], recursive=False)
    assert [image.stem for image in listing] == ["a"]
    assert sorted((Path(f.uri).name, f.reason) for f in listing.skipped) == [
        ("anim.gif", "unsupported type"), ("gone.jpg", "broken link"), ("notes.txt", "unsupported type"),
        ("pipe.png", "not a regular file")]
    assert listing.skipped_summary() == "4 files skipped: 2 unsupported type, 1 broken link, 1 not a regular file"
    assert len(listing.skipped_lines()) == 4 and all("skipped:" in line for line in listing.skipped_lines())


def test_recursive_listing_counts_skipped_files_in_sub_folders(tmp_path):
    (tmp_path / "in/sub").mkdir(parents=True)
    (tmp_path / "in/sub/a.png").write_bytes(png_bytes())
    (tmp_path / "in/sub/b.gif").write_bytes(b"GIF89a")
    (tmp_path / "in/sub/c.jpg").symlink_to(tmp_path / "nowhere")
    listing = find_inputs([str(tmp_path / "in")], recursive=True)
    assert listing.skipped_summary() == "2 files skipped: 1 unsupported type, 1 broken link"


def test_a_glob_counts_broken_links(tmp_path):
    (tmp_path / "a.png").write_bytes(png_bytes())
    (tmp_path / "b.png").symlink_to(tmp_path / "nowhere.png")
    listing = find_inputs([str(tmp_path / "*.png")], recursive=False)
    assert [image.stem for image in listing] == ["a"] and listing.skipped == [
        SkippedFile(str(tmp_path / "b.png"), "broken link")]


def test_s3_prefix_counts_other_objects(s3_bucket):
    client = storage.s3_client()
    for key in ("in/a.png", "in/b.gif", "in/c.txt"):
        client.put_object(Bucket=s3_bucket, Key=key, Body=png_bytes())
    listing = find_inputs([f"s3://{s3_bucket}/in"], recursive=False)
    assert len(listing) == 1 and listing.skipped_summary() == "2 files skipped: 2 unsupported type"


def test_a_folder_with_only_unsupported_files_says_what_it_skipped(tmp_path):
    (tmp_path / "a.gif").write_bytes(b"GIF89a")
    with pytest.raises(PlanError, match=r"no images .* found \(1 file skipped: 1 unsupported type\)"):
        find_inputs([str(tmp_path)], recursive=False)


def test_a_list_entry_that_is_not_an_image_never_echoes_its_bytes(tmp_path):
    secret = tmp_path / "secret.md"
    secret.write_text("password=hunter2-very-secret\n")
    (tmp_path / "list.txt").write_text("secret.md\n")
    (image,) = find_inputs([str(tmp_path / "list.txt")], recursive=False)
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(Path(image.uri).read_bytes(), image.uri)
    assert "hunter2" not in str(caught.value) and "password" not in str(caught.value)
    assert "text (" in str(caught.value)


# ------------------------------------------------------------------------------------------- bad image files

def _jpeg_bytes():
    return png_bytes((48, 48), format="JPEG")


BAD_IMAGES = {
    "empty": (b"", "empty file"),
    "text as jpg": (b"hello, not an image at all\n" * 4, "text ("),
    "random bytes": (bytes(range(256)) * 8, "binary data"),
    "truncated png": (png_bytes((64, 64))[:60], "corrupt or truncated"),
    "truncated jpeg": (_jpeg_bytes()[:200], "corrupt or truncated"),
    "1x1": (png_bytes((1, 1)), "smaller than 16 px"),
    "huge dimensions header": (huge_png_header(), "decompression bomb"),
    "gif renamed jpg": (png_bytes((32, 32), mode="P", format="GIF"), "a GIF image"),
    "corrupt middle": (png_bytes((64, 64))[:40] + b"\xff" * 40 + png_bytes((64, 64))[80:], "corrupt"),
}


@pytest.mark.parametrize("name", BAD_IMAGES)
def test_bad_image_files_get_a_clear_reason(name):
    data, fragment = BAD_IMAGES[name]
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(data, f"in/{name}.jpg")
    message = str(caught.value)
    assert message.startswith(f"in/{name}.jpg: ") and fragment in message and "\n" not in message
    assert "b'" not in message  # never the raw bytes


GOOD_IMAGES = {
    "grayscale": png_bytes((40, 30), mode="L"),
    "rgba": png_bytes((40, 30), mode="RGBA"),
    "16-bit": png_bytes((40, 30), mode="I;16", color=40000),
    "palette": png_bytes((40, 30), mode="P"),
    "cmyk jpeg": png_bytes((40, 30), mode="CMYK", format="JPEG"),
    "png named jpg": png_bytes((40, 30)),
}


@pytest.mark.parametrize("name", GOOD_IMAGES)
def test_unusual_but_valid_images_decode_to_rgb(name):
    image = decode_image(GOOD_IMAGES[name], f"{name}.jpg")
    assert image.shape == (30, 40, 3) and image.dtype == np.uint8
    assert probe_image(GOOD_IMAGES[name], name) == (40, 30)


# ------------------------------------------------------------------------------------------- YAML limits

def _laughs(levels=9, width=9):
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(f"  {line}" for line in lines)


REFUSED_MANIFESTS = {
    "billion laughs": ("kind: animate\nbomb:\n" + _laughs() + "\n", "expands to more than"),
    "recursive alias": ("kind: animate\nx: &a [1, *a]\n", "recursive"),
    "deep nesting": ("kind: animate\nx: " + "[" * 3000 + "]" * 3000 + "\n", "nest deeper"),
    "merge-key bomb": ("kind: animate\nm0: &m0 {a: 1, b: 2}\n" + "\n".join(
        f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: 1}}" for i in range(1, 25)) + "\n", "expands to more than"),
    "oversized file": ("kind: animate\n" + "# padding\n" * 40_000, "larger than 256 KiB"),
}


def _refusal_cost(call):
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises((ManifestError, YamlLimitError, ScheduleError)) as caught:
            call()
    finally:
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return caught.value, seconds, peak


@pytest.mark.parametrize("name", REFUSED_MANIFESTS)
def test_refused_manifests_fail_fast_and_small(tmp_path, name):
    text, fragment = REFUSED_MANIFESTS[name]
    path = tmp_path / "job.yaml"
    path.write_text(text)
    error, seconds, peak = _refusal_cost(lambda: load_job(path))
    assert fragment in str(error) and seconds < LIMIT_SECONDS and peak < LIMIT_BYTES, (seconds, peak)


def test_a_device_as_manifest_is_refused_without_reading_it():
    error, seconds, _ = _refusal_cost(lambda: load_job("/dev/zero"))
    assert "not a regular file" in str(error) and seconds < LIMIT_SECONDS


def test_billion_laughs_in_a_set_value_is_refused():
    value = "{" + _laughs().replace("\n  ", ", ").strip() + "}"
    error, seconds, peak = _refusal_cost(lambda: load_job(kind="animate", overrides=[f"extra={value}"]))
    assert "refused" in str(error) and seconds < LIMIT_SECONDS and peak < LIMIT_BYTES


def test_billion_laughs_in_a_keyframes_file_is_refused(tmp_path):
    (tmp_path / "k.yaml").write_text("bomb:\n" + _laughs() + "\nkeyframes: []\n")
    error, seconds, peak = _refusal_cost(lambda: read_keyframes(tmp_path / "k.yaml"))
    assert "expands to more than" in str(error) and seconds < LIMIT_SECONDS and peak < LIMIT_BYTES


def test_validate_refuses_billion_laughs_in_a_subprocess_within_limits(tmp_path):
    (tmp_path / "job.yaml").write_text(REFUSED_MANIFESTS["billion laughs"][0])
    code = ("import resource, sys, time\nfrom ganbatch.jobs.load import load_job\nfrom ganbatch.jobs.problems import "
            "ManifestError\nbefore = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\nstart = time.perf_counter()\n"
            "try:\n    load_job(sys.argv[1])\nexcept ManifestError as e:\n    print(str(e))\n"
            "print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "job.yaml")], capture_output=True, text=True,
                          timeout=60)
    message, numbers = done.stdout.strip().rsplit("\n", 1)
    seconds, grown_kb = map(float, numbers.split())
    assert "expands to more than" in message and "Traceback" not in done.stderr
    assert seconds < LIMIT_SECONDS and grown_kb * 1024 < LIMIT_BYTES


def test_anchors_within_the_limits_still_work(tmp_path):
    (tmp_path / "job.yaml").write_text("kind: animate\nmodel: demo\nout: o\ninputs: [a.png]\n"
                                       "common: &t {fps: 10, frames: 5}\n".replace("common", "x-unused") +
                                       "targets:\n  - {expression: happy, <<: *t}\n  - {expression: sad, <<: *t}\n")
    with pytest.raises(ManifestError, match="x-unused"):  # the one real problem: an unknown key
        load_job(tmp_path / "job.yaml")


# ------------------------------------------------------------------------------------------- schema bounds

TARGET_BOUNDS = {
    "frames 1e23": ({"expression": "happy", "frames": "1e23"}, "from 1 to 18000"),
    "frames 1e23 float": ({"expression": "happy", "frames": 1e23}, "from 1 to 18000"),
    "frames 0": ({"expression": "happy", "frames": 0}, "from 1 to 18000"),
    "frames 2.5": ({"expression": "happy", "frames": 2.5}, "whole number"),
    "frames true": ({"expression": "happy", "frames": True}, "whole number"),
    "duration 1e9": ({"expression": "happy", "duration": 1e9}, "less than or equal to 600"),
    "duration inf": ({"expression": "happy", "duration": float("inf")}, "must be a finite number"),
    "duration x fps": ({"expression": "happy", "duration": 500, "fps": 60}, "at most 18000 frames"),
    "fps 0": ({"expression": "happy", "fps": 0}, "greater than 0"),
    "fps 1000": ({"expression": "happy", "fps": 1000}, "240"),
    "intensity -5": ({"expression": "happy:-5"}, "between 0 and 2"),
    "intensity 1e9": ({"expression": "happy:1e9"}, "between 0 and 2"),
    "intensity nan": ({"expression": "happy:nan"}, "between 0 and 2"),
    "intensity text": ({"expression": "happy:lots"}, "not a number"),
    "au 7": ({"aus": {"AU12": 7}}, "less than or equal to 5"),
    "au -1": ({"aus": {"AU12": -1}}, "greater than or equal to 0"),
    "keyframe frame 1e30": ({"keyframes": [{"frame": 1e30, "preset": "happy"}]}, "from 0 to 17999"),
    "keyframe at 1e6": ({"keyframes": [{"at": 1e6, "preset": "happy"}]}, "600"),
    "keyframe late": ({"keyframes": [{"at": 590, "preset": "happy"}], "fps": 60}, "at most 18000 frames"),
    "keyframe intensity 5": ({"keyframes": [{"at": 1, "preset": "happy", "intensity": 5}]}, "2"),
}


def _write_job(tmp_path, **fields):
    job = {"kind": "animate", "model": "demo", "out": "o", "inputs": ["a.png"], "targets": [{"expression": "happy"}],
           **fields}
    path = tmp_path / "job.yaml"
    path.write_text(json.dumps(job))
    return path


@pytest.mark.parametrize("name", TARGET_BOUNDS)
def test_target_bounds_are_validation_errors_with_the_limit(tmp_path, name):
    target, fragment = TARGET_BOUNDS[name]
    result = cli("validate", _write_job(tmp_path, targets=[target]))
    assert_one_clear_error(result, 2, "invalid", fragment)


JOB_BOUNDS = {
    "output size": ({"output": {"size": 100_000}}, "4096"),
    "crf": ({"output": {"crf": 99}}, "63"),
    "batch 0": ({"execution": {"batch_size": 0}}, "greater than or equal to 1"),
    "batch 1e6": ({"execution": {"batch_size": 1_000_000}}, "1024"),
    "manifest name": ({"manifest": "../x.jsonl"}, "manifest"),
    "manifest backslash": ({"manifest": "a\\b.jsonl"}, "manifest"),
    "margin": ({"crop": {"mode": "detect", "margin": 50}}, "2"),
}


@pytest.mark.parametrize("name", JOB_BOUNDS)
def test_job_bounds_are_validation_errors(tmp_path, name):
    fields, fragment = JOB_BOUNDS[name]
    assert_one_clear_error(cli("validate", _write_job(tmp_path, **fields)), 2, "invalid", fragment)


TRAIN_BOUNDS = {
    "batch 1e9": ({"batch_size": 10**9}, "4096"),
    "steps 1e12": ({"steps": 10**12}, "10000000"),
    "seed -1": ({"seed": -1}, "greater than or equal to 0"),
    "keep 1e6": ({"keep_checkpoints": 10**6}, "1000"),
}


@pytest.mark.parametrize("name", TRAIN_BOUNDS)
def test_train_bounds_are_validation_errors(tmp_path, name):
    fields, fragment = TRAIN_BOUNDS[name]
    job = {"kind": "train", "family": "ganimation", "data": "d", "out": "o", "name": "n", **fields}
    (tmp_path / "train.yaml").write_text(json.dumps(job))
    assert_one_clear_error(cli("validate", tmp_path / "train.yaml"), 2, "invalid", fragment)


CLI_BOUNDS = {
    "expression happy:-5": (["--expression", "happy:-5"], "between 0 and 2"),
    "expression happy:-5 dry-run": (["--expression", "happy:-5", "--dry-run"], "between 0 and 2"),
    "expression happy:1e9": (["--expression", "happy:1e9"], "between 0 and 2"),
    "duration 1e9": (["--expression", "happy", "--duration", "1e9"], "600"),
    "duration 1e9 dry-run": (["--expression", "happy", "--duration", "1e9", "--dry-run"], "600"),
    "frames 0": (["--expression", "happy", "--frames", "0"], "from 1 to 18000"),
    "fps 0": (["--expression", "happy", "--fps", "0"], "greater than 0"),
    "size 1": (["--expression", "happy", "--size", "1"], "16"),
    "batch 0": (["--expression", "happy", "--batch-size", "0"], "1"),
    "set frames 1e23": (["--expression", "happy", "--set", "targets[0].frames=1e23"], "from 1 to 18000"),
}


@pytest.mark.parametrize("name", CLI_BOUNDS)
def test_animate_flags_out_of_bounds_are_usage_errors(tmp_path, face_image, name):
    flags, fragment = CLI_BOUNDS[name]
    result = cli("animate", face_image, "--model", "demo", "--out", tmp_path / "out", *flags)
    assert_one_clear_error(result, 2, fragment)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------- model integrity

@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    generator, info = open_model("demo")
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_generator(generator, path, info.config)
    return path


def _flip_tensor_bytes(source: Path, target: Path, count=5000) -> None:
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        record = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    name_length, extra_length = struct.unpack("<HH", data[record.header_offset + 26:record.header_offset + 30])
    start = record.header_offset + 30 + name_length + extra_length
    for offset in range(start, start + min(count, record.file_size)):
        data[offset] ^= 0xFF
    target.write_bytes(bytes(data))


def test_own_model_files_record_a_digest_that_is_verified(saved_model):
    _, info = load_generator(saved_model)
    assert info.integrity == VERIFIED and len(info.digest) == 64 and "verified" in info.describe_integrity()


def test_flipped_tensor_bytes_are_an_integrity_error_naming_the_file(saved_model, tmp_path):
    _flip_tensor_bytes(saved_model, tmp_path / "flipped.pt")
    with pytest.raises(CheckpointIntegrityError, match=r"flipped\.pt: the tensors do not match the SHA-256"):
        load_generator(tmp_path / "flipped.pt")


def test_a_flipped_model_stops_animate_before_any_work(saved_model, tmp_path, face_image):
    _flip_tensor_bytes(saved_model, tmp_path / "flipped.pt")
    result = cli("animate", face_image, "--model", tmp_path / "flipped.pt", "--out", tmp_path / "out",
                 "--expression", "happy")
    assert_one_clear_error(result, 1, "flipped.pt", "do not match the SHA-256")


def test_an_own_file_saved_before_digests_loads_as_unverified(saved_model, tmp_path):
    content = torch.load(saved_model, weights_only=True)
    config = json.loads(content["config"])
    del config["tensor_sha256"]
    torch.save({**content, "config": json.dumps(config)}, tmp_path / "older.pt")
    _, info = load_generator(tmp_path / "older.pt")
    assert info.integrity == UNVERIFIED and len(info.digest) == 64 and "unverified" in info.describe_integrity()


def test_the_shipped_demo_model_is_verified():
    _, info = load_generator(DEMO_MODEL)
    assert info.integrity == VERIFIED


def test_foreign_layouts_have_no_digest_and_say_so(tmp_path):
    layout = next(layout for layout in LAYOUTS if layout.name == "ganimation_official")
    generator = get_family("ganimation").generator_cls(conv_dim=8, repeat_num=1, options=layout.options)
    state = {layout.foreign_key(key, 1): tensor for key, tensor in generator.state_dict().items()}
    torch.save(state, tmp_path / "net_epoch_1_id_G.pth")
    _, info = load_generator(tmp_path / "net_epoch_1_id_G.pth")
    assert info.digest is None and info.integrity == NOT_VERIFIABLE and "not verifiable" in info.describe_integrity()


class Thing:
    pass


class Reducer:
    def __reduce__(self):
        return (os.getcwd, ())


def _pickled_file(tmp_path, kind) -> Path:
    path = tmp_path / f"{kind}.pt"
    if kind == "class":
        torch.save({"a": Thing()}, path)
    elif kind == "module":
        torch.save(torch.nn.Linear(2, 2), path)
    elif kind == "reduce":
        torch.save(Reducer(), path)
    elif kind == "raw pickle":
        path.write_bytes(pickle.dumps(Reducer(), protocol=4))
    elif kind == "numpy":
        torch.save({"a": np.zeros(3)}, path)
    return path


@pytest.mark.parametrize("kind", ["class", "module", "reduce", "raw pickle", "numpy"])
def test_code_executing_pickles_are_refused_naming_trust_pickle(tmp_path, kind):
    with pytest.raises(UntrustedCheckpointError, match="--trust-pickle"):
        load_generator(_pickled_file(tmp_path, kind))


@pytest.mark.parametrize("content", [b"", b"plain text, not a checkpoint\n", bytes(range(256)) * 4, "truncated"])
def test_unreadable_model_files_are_format_errors(tmp_path, saved_model, content):
    if content == "truncated":
        content = saved_model.read_bytes()[: saved_model.stat().st_size // 2]
    (tmp_path / "bad.pt").write_bytes(content)
    with pytest.raises(CheckpointFormatError) as caught:
        load_generator(tmp_path / "bad.pt")
    assert "bad.pt" in str(caught.value) and "trust" not in str(caught.value)


def test_animate_with_a_code_executing_model_is_one_line_naming_the_flag(tmp_path, face_image):
    result = cli("animate", face_image, "--model", _pickled_file(tmp_path, "reduce"), "--out", tmp_path / "out",
                 "--expression", "happy")
    assert_one_clear_error(result, 1, "--trust-pickle")


# ------------------------------------------------------------------------------------------- training state

TINY = {"size": 64, "conv_dim": 4, "res_blocks": 1, "d_conv_dim": 4}


@pytest.fixture
def run_with_checkpoints(tmp_path):
    """A run folder with complete checkpoints at steps 1 and 2 (different weights) and the job."""
    job = TrainJob(family="ganimation", data="d", out=str(tmp_path), name="run", network=TINY)
    run = tmp_path / "run"
    for step in (1, 2):
        state = build_state(job.model_copy(update={"seed": step}), "cpu")
        state.step = step
        folder = run / f"checkpoint_{step:08d}"
        folder.mkdir(parents=True)
        save_state(state, folder, job)
    return job, run


def test_checkpoints_are_written_with_a_completion_marker(run_with_checkpoints):
    _, run = run_with_checkpoints
    folder = run / "checkpoint_00000002"
    assert (folder / COMPLETE_FILE).is_file() and verify_checkpoint(folder) is True


def test_a_truncated_newest_checkpoint_is_reported_and_the_previous_one_used(run_with_checkpoints):
    job, run = run_with_checkpoints
    newest = run / "checkpoint_00000002" / STATE_FILE
    newest.write_bytes(newest.read_bytes()[:1000])
    with pytest.raises(IncompleteCheckpointError):
        verify_checkpoint(newest.parent)
    lines = []
    state = build_state(job, "cpu")
    assert resume_state(state, job, newest.parent, str(run), report=lines.append) == 1
    assert "skipping the latest checkpoint" in lines[0] and "checkpoint_00000001" in lines[-1]


def test_a_newest_checkpoint_with_changed_bytes_that_torch_still_reads_is_not_taken(run_with_checkpoints):
    job, run = run_with_checkpoints
    newest = run / "checkpoint_00000002" / STATE_FILE
    _flip_tensor_bytes(newest, newest, count=64)
    lines = []
    assert resume_state(build_state(job, "cpu"), job, newest.parent, str(run), report=lines.append) == 1
    assert f"{STATE_FILE} does not match {COMPLETE_FILE}" in lines[0]


def test_a_checkpoint_without_a_marker_still_loads(run_with_checkpoints):
    job, run = run_with_checkpoints
    (run / "checkpoint_00000002" / COMPLETE_FILE).unlink()
    state = build_state(job, "cpu")
    assert resume_state(state, job, run / "checkpoint_00000002", str(run), report=lambda line: None) == 2


def test_a_truncated_state_without_a_marker_falls_back_too(run_with_checkpoints):
    job, run = run_with_checkpoints
    folder = run / "checkpoint_00000002"
    (folder / COMPLETE_FILE).unlink()
    (folder / STATE_FILE).write_bytes((folder / STATE_FILE).read_bytes()[:500])
    assert resume_state(build_state(job, "cpu"), job, folder, str(run), report=lambda line: None) == 1


def test_no_readable_checkpoint_is_a_resume_error(run_with_checkpoints):
    job, run = run_with_checkpoints
    for step in (1, 2):
        (run / f"checkpoint_{step:08d}" / STATE_FILE).write_bytes(b"cut")
    with pytest.raises(ResumeError, match="no readable checkpoint"):
        resume_state(build_state(job, "cpu"), job, run / "checkpoint_00000002", str(run), report=lambda line: None)


def test_a_different_network_is_not_papered_over_by_a_fallback(run_with_checkpoints):
    job, run = run_with_checkpoints
    other = job.model_copy(update={"network": job.network.model_copy(update={"conv_dim": 8})})
    with pytest.raises(ResumeError, match="trained with") as caught:
        resume_state(build_state(other, "cpu"), other, run / "checkpoint_00000002", str(run), report=print)
    assert not isinstance(caught.value, IncompleteCheckpointError)


def _data_set(tmp_path, bad_name, bad_bytes):
    import pickle as pkl

    (tmp_path / "imgs").mkdir(parents=True)
    names = ["id0001_000", "id0001_001", bad_name]
    for name in names[:2]:
        (tmp_path / "imgs" / f"{name}.jpg").write_bytes(png_bytes((64, 64), format="JPEG"))
    (tmp_path / "imgs" / f"{bad_name}.jpg").write_bytes(bad_bytes)
    (tmp_path / "aus_openface.pkl").write_bytes(pkl.dumps({n: np.zeros(17, np.float32) for n in names}))
    return tmp_path


@pytest.mark.parametrize("bad", ["text", "1x1", "gif"])
def test_bad_training_images_are_found_before_ray_starts(tmp_path, bad):
    data = {"text": b"not an image", "1x1": png_bytes((1, 1)), "gif": png_bytes(mode="P", format="GIF")}[bad]
    with pytest.raises(DataError, match=r"1 of 3 images cannot be used: imgs/id0002_000\.jpg \("):
        find_training_data(str(_data_set(tmp_path, "id0002_000", data)), "ganimation")


ERRORS = [
    ImageDecodeError("imgs/a.jpg", "not an image"),
    VideoEncodeError("out/a.mp4", "ffmpeg failed"),
    DataError("data/", "2 images cannot be used"),
    storage.StorageError("s3://b/k", "not found"),
    CheckpointFormatError("m.pt: unknown layout", closest_layout="ganimation_official", missing=("a",)),
    CheckpointIntegrityError("m.pt: tensors do not match"),
    IncompleteCheckpointError("ckpt: state.pt cut short"),
    DestinationLockedError("out is in use", LockOwner("h", 1, "r", 0.0, 0.0)),
    ManifestError([Problem(Origin("job.yaml", 3), ("targets", 0), "bad")]),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda error: type(error).__name__)
def test_errors_survive_pickling_with_their_message_and_fields(error):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error) and vars(copy) == vars(error)


def test_a_data_error_raised_in_a_ray_worker_reaches_the_driver_as_itself(ray_local):
    import ray

    @ray.remote
    def decode():
        decode_image(b"not an image", "imgs/x.jpg")

    with pytest.raises(ImageDecodeError) as caught:
        ray.get(decode.remote())
    assert one_line(caught.value) == ("imgs/x.jpg: text (12 bytes), not an image in a supported format "
                                      "(JPEG, PNG, WEBP, BMP, TIFF)")
    assert vars(root_cause(caught.value)) == {"name": "imgs/x.jpg", "reason": one_line(caught.value)[12:]}


def test_one_line_unwraps_ray_train_worker_failures():
    from ray.train import WorkerGroupError

    error = WorkerGroupError("rank 0 failed with a long traceback...", {1: DataError("data/", "x"),
                                                                         0: DataError("data/", "1 of 3 images")})
    assert one_line(error) == "data/: 1 of 3 images" and one_line(ValueError("bad\n value")) == "ValueError: bad value"


# ------------------------------------------------------------------------------------------- destination lock

def _lock_uri(tmp_path, backend, bucket=None):
    return str(tmp_path / "out") if backend == "local" else f"s3://{bucket}/out"


@pytest.fixture(params=["local", "s3"])
def destination(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "out")
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/out"


def _read_owner(uri):
    return LockOwner.from_bytes(storage.read_bytes(storage.join(uri, LOCK_NAME)))


def test_a_second_run_on_a_held_destination_is_told_who_holds_it(destination):
    with claim_destination(destination, run_id="first-run"):
        with pytest.raises(DestinationLockedError, match=r"in use by another ganbatch run: run first-run \(host "):
            with claim_destination(destination):
                pass
    with claim_destination(destination):  # released at the end: free again
        pass
    assert not storage.exists(storage.join(destination, LOCK_NAME))


def test_the_heartbeat_refreshes_the_lock(destination):
    with claim_destination(destination, stale_after=5, heartbeat_every=0.1) as lock:
        first = _read_owner(destination).heartbeat
        time.sleep(0.5)
        assert _read_owner(destination).heartbeat > first and not lock.lost


def test_a_stale_lock_is_taken_over(destination):
    old = LockOwner("another-host", 4242, "old-run", time.time() - 300, time.time() - 300)
    storage.write_bytes(storage.join(destination, LOCK_NAME), old.to_bytes())
    with claim_destination(destination, stale_after=60) as lock:
        assert lock.took_over == old and _read_owner(destination).run_id == lock.run_id


def test_a_lock_of_a_dead_process_on_this_host_is_taken_over(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = LockOwner(socket.gethostname(), int(done.stdout), "dead-run", time.time(), time.time())
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / LOCK_NAME).write_bytes(dead.to_bytes())
    with claim_destination(str(tmp_path / "out")) as lock:
        assert lock.took_over.run_id == "dead-run"


def test_a_run_whose_lock_was_taken_over_knows_it_lost_it(destination):
    lock = DestinationLock(destination, stale_after=5, heartbeat_every=0.1).acquire()
    try:
        intruder = LockOwner("elsewhere", 1, "intruder", time.time(), time.time())
        storage.write_bytes(storage.join(destination, LOCK_NAME), intruder.to_bytes())
        deadline = time.time() + 5
        while not lock.lost and time.time() < deadline:
            time.sleep(0.05)
        assert lock.lost
    finally:
        lock.release()
    assert _read_owner(destination).run_id == "intruder"  # not removed: it is not ours


def test_runs_started_at_once_get_the_destination_exactly_once(destination):
    outcomes, barrier = [], threading.Barrier(6)

    def claim():
        barrier.wait()
        try:
            lock = DestinationLock(destination).acquire()
            outcomes.append(lock)
        except DestinationLockedError:
            outcomes.append(None)

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    winners = [lock for lock in outcomes if lock is not None]
    assert len(outcomes) == 6 and len(winners) == 1
    winners[0].release()


def test_an_unwritable_destination_is_a_destination_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(DestinationError, match="cannot write the lock"):
        with claim_destination(str(tmp_path / "file")):
            pass
    with pytest.raises(DestinationError, match="cannot write the lock"):
        with claim_destination("/proc/ganbatch-not-writable"):
            pass


def test_a_missing_bucket_is_a_destination_error(s3_server):
    with pytest.raises(DestinationError, match="NoSuchBucket"):
        with claim_destination("s3://no-such-bucket-here/out"):
            pass


# ------------------------------------------------------------------------------------------- end to end

@pytest.mark.slow
def test_traversal_keys_end_to_end_leave_nothing_outside_the_destination(ray_local, s3_bucket, tmp_path):
    client = storage.s3_client()
    face = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(face).save(buffer, format="PNG")
    client.put_object(Bucket=s3_bucket, Key="trav/../../../../x/escaped.png", Body=buffer.getvalue())
    client.put_object(Bucket=s3_bucket, Key="trav/sub/../../x2.png", Body=buffer.getvalue())
    client.put_object(Bucket=s3_bucket, Key="trav/ok.png", Body=buffer.getvalue())
    before = {str(path) for path in tmp_path.parent.rglob("*")}
    out = tmp_path / "dest" / "out"
    result = cli("animate", f"s3://{s3_bucket}/trav/", "--recursive", "--model", "demo", "--out", out,
                 "--expression", "happy", "--frames", "2", "--workers", "1")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    status = {row["input"].rsplit("/", 1)[-1]: row for row in rows}
    assert status["ok.png"]["status"] == "ok" and status["escaped.png"]["status"] == "failed"
    assert "'..' part" in status["escaped.png"]["error"]
    assert status["x2.png"]["status"] == "failed" and "'..' part" in status["x2.png"]["error"]  # a row each
    assert len(rows) == 3 and "3 videos: 1 ok, 2 failed" in result.output
    created = {str(path) for path in tmp_path.parent.rglob("*")} - before
    assert created and all(path.startswith(str(tmp_path / "dest")) for path in created), created
    keys = [obj["Key"] for obj in client.list_objects_v2(Bucket=s3_bucket).get("Contents", [])]
    assert sorted(keys) == ["trav/../../../../x/escaped.png", "trav/ok.png", "trav/sub/../../x2.png"]


# ------------------------------------------------------------------------------------------- issue 27: listing

def _photos_with_loops(tmp_path) -> Path:
    """photos/{good1.png, sub/good2.png} with `loop -> .`, `sub/up -> ..` and a linked file `alias.png -> good1.png`."""
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    (photos / "good1.png").write_bytes(png_bytes())
    (photos / "sub" / "good2.png").write_bytes(png_bytes())
    (photos / "loop").symlink_to(".", target_is_directory=True)
    (photos / "sub" / "up").symlink_to("..", target_is_directory=True)
    (photos / "alias.png").symlink_to("good1.png")
    return photos


def test_a_glob_through_symlink_loops_lists_each_photo_once_without_hanging(tmp_path):
    """The standard glob follows `loop -> .` and `sub/up -> ..` without end (it hung for minutes)."""
    photos = _photos_with_loops(tmp_path)
    code = ("import sys; from ganbatch.animate.plan import find_inputs; "
            "print(sorted(i.stem for i in find_inputs([sys.argv[1]], recursive=True)))")
    done = subprocess.run([sys.executable, "-c", code, str(photos / "**" / "*.png")], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 0 and done.stdout.strip() == "['good1', 'sub/good2']", done.stderr


@pytest.mark.parametrize("input", ["folder", "glob"])
def test_one_photo_is_planned_once_whatever_links_reach_it(tmp_path, input):
    photos = _photos_with_loops(tmp_path)
    listing = find_inputs([str(photos) if input == "folder" else str(photos / "**" / "*.png"), str(photos / "good1.png")],
                          recursive=True)
    assert [image.stem for image in listing] == ["good1", "sub/good2"]
    assert listing.skipped == [SkippedFile(str(photos / "alias.png"), "same file as another input")]


def test_a_glob_wider_than_the_bound_is_one_line(tmp_path, face_image, monkeypatch):
    monkeypatch.setattr(storage, "MAX_LISTED", 5)
    for number in range(8):
        (tmp_path / f"p{number}.png").write_bytes(png_bytes())
    result = cli("animate", tmp_path / "*.png", "--model", "demo", "--out", tmp_path / "out", "--expression", "happy",
                 "--dry-run")
    assert_one_clear_error(result, 1, "more than 5 files and folders to look through")


@pytest.mark.parametrize("format", ["png", "mp4", "gif"])
def test_out_inside_a_recursive_input_never_takes_its_outputs_as_inputs(tmp_path, format):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "face.png").write_bytes(png_bytes((64, 64)))
    out = photos / "out"
    frames = out / "face__happy"  # what an earlier --format png run left: frames, preview, gallery thumbnails
    frames.mkdir(parents=True)
    for number in range(3):
        (frames / f"frame_{number:05d}.png").write_bytes(png_bytes())
    (out / "preview.gif").write_bytes(b"GIF89a")
    result = cli("animate", photos, "--recursive", "--model", "demo", "--out", out, "--expression", "happy",
                 "--format", format, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "1 image x 1 target (happy) = 1 video" in result.output
    assert "the destination (--out), never an input" in result.output
    listing = find_inputs([str(photos / "**" / "*.png")], recursive=True, destination=str(out))
    assert [image.stem for image in listing] == ["face"]


def test_a_name_that_is_not_utf8_is_one_line_for_its_item(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "ok.png").write_bytes(png_bytes())
    (Path(os.fsdecode(bytes(folder))) / os.fsdecode(b"caf\xe9.png")).write_bytes(png_bytes())
    items = {item.input: item for item in plan_items(find_inputs([str(folder)], False), ["happy"],
                                                     str(tmp_path / "out"), "mp4")}
    bad = items[str(folder / "caf\\udce9.png")]
    assert "file name is not valid UTF-8" in bad.problem and bad.output == ""
    bad.problem.encode("utf-8")  # printable: the manifest and the summary can hold it
    assert items[str(folder / "ok.png")].problem is None


@pytest.mark.parametrize("out", ["local", "s3://bucket/out"])
def test_names_too_long_for_the_destination_are_refused_at_planning(tmp_path, out):
    out = str(tmp_path / "out") if out == "local" else out
    long, fits = "x" * 248, "y" * 200
    items = plan_items([InputImage(f"/in/{long}.png", long), InputImage(f"/in/{fits}.png", fits),
                        InputImage("/in/deep.png", "/".join(["d" * 200] * 6))], ["happy"], out, "mp4")
    assert items[1].problem is None
    if out.startswith("s3://"):
        assert items[0].problem is None and "over S3's 1024" in items[2].problem
    else:
        assert "over the 241 a name may have here" in items[0].problem and items[0].output == ""
        assert items[2].problem is None


@pytest.mark.slow
def test_refused_names_each_get_a_row_and_the_run_goes_on(ray_local, tmp_path):
    """Two names with a newline, one not UTF-8 and one too long: four failed rows (rows were keyed by their empty
    output, so refused items shared one), each a one-line reason; the good photo is made."""
    folder = tmp_path / "in"
    folder.mkdir()
    face = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    names = ["ok.png", "a\nb.png", "c\nd.png", "e" * 248 + ".png"]
    for name in names:
        Image.fromarray(face).save(folder / name)
    (Path(os.fsdecode(bytes(folder))) / os.fsdecode(b"caf\xe9.png")).write_bytes((folder / "ok.png").read_bytes())
    out = tmp_path / "out"
    result = cli("animate", folder, "--model", "demo", "--out", out, "--expression", "happy", "--frames", "2",
                 "--workers", "1")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "5 videos: 1 ok, 4 failed" in result.output
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    failed = {row["input"].rsplit("/", 1)[-1]: row["error"] for row in rows if row["status"] == "failed"}
    assert len(rows) == 5 and len(failed) == 4, rows
    assert "not valid UTF-8" in failed["caf\\udce9.png"] and "over the 241" in failed["e" * 248 + ".png"]
    assert all("control character" in failed[name] for name in ("a\\nb.png", "c\\nd.png"))


# ------------------------------------------------------------------------------------------- issue 27: manifest

from ganbatch.animate.manifest import ManifestWriter, manifest_row, read_manifest_rows, set_aside_unreadable  # noqa: E402


def _row(name, status="ok"):
    return manifest_row(input=f"/in/{name}.png", output=f"/out/{name}__happy.mp4", status=status, model="demo",
                        target="happy", frames=2, fps=25.0)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_torn_last_row_and_a_garbage_line_are_set_aside_in_a_side_file(tmp_path, where, request):
    if where == "s3":
        uri = f"s3://{request.getfixturevalue('s3_bucket')}/out/manifest.jsonl"
    else:
        uri = str(tmp_path / "manifest.jsonl")
    good = json.dumps(_row("a")) + "\n"
    storage.write_bytes(uri, (good + "garbage, not json\n" + '["a list"]\n' + json.dumps(_row("b"))[:40]).encode())
    note = set_aside_unreadable(uri)
    assert note and "3 unreadable lines" in note and ".unreadable-" in note and "\n" not in note
    side = note.split(" set aside in ")[1].split(";")[0]
    assert storage.read_bytes(side).decode().splitlines()[0] == "garbage, not json"
    assert storage.read_bytes(uri).decode() == good  # the manifest keeps its rows, and a whole last line
    assert read_manifest_rows(uri) == [_row("a")] and set_aside_unreadable(uri) is None


def test_a_row_that_lost_its_newline_is_not_glued_to_the_next(tmp_path):
    path = tmp_path / "manifest.jsonl"
    path.write_text(json.dumps(_row("a")))
    with ManifestWriter(str(path)) as manifest:
        manifest.append(_row("b"))
    assert read_manifest_rows(str(path)) == [_row("a"), _row("b")]


@pytest.mark.slow
def test_a_run_after_a_crash_mid_row_sets_the_torn_row_aside_and_goes_on(ray_local, tmp_path):
    """The torn row's video is made again (its output is missing); the other is skipped by its output's presence."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    face = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    for name in ("a", "b"):
        Image.fromarray(face).save(folder / f"{name}.png")
    out.mkdir()
    (out / "a__happy.mp4").write_bytes(b"made by the crashed run")
    row_a = manifest_row(input=str(folder / "a.png"), output=str(out / "a__happy.mp4"), status="ok", model="demo",
                         target="happy", frames=2, fps=25.0)
    row_b = dict(row_a, input=str(folder / "b.png"), output=str(out / "b__happy.mp4"))
    (out / "manifest.jsonl").write_text(json.dumps(row_a) + "\n%%garbage%%\n" + json.dumps(row_b)[:50])
    result = cli("animate", folder, "--model", "demo", "--out", out, "--expression", "happy", "--frames", "2",
                 "--workers", "1")
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert "2 unreadable lines" in result.output and "manifest.jsonl.unreadable-" in result.output
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [(Path(row["input"]).name, row["status"]) for row in rows] == [("a.png", "ok"), ("a.png", "skipped"),
                                                                          ("b.png", "ok")]
    assert (out / "b__happy.mp4").stat().st_size > 1000


# ------------------------------------------------------------------------------------------- issue 27: targets

from ganbatch.animate.plan import WorkItem  # noqa: E402
from ganbatch.animate.item import prepare_item  # noqa: E402
from ganbatch.animate.targets import TargetError, check_landmark_range, driving_landmarks, load_targets  # noqa: E402
from ganbatch.jobs.animate import CropSpec, TargetSpec  # noqa: E402
from ganbatch.targets.aus import AU_IDS  # noqa: E402


def _aus_csv(path: Path, rows: list[list[float]]) -> Path:
    header = "name, " + ", ".join(f"AU{au:02d}_r" for au in AU_IDS)
    path.write_text("\n".join([header, *(f"r{i}.png, " + ", ".join(map(str, row)) for i, row in enumerate(rows))]))
    return path


@pytest.mark.parametrize("mode", ["path", "per-row"])
def test_a_nan_row_in_an_aus_csv_fails_its_items_naming_file_and_line(tmp_path, face_image, mode):
    """It made every frame black with exit 0; now the items of the target it belongs to fail, naming the row."""
    csv = _aus_csv(tmp_path / "aus.csv", [[1.0] * 17, [1.0] * 3 + [float("nan")] + [1.0] * 13, [2.0] * 17])
    targets = load_targets([TargetSpec(name="t", aus_csv=str(csv), aus_csv_mode=mode, frames=2)])
    bad = targets[0] if mode == "path" else targets[1]
    assert [target.problem is None for target in targets] == ([False] if mode == "path" else [True, False, True])
    item = WorkItem(str(face_image), "", "", targets.index(bad), bad.label)
    with pytest.raises(TargetError, match=r"aus.csv, line 3: AU5 is nan \(AU intensities must be finite"):
        prepare_item(item, targets, CropSpec(mode="none"), 64)
    if mode == "per-row":  # the other rows' videos are made
        prepare_item(dataclasses.replace(item, target=0, label=targets[0].label), targets, CropSpec(mode="none"), 64)


def test_an_aus_csv_row_out_of_range_names_its_line(tmp_path):
    csv = _aus_csv(tmp_path / "aus.csv", [[1.0] * 16 + [7.0]])
    (target,) = load_targets([TargetSpec(name="t", aus_csv=str(csv), frames=2)])
    assert target.problem.endswith("aus.csv, line 2: AU45 = 7 lies outside 0..5")


@pytest.mark.parametrize("value", ["1e30", "-900", "inf"])
def test_landmarks_far_outside_the_crop_are_refused_naming_the_file(tmp_path, face_image, value):
    points = np.full((66, 2), 64.0)
    path = tmp_path / "marks.txt"
    path.write_text(" ".join(["64"] * 5 + [value] + ["64"] * 126) + "\n")
    if value == "inf":  # refused when read, as NaN was
        result = cli("animate", face_image, "--model", "demo-gannotation", "--out", tmp_path / "out", "--landmarks", path)
        assert_one_clear_error(result, 1, "marks.txt", "NaN or infinite")
        return
    targets = load_targets([TargetSpec(name="t", landmarks=str(path), frames=2)])
    with pytest.raises(TargetError, match=r"marks.txt: landmark y = .* \(frame 1, point 3\) lies outside the 128-px"):
        check_landmark_range(targets, 128)
    result = cli("animate", face_image, "--model", "demo-gannotation", "--out", tmp_path / "out", "--landmarks", path)
    assert_one_clear_error(result, 1, "marks.txt: landmark y", "lies outside the 64-px crop")
    assert not (tmp_path / "out" / "manifest.jsonl").exists()
    np.savetxt(path, points.reshape(1, -1) + 30)  # near the crop: fine
    check_landmark_range(load_targets([TargetSpec(name="t", landmarks=str(path), frames=2)]), 128)


def test_a_driving_video_cut_short_is_refused_naming_the_file(tmp_path):
    """A file cut to its first third (what a partial download leaves) was used as 10 frames, exit 0."""
    from ganbatch.faces import get_detector
    from ganbatch.models.locate import DEMO_MODEL

    driver = DEMO_MODEL.parent / "driving" / "driver.mp4"
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(driver.read_bytes()[: driver.stat().st_size // 3])
    with pytest.raises(TargetError, match=r"cut.mp4: only \d+ of its 76 frames could be decoded .*cut short"):
        driving_landmarks(str(cut), get_detector("dlib"))
    assert len(driving_landmarks(str(driver), get_detector("dlib"))) == 76  # the whole file passes


@pytest.mark.parametrize("flags, where", [
    (["--au", "AU12=nan"], "targets[0].aus.AU12"), (["--expression", "happy", "--fps", "inf"], "targets[0].fps"),
    (["--expression", "happy", "--duration", "nan"], "targets[0].duration"),
    (["--expression", "happy", "--margin", "nan"], "crop.margin")])
def test_nan_and_inf_numbers_must_be_finite(tmp_path, face_image, flags, where):
    result = cli("animate", face_image, "--model", "demo", "--out", tmp_path / "out", *flags, "--dry-run")
    assert_one_clear_error(result, 2, f"{where}: must be a finite number")
    assert "should be" not in result.output


# ------------------------------------------------------------------------------------------- issue 27: train

@pytest.mark.slow
def test_a_truncated_newest_checkpoint_falls_back_on_ray_and_the_rotation_after_it_deletes_once(ray_local, tmp_path,
                                                                                                caplog, capfd):
    """Ray Train hands the workers the truncated newest checkpoint; they resume from step 2 (the issue's case).
    Resumed past it, the run wrote checkpoint_00000003 again: Ray Train's snapshot listed it twice and rotation
    removed it twice (FileNotFoundError after the last step). The driver's resume line said 'resuming from step 3'
    (and the fallback only with -v). One run checks all three (each costs a Ray Train start-up)."""
    from ganbatch.train import run_train

    fields = _run_with_a_truncated_newest_checkpoint(tmp_path)
    capfd.readouterr()
    caplog.clear()
    with caplog.at_level("INFO", logger="ganbatch"):
        result = run_train(TrainJob(**fields, steps=6))
    output = "".join(capfd.readouterr())  # the workers' lines (the shared test Ray forwards its own logs too)
    lines = [record.getMessage() for record in caplog.records if record.name.startswith("ganbatch")]
    assert result.ok and result.step == 6, (result.error, lines)
    assert "resume: skipping the latest checkpoint" in output and "checkpoint_00000002 (step 2)" in output
    starts = [json.loads(line) for line in (tmp_path / "runs" / "r" / "metrics.jsonl").read_text().splitlines()
              if '"start"' in line]
    assert [start["step"] for start in starts] == [0, 2]  # resumed from the previous complete checkpoint
    resume = next(line for line in lines if "resuming from" in line)
    assert "checkpoint_00000002 (step 2)" in resume and "checkpoint_00000003" in resume and "skipped" in resume, resume
    assert not any("resuming from step 3" in line for line in lines)
    names = sorted(path.name for path in (tmp_path / "runs" / "r").glob("checkpoint_0*"))
    assert len(names) == 2 and names[-1].startswith("checkpoint_00000006"), names


def test_a_new_checkpoint_never_takes_the_name_of_one_a_resume_skipped(tmp_path):
    from ganbatch.train.checkpoints import checkpoint_dir_name, list_checkpoints

    taken = frozenset({"checkpoint_00000003", "checkpoint_00000003-1"})
    assert checkpoint_dir_name(3, taken) == "checkpoint_00000003-2" and checkpoint_dir_name(4, taken) == \
        "checkpoint_00000004"
    for name in ("checkpoint_00000002", "checkpoint_00000003", "checkpoint_00000003-1"):
        (tmp_path / name).mkdir()
        (tmp_path / name / STATE_FILE).write_bytes(b"x")
        (tmp_path / name / "job.json").write_text("{}")
    assert [Path(uri).name for _, uri in list_checkpoints(str(tmp_path))] == [
        "checkpoint_00000003-1", "checkpoint_00000003", "checkpoint_00000002"]


# ------------------------------------------------------------------------------------------- issue 27: cluster

from ganbatch.animate.resources import plan_stages  # noqa: E402
from ganbatch.jobs.animate import AnimateExecution  # noqa: E402


def _dead_port() -> int:
    with socket.socket() as probe:  # a loopback port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_dead_address_fails_in_one_line_naming_it(tmp_path, face_image, dry_run):
    """Ray retried for minutes ('Failed to connect to GCS ... within 5 seconds' every ~40 s)."""
    address = f"127.0.0.1:{_dead_port()}"
    command = [sys.executable, "-m", "ganbatch.cli", "animate", str(face_image), "--model", "demo", "--out",
               str(tmp_path / "out"), "--expression", "happy", "--address", address, *(["--dry-run"] if dry_run else [])]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30,  # the bound the issue sets
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    errors = [line for line in done.stderr.splitlines() if not line.startswith("note:")]
    assert done.returncode == 1 and len(errors) == 1, done.stderr
    assert f"cannot reach the Ray cluster at {address} (Connection refused)" in errors[0]


def test_explicit_reservations_that_cannot_survive_losing_the_largest_node_are_named():
    def plan(**fields):
        return plan_stages(AnimateExecution(**fields), cpus=4, gpus=0, cpu_nodes=2, node_cpus=2, todo=12,
                           frames_per_clip=32, largest_node_cpus=2)

    explicit = plan(workers=2, cpus_per_worker=1)
    assert "cannot survive the loss of the largest node (2 CPUs)" in explicit.warning
    assert any(line.startswith("warning: 2 workers x 1 CPUs") for line in explicit.describe())
    assert plan(workers=2).warning is None and plan(workers=1, cpus_per_worker=1).warning is None
    one_node = plan_stages(AnimateExecution(workers=2, cpus_per_worker=1), cpus=4, gpus=0, cpu_nodes=1, node_cpus=4,
                           todo=12, frames_per_clip=32)
    assert one_node.warning is None
