"""The CLI's behaviour around the jobs: logging levels and formats, redaction in logs, quiet Ray options, progress
lines, validate's notes for unset variables, Ctrl-C handling and resume checks."""
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ganbatch.cli import INTERRUPTED, main
from ganbatch.logs import add_redactor, clear_redactors, quiet_ray_options, setup_logging
from ganbatch.progress import Progress, describe_cluster, describe_setup, format_duration

JOBS = Path(__file__).resolve().parents[1] / "jobs"
GANBATCH = [sys.executable, "-m", "ganbatch.cli"]


@pytest.fixture
def restore_logging():
    yield
    clear_redactors()
    setup_logging(0)


def _lines(capsys) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_verbosity_sets_what_the_ganbatch_logger_shows(capsys, restore_logging):
    log = logging.getLogger("ganbatch.some.module")
    for verbosity, shown in [(-1, ["warning"]), (0, ["info", "warning"]), (1, ["debug", "info", "warning"])]:
        setup_logging(verbosity, "text")
        log.debug("debug")
        log.info("info")
        log.warning("warning")
        assert _lines(capsys) == shown


def test_json_log_lines_and_redaction_of_env_values(capsys, restore_logging):
    setup_logging(0, "json")
    add_redactor(lambda text: text.replace("secret-bucket", "${env:BUCKET}"))
    logging.getLogger("ganbatch.anything").info("writing to s3://%s/x", "secret-bucket")
    (line,) = _lines(capsys)
    record = json.loads(line)
    assert record["level"] == "info" and record["logger"] == "ganbatch.anything"
    assert record["message"] == "writing to s3://${env:BUCKET}/x" and record["time"].endswith("Z")


def test_dry_run_log_lines_are_redacted_too(tmp_path, monkeypatch, capsys, restore_logging):
    monkeypatch.setenv("GANBATCH_TEST_BUCKET", "very-secret-bucket")
    path = tmp_path / "job.yaml"
    path.write_text("kind: synth\nout: s3://${env:GANBATCH_TEST_BUCKET}/data\n")
    result = CliRunner().invoke(main, ["run", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    logging.getLogger("ganbatch.x").warning("failed at s3://very-secret-bucket/data/imgs")
    assert _lines(capsys) == ["failed at s3://${env:GANBATCH_TEST_BUCKET}/data/imgs"]


def test_quiet_ray_options_follow_the_verbosity(restore_logging):
    setup_logging(0)
    assert quiet_ray_options() == {"logging_level": logging.ERROR, "log_to_driver": False}
    assert os.environ["RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS"] == "0"
    setup_logging(1)
    assert quiet_ray_options() == {"logging_level": logging.WARNING, "log_to_driver": True}


def test_quiet_ray_options_quiet_ray_datas_console(restore_logging):
    import ray.data  # noqa: F401 - configures the ray.data logger

    def console_levels():
        return [h.level for h in logging.getLogger("ray.data").handlers if "File" not in type(h).__name__]

    quiet_ray_options(0)
    assert console_levels() and set(console_levels()) == {logging.ERROR}
    quiet_ray_options(1)
    assert set(console_levels()) == {logging.INFO}


def test_cli_verbosity_flags_reach_the_logging_setup(restore_logging):
    from ganbatch import logs

    for flags, expected in [([], 0), (["-v"], 1), (["-vv"], 2), (["-q"], -1)]:
        assert CliRunner().invoke(main, [*flags, "validate", str(JOBS / "quickstart.yaml")]).exit_code == 0
        assert logs.verbosity() == expected


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_progress_on_a_non_terminal_prints_a_line_every_interval(capsys):
    clock = _Clock()
    progress = Progress(total=10, unit="videos", label="animate", interval=10, bar=False, clock=clock)
    for _ in range(4):
        clock.now += 3
        progress.update(frames=50)
    assert _lines(capsys) == ["animate: 4/10 videos (40%), 16.7 frames/s, eta 18s"]  # at 12 s, not before
    clock.now += 3
    progress.update(frames=50, failed=True)
    assert progress.close() == 15
    assert _lines(capsys) == ["animate: 5/10 videos (50%), 1 failed, 16.7 frames/s, eta 15s"]


def test_progress_bar_on_a_terminal(capsys):
    import io

    stream = io.StringIO()
    with Progress(total=3, unit="videos", label="animate", bar=True, stream=stream) as progress:
        progress.update(frames=10)
    assert "animate:" in stream.getvalue() and "1/3" in stream.getvalue()


def test_start_up_line_names_what_the_run_uses():
    cluster = describe_cluster({"CPU": 2.0}, None)
    assert cluster == "local Ray (2 CPUs)"
    line = describe_setup(cluster=cluster, workers=1, device="cpu", precision="fp32", runtime="torch", threads=2,
                          detector="lbp")
    assert line == ("using: local Ray (2 CPUs), no GPU found, 1 worker, cpu, fp32, torch runtime, 2 threads per "
                    "worker, face detector lbp")
    remote = describe_cluster({"CPU": 64.0, "GPU": 8.0}, "ray://head:10001")
    assert describe_setup(cluster=remote, workers=8, device="cuda", precision="bf16", gpus=8) == \
        "using: Ray cluster at ray://head:10001 (64 CPUs, 8 GPUs), 8 workers, cuda, bf16"
    assert [format_duration(s) for s in (5, 250, 3900)] == ["5s", "4m10s", "1h05m"]


def test_validate_notes_unset_variables_unless_strict(monkeypatch):
    monkeypatch.delenv("GANBATCH_BUCKET", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    manifests = sorted(str(path) for path in JOBS.glob("*.yaml"))
    result = CliRunner().invoke(main, ["validate", *manifests])
    assert result.exit_code == 0, result.output
    assert "animate_s3.yaml: ok, once GANBATCH_BUCKET is set" in result.stdout
    assert "train_cluster_s3.yaml: ok, once GANBATCH_BUCKET, RAY_ADDRESS are set" in result.stdout
    strict = CliRunner().invoke(main, ["validate", "--strict", str(JOBS / "animate_s3.yaml")])
    assert strict.exit_code == 2 and "environment variable GANBATCH_BUCKET is not set" in strict.stderr


def test_validate_still_fails_on_real_problems_beside_unset_variables(tmp_path, monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    path = tmp_path / "job.yaml"
    path.write_text("kind: synth\nout: s3://${env:NOT_SET_ANYWHERE}/data\nidentities: many\n")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2 and "identities: Input should be a valid integer" in result.stderr
    assert "NOT_SET_ANYWHERE" not in result.stderr


def test_env_default_form(tmp_path, monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    path = tmp_path / "job.yaml"
    path.write_text("kind: synth\nout: s3://${env:NOT_SET_ANYWHERE:-fallback-bucket}/data\n")
    result = CliRunner().invoke(main, ["run", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "fallback-bucket" in result.stdout
    monkeypatch.setenv("NOT_SET_ANYWHERE", "given-bucket")
    assert "given-bucket" not in CliRunner().invoke(main, ["run", str(path), "--dry-run"]).stdout  # redacted
    assert CliRunner().invoke(main, ["validate", "--strict", str(path)]).exit_code == 0


def _as_in_a_terminal():
    """Give the child the default SIGINT action, as a command started from a terminal has. A suite launched in the
    background of a non-interactive shell (`cmd &`) inherits SIGINT ignored, and so would every command it starts."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(command: list[str], ready: str, timeout: float = 300) -> tuple[int, str, float]:
    """Start `command`, wait for a line containing `ready`, send SIGINT; (exit status, output, seconds to exit)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               cwd=Path(__file__).resolve().parents[1], preexec_fn=_as_in_a_terminal)
    seen = []
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        seen.append(line)
        if ready in line or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGINT)
    sent = time.monotonic()
    rest, _ = process.communicate(timeout=60)
    return process.returncode, "".join(seen) + rest, time.monotonic() - sent


def test_ctrl_c_ends_a_command_with_the_resume_hint_and_status_130(tmp_path):
    command = GANBATCH + ["synth", "--out", str(tmp_path / "data"), "--identities", "500", "--per-identity", "4",
                          "--size", "64", "--layout", "ganimation", "--no-contact-sheet"]
    # synth prints nothing until it ends: interrupt it once its first images are written.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_as_in_a_terminal)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "data").rglob("*.jpg")) and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == INTERRUPTED and "Traceback" not in err
    assert time.monotonic() - sent < 10


@pytest.mark.slow
def test_ctrl_c_during_train_stops_within_seconds(tmp_path):
    from ganbatch.synth import write_dataset

    write_dataset(tmp_path / "data", 3, 4, size=64, seed=1, contact_sheet=False)
    command = GANBATCH + ["train", "--family", "ganimation", "--data", str(tmp_path / "data"), "--out",
                          str(tmp_path / "runs"), "--name", "r", "--size", "64", "--conv-dim", "8", "--res-blocks", "1",
                          "--d-conv-dim", "8", "--critic-steps", "1", "--batch-size", "4", "--steps", "100000",
                          "--log-every", "2", "--precision", "fp32"]
    status, output, seconds = _interrupt(command, "[r] step 2/")
    assert status == 130, output
    assert output.strip().splitlines()[-1] == INTERRUPTED and "Traceback" not in output
    assert seconds < 60, seconds  # about 3 s on the idle 2-core machine; Ray's shutdown slows under heavy load
    # Quiet by default: no Ray worker prefixes or Ray warnings, the progress line without a prefix.
    assert "pid=" not in output and "WARNING" not in output
    assert any(line.startswith("[r] step 2/100000") for line in output.splitlines())


def test_resuming_with_changed_settings_names_them(tmp_path, caplog):
    from ganbatch.jobs.train import TrainJob
    from ganbatch.train.run import _check_resume, job_changes
    from ganbatch.train.state import ResumeError

    base = TrainJob(family="ganimation", data="d", out=str(tmp_path), name="r", steps=10,
                    network={"size": 64, "conv_dim": 8, "res_blocks": 1})
    changed = base.model_copy(update={"objective": base.objective.model_copy(update={"lambda_cycle": 5.0}),
                                      "steps": 20})
    assert job_changes(base, changed) == ["objective.lambda_cycle: 10.0 -> 5.0"]
    with caplog.at_level(logging.WARNING, logger="ganbatch"):
        logging.getLogger("ganbatch").addHandler(caplog.handler)
        try:
            _check_resume(base, changed, "runs/r/checkpoint_00000010")
        finally:
            logging.getLogger("ganbatch").removeHandler(caplog.handler)
    assert "resuming with changed settings: objective.lambda_cycle: 10.0 -> 5.0" in caplog.text
    bigger = base.model_copy(update={"network": base.network.model_copy(update={"size": 128})})
    with pytest.raises(ResumeError, match=r"network.size: 64 -> 128"):
        _check_resume(base, bigger, "runs/r/checkpoint_00000010")



def test_the_demo_model_says_it_knows_synthetic_faces_only(tmp_path):
    photo = tmp_path / "a.png"
    photo.write_bytes(b"")
    for model, said in [("demo", True), ("demo-gannotation", True), (str(tmp_path / "mine.pt"), False)]:
        result = CliRunner().invoke(main, ["animate", str(photo), "--model", model, "--expression", "happy", "--out",
                                           str(tmp_path / "out"), "--dry-run"])
        lines = [line for line in result.stderr.splitlines() if "trained on synthetic faces only" in line]
        assert len(lines) == (1 if said else 0), model
    evaluation = CliRunner().invoke(main, ["eval", "--model", "demo", "--identities", "1", "--random-pairs", "0",
                                           "--path-frames", "2", "--dry-run"])
    assert evaluation.stderr.count("trained on synthetic faces only") == 1


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["ray", "in-process"])
def test_ctrl_c_during_animate_ends_with_the_hint(tmp_path, executor):
    samples = Path(__file__).resolve().parents[1] / "ganbatch" / "assets" / "samples"
    out = tmp_path / "out"
    command = GANBATCH + ["animate", str(samples), "--model", "demo", "--expression", "happy", "--expression", "sad",
                          "--expression", "surprise", "--frames", "60", "--out", str(out), "--executor", executor]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_as_in_a_terminal)
    deadline = time.monotonic() + 300
    while not list(out.glob("*.mp4")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == INTERRUPTED and "Traceback" not in err


def test_ctrl_c_while_ray_starts_takes_effect_once_it_has_started():
    """Ray's start-up interrupted midway left its core worker half made; the process crashed (SIGSEGV) at exit."""
    from ganbatch.cluster import ctrl_c_deferred

    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (not `cmd &`)
    try:
        reached = []
        with pytest.raises(KeyboardInterrupt):
            with ctrl_c_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.1)  # the signal is handled by now: deferred, so the block goes on
                reached.append("end of the block")
        assert reached == ["end of the block"]
        with ctrl_c_deferred():  # nothing pressed: nothing raised
            pass
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler before is back
    finally:
        signal.signal(signal.SIGINT, before)


def test_ray_never_starts_implicitly_in_a_command():
    """After a command's Ray session had ended (Ctrl-C), Ray Data's thread called Ray and so started a second Ray."""
    code = ("from ganbatch.cluster import import_ray\n"
            "ray = import_ray()\n"
            "try:\n"
            "    ray.put(1)\n"
            "except Exception as error:\n"
            "    print('refused:', type(error).__name__)\n"
            "print('initialized:', ray.is_initialized())\n")
    env = {key: value for key, value in os.environ.items() if key not in ("RAY_ENABLE_AUTO_CONNECT", "RAY_ADDRESS")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout and "initialized: False" in done.stdout, done.stdout + done.stderr


OWN_LINES = ("note: ", "using: ", "generator: ", "animate: ", "  failed: ", "  note: ", "Error: ", "out: ", "manifest: ")


@pytest.mark.slow
@pytest.mark.parametrize("executor", [[], ["--executor", "ray"]], ids=["default", "ray"])
def test_a_default_animate_prints_only_ganbatchs_own_lines(tmp_path, executor):
    """A real run at default verbosity (this small job runs in process by default; on Ray too): no Ray line (the
    core worker's 'constructor arguments in the object store' error was printed on every run), the final progress
    line once, and a failed batch's last line says where the rows are and how to accept partial results."""
    samples = Path(__file__).resolve().parents[1] / "ganbatch" / "assets" / "samples"
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "good.png").write_bytes((samples / "id0015.png").read_bytes())
    (photos / "broken.png").write_text("not an image")
    out = tmp_path / "out"
    done = subprocess.run(GANBATCH + ["animate", str(photos), "--model", "demo", "--expression", "happy", "--frames",
                                      "2", "--out", str(out), *executor], capture_output=True, text=True,
                          timeout=400)
    lines = (done.stdout + done.stderr).splitlines()
    assert done.returncode == 1, done.stderr
    assert [line for line in lines if not line.startswith(OWN_LINES)] == [], done.stderr
    finals = [line for line in lines if line.startswith("animate: 2/2 videos")]
    assert len(finals) == 1, lines
    assert any(line.startswith("animate: 2 videos: 1 ok, 1 failed") for line in lines)
    assert lines[-1] == (f"Error: the animate job failed: 1 of 2 videos failed; the rows, each failure with its reason, "
                         f"are in {out / 'manifest.jsonl'}; re-run to retry them (videos made are skipped), or pass "
                         "--allow-failures to accept partial results"), lines[-1]


def test_one_video_is_one_video():
    from ganbatch.animate.pipeline import AnimateResult, _summary

    result = AnimateResult(ok=True, outputs={"out": "o", "manifest": "o/manifest.jsonl"}, succeeded=1)
    assert _summary(result, "o/manifest.jsonl").startswith("animate: 1 video: 1 ok, 0 failed, 0 skipped")


def test_the_final_progress_line_is_written_once(capsys):
    ticks = iter([0, 0, 11, 11, 11, 11, 11, 11])
    progress = Progress(1, unit="videos", label="animate", bar=False, clock=lambda: next(ticks))
    progress.update(frames=4)  # past the interval: this shows the final line already
    progress.close()
    assert _lines(capsys) == ["animate: 1/1 videos (100%), 0.4 frames/s, took 11s"]
