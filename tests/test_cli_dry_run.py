"""Deep dry runs: the model header read without weights, family against targets, train's data, resume, workers
and measured estimate, eval's counts and estimate."""
import re

import pytest
from click.testing import CliRunner

from ganbatch.cli import main
from ganbatch.runtimes import model_info
from ganbatch.synth import write_dataset

TINY = ["--size", "64", "--conv-dim", "8", "--res-blocks", "1", "--d-conv-dim", "8", "--critic-steps", "1",
        "--batch-size", "4", "--precision", "fp32"]


@pytest.fixture
def demo_checked():
    """The demo's tensors already verified on this machine (its first use here loads them once; runtimes.source)."""
    model_info("demo")


def test_the_header_is_read_without_loading_the_weights(monkeypatch, demo_checked):
    from ganbatch.models.networks import AttentionGenerator

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded")

    monkeypatch.setattr(AttentionGenerator, "load_state_dict", refuse)
    info = model_info("demo")
    assert (info.family, info.image_size, info.condition, info.read) == ("ganimation", 64, "aus", "header")


def test_family_against_targets(tmp_path):
    """The dry run checks the targets against the model's header with the run's own check (check_condition)."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(b"x")
    (tmp_path / "points.txt").write_text(" ".join(["1 2"] * 66))  # one frame of 66 points
    base = ["animate", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--dry-run"]
    fits = CliRunner().invoke(main, [*base, "--model", "demo-gannotation", "--landmarks", str(tmp_path / "points.txt")])
    assert fits.exit_code == 0, fits.output
    wrong = CliRunner().invoke(main, [*base, "--model", "demo-gannotation", "--expression", "happy"])
    assert wrong.exit_code == 1 and ("target 'happy' gives aus, but demo-gannotation is a gannotation model, "
                                     "conditioned on landmarks: use landmarks, driving_video") in wrong.output


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_dataset(root, 3, 4, size=64, seed=1, contact_sheet=False)
    return root


def test_train_dry_run_checks_data_workers_and_measures_a_step(data, tmp_path):
    result = CliRunner().invoke(main, ["train", "--family", "ganimation", "--data", str(data), "--out", str(tmp_path),
                                       "--name", "r", *TINY, "--steps", "30", "--dry-run"])
    assert result.exit_code == 0, result.output
    plan = result.stdout
    assert re.search(r"#   data: \d+ images of \d+ identities .*, GANimation layout", plan)
    assert "#   workers: 1 on a local Ray started for the run" in plan
    assert "#   precision: fp32" in plan
    assert "#   estimate: " in plan and "for 30 steps (" in plan and "s per step measured here" in plan
    assert not (tmp_path / "r").exists()


def test_train_dry_run_fails_in_one_line_on_missing_data(tmp_path):
    missing = CliRunner().invoke(main, ["train", "--family", "ganimation", "--data", str(tmp_path / "none"), "--out",
                                        str(tmp_path), "--name", "r", *TINY, "--dry-run"])
    assert missing.exit_code == 1 and "Traceback" not in missing.output
    assert missing.stderr.startswith("Error: train r: ") and len(missing.stderr.strip().splitlines()) == 1
    assert "cannot list the data set" in missing.stderr


def test_eval_dry_run_counts_pairs_and_frames(demo_checked):
    result = CliRunner().invoke(main, ["eval", "--model", "demo", "--identities", "2", "--random-pairs", "1",
                                       "--path-frames", "4", "--chunk-size", "4", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "model demo: ganimation, 64 px, conditioned on aus (read from its header)" in result.stdout
    assert "2 held-out identities x (8 presets + 1 random pairs) = 18 pairs, animated with their target AUs" \
        in result.stdout
    assert "26 generated frames at 64 px on auto (cpu)" in result.stdout  # auto: the default runtime
    assert "estimate: generator " in result.stdout
