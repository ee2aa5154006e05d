"""`ganbatch run / validate / synth`: --set and flag precedence, --dry-run output, synth to a folder and to S3."""
import io
import subprocess
import sys
import textwrap
from pathlib import Path

import boto3
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from ganbatch.cli import main
from ganbatch.jobs import JOB_ADAPTER, SynthJob
from ganbatch.targets.aus import read_aus_pkl

JOBS = Path(__file__).resolve().parents[1] / "jobs"


def invoke(*args: str):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def write(tmp_path: Path, text: str, name: str = "job.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def dry_run_yaml(result) -> dict:
    """The resolved job that --dry-run printed (its plan follows as `#` comments, so the whole output is YAML)."""
    assert result.exit_code == 0, result.output
    return yaml.safe_load(result.stdout)


def test_validate_accepts_the_examples_and_reports_every_bad_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBATCH_BUCKET", "example-bucket")
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    good = invoke("validate", *sorted(JOBS.glob("*.yaml")))
    assert good.exit_code == 0, good.output
    assert good.stdout.count(": ok (") == len(list(JOBS.glob("*.yaml")))
    assert "quickstart.yaml: ok (pipeline: data, train, videos)" in good.stdout

    bad = write(tmp_path, "kind: synth\nout: data\nsize: tiny\n", "bad.yaml")
    result = invoke("validate", JOBS / "quickstart.yaml", bad)
    assert result.exit_code == 2
    assert "quickstart.yaml: ok" in result.stdout
    assert f"{bad}:3: size: Input should be a valid integer" in result.stderr


def test_dry_run_prints_the_resolved_job_with_defaults_and_the_plan(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBATCH_TEST_BUCKET", "secret-bucket-name")
    path = write(tmp_path, """
        kind: synth
        out: s3://${env:GANBATCH_TEST_BUCKET}/data
        identities: 3
    """)
    result = invoke("run", path, "--dry-run", "--set", "per_identity=4", "--set", "layouts=[ganimation, landmarks]")
    printed = dry_run_yaml(result)
    assert printed["out"] == "s3://${env:GANBATCH_TEST_BUCKET}/data"
    assert "secret-bucket-name" not in result.output
    assert (printed["identities"], printed["per_identity"], printed["layouts"]) == (3, 4, ["ganimation", "landmarks"])
    for name in ("size", "seed", "test_fraction", "contact_sheet"):  # not in the file: pydantic defaults
        assert printed[name] == SynthJob.model_fields[name].default
    assert "# plan:" in result.stdout and "3 identities x 4 images = 12 images" in result.stdout
    assert not (tmp_path / "data").exists()
    JOB_ADAPTER.validate_python({**printed, "out": "s3://bucket-name/data"})  # the printed job is a valid job


def test_set_errors_name_the_option(tmp_path):
    path = write(tmp_path, "kind: synth\nout: data\n")
    result = invoke("run", path, "--set", "identities=-1", "--set", "nonsense", "--set", "idenities=2", "--dry-run")
    assert result.exit_code == 2
    assert "--set: identities: Input should be greater than or equal to 1" in result.stderr
    assert "--set: expected dotted.key=value" in result.stderr
    assert "--set: idenities: unknown key; did you mean 'identities'?" in result.stderr


def test_synth_flags_override_the_job_file_and_set_overrides_flags(tmp_path):
    path = write(tmp_path, """
        kind: synth
        out: from-file
        identities: 3
        size: 64
    """)
    from_file = dry_run_yaml(invoke("synth", "--job", path, "--dry-run"))
    assert (from_file["out"], from_file["identities"], from_file["size"]) == ("from-file", 3, 64)
    flagged = dry_run_yaml(invoke("synth", "--job", path, "--identities", "5", "--no-contact-sheet", "--dry-run"))
    assert (flagged["identities"], flagged["size"], flagged["contact_sheet"]) == (5, 64, False)
    overridden = dry_run_yaml(invoke("synth", "--job", path, "--identities", "5", "--set", "identities=7", "--dry-run"))
    assert overridden["identities"] == 7


def test_synth_without_a_file_uses_pydantic_defaults_and_names_missing_flags():
    printed = dry_run_yaml(invoke("synth", "--out", "somewhere", "--layout", "openface", "--dry-run"))
    defaults = SynthJob(out="somewhere", layouts=["openface"]).model_dump(mode="json")
    assert printed == defaults
    missing = invoke("synth", "--identities", "2", "--dry-run")
    assert missing.exit_code == 2 and "command line: out: missing required key" in missing.stderr


def test_synth_command_writes_a_tiny_data_set(tmp_path):
    out = tmp_path / "synthetic"
    result = invoke("synth", "--out", out, "--identities", "2", "--per-identity", "2", "--size", "64",
                    "--layout", "ganimation", "--no-contact-sheet")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"data: {out}"
    images = sorted((out / "imgs").glob("*.jpg"))
    assert len(images) == 4
    assert all(Image.open(image).size == (64, 64) for image in images)
    listed = (out / "train_ids.csv").read_text().split() + (out / "test_ids.csv").read_text().split()
    assert sorted(listed) == [image.name for image in images]
    assert (out / "aus_openface.pkl").is_file()
    assert not (out / "aus_openface.csv").exists() and not (out / "contact_sheet.png").exists()


def test_synth_expression_weights_reach_the_data_set_and_bad_ones_get_one_line(tmp_path):
    out = tmp_path / "neutral-only"
    result = invoke("synth", "--out", out, "--identities", "2", "--per-identity", "3", "--size", "64",
                    "--layout", "ganimation", "--no-contact-sheet", "--neutral-weight", "1", "--prototype-weight", "0",
                    "--sparse-weight", "0")
    assert result.exit_code == 0, result.output
    assert not np.any(list(read_aus_pkl(out / "aus_openface.pkl").values()))
    planned = invoke("synth", "--out", out, "--sparse-weight", "0.6", "--dry-run")
    printed = dry_run_yaml(planned)
    assert [printed[f"{kind}_weight"] for kind in ("neutral", "prototype", "sparse")] == [0.15, 0.45, 0.6]
    assert "expressions neutral:prototype:sparse 0.15:0.45:0.6" in planned.stdout
    for flags, reason in ((["--sparse-weight", "-1"], "--sparse-weight: sparse_weight: Input should be greater"),
                          (["--neutral-weight", "inf"], "--neutral-weight: neutral_weight: must be a finite number"),
                          (["--neutral-weight", "0", "--prototype-weight", "0", "--sparse-weight", "0"],
                           "neutral_weight, prototype_weight and sparse_weight must not all be 0")):
        refused = invoke("synth", "--out", out, *flags, "--dry-run")
        assert refused.exit_code == 2 and reason in refused.stderr and "Traceback" not in refused.output


@pytest.mark.slow
def test_synth_command_writes_to_s3(s3_bucket):
    prefix = f"s3://{s3_bucket}/sets/tiny"
    result = invoke("synth", "--out", prefix, "--identities", "2", "--per-identity", "2", "--size", "64",
                    "--layout", "ganimation")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"data: {prefix}"
    client = boto3.session.Session().client("s3")
    keys = {obj["Key"] for obj in client.list_objects_v2(Bucket=s3_bucket, Prefix="sets/tiny/")["Contents"]}
    images = sorted(key for key in keys if key.startswith("sets/tiny/imgs/"))
    assert len(images) == 4
    assert {"sets/tiny/aus_openface.pkl", "sets/tiny/train_ids.csv", "sets/tiny/contact_sheet.png"} <= keys
    body = client.get_object(Bucket=s3_bucket, Key=images[0])["Body"].read()
    assert Image.open(io.BytesIO(body)).size == (64, 64)


def test_validate_does_not_load_ray_or_the_runners():
    code = (
        "import sys; from click.testing import CliRunner; from ganbatch.cli import main; "
        f"result = CliRunner().invoke(main, ['validate', {str(JOBS / 'quickstart.yaml')!r}]); "
        "assert result.exit_code == 0, result.output; "
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith(('ganbatch.train', 'ganbatch.animate'))))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_eval_and_export_are_jobs_with_job_set_and_dry_run(tmp_path):
    path = write(tmp_path, f"""
        kind: export
        source: demo
        out: {tmp_path / 'demo.onnx'}
    """)
    planned = invoke("run", path, "--set", "precision=fp16", "--dry-run")
    printed = dry_run_yaml(planned)
    assert (printed["kind"], printed["precision"], printed["calibration"]) == ("export", "fp16", "synth")
    assert "#   export the generator of demo" in planned.stdout and not (tmp_path / "demo.onnx").exists()
    flagged = dry_run_yaml(invoke("export", "--job", path, "--out", tmp_path / "demo.pt", "--dry-run"))
    assert flagged["out"] == str(tmp_path / "demo.pt")
    ran = invoke("export", "--job", path, "--set", f"out={tmp_path / 'demo.pt'}")
    assert ran.exit_code == 0, ran.output
    assert f"model: {tmp_path / 'demo.pt'}" in ran.stdout and "(ganbatch checkpoint)" in ran.stdout
    evaluation = write(tmp_path, "kind: eval\nmodel: demo\n", "eval.yaml")
    printed = dry_run_yaml(invoke("eval", "--job", evaluation, "--identities", "1", "--set", "path_frames=2",
                                  "--random-pairs", "0", "--dry-run"))
    assert (printed["identities"], printed["path_frames"], printed["random_pairs"]) == (1, 2, 0)
    bad = invoke("eval", "--job", evaluation, "--identities", "0", "--dry-run")
    assert bad.exit_code == 2 and "--identities: identities: Input should be greater than or equal to 1" in bad.stderr


def test_eval_and_export_are_pipeline_steps(tmp_path):
    path = write(tmp_path, """
        kind: pipeline
        steps:
          train: {kind: train, family: ganimation, data: data, out: runs, name: r}
          model: {kind: export, source: "${steps.train.run}", out: runs/r.onnx}
          check: {kind: eval, model: "${steps.model.model}", out: runs/r.json}
    """)
    result = invoke("validate", path)
    assert result.exit_code == 0 and "ok (pipeline: train, model, check)" in result.stdout, result.output
    wrong = write(tmp_path, path.read_text().replace("${steps.model.model}", "${steps.model.onnx}"), "wrong.yaml")
    result = invoke("validate", wrong)
    assert result.exit_code == 2 and "step 'model' (export) has no output 'onnx'; its outputs: model" in result.stderr


def test_a_job_error_is_one_redacted_line_with_exit_status_1(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBATCH_TEST_RUNS", str(tmp_path / "secret-runs"))
    result = invoke("export", "${env:GANBATCH_TEST_RUNS}/r", "--out", tmp_path / "m.pt")
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: ${env:GANBATCH_TEST_RUNS}/r") and "no checkpoints" in line
    assert "secret-runs" not in result.output
