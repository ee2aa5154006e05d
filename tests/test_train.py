"""Training runs on the real local Ray (`ray_local`): runs, samples, resume, fault recovery, S3, equivalence, export.

Networks are tiny (64 px, 8 channels, 1 residual block) and runs a few steps long; the data set is 4 identities x
4 images.
"""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ganbatch.errors import JobError
from ganbatch.io import storage
from ganbatch.cli import main
from ganbatch.jobs.train import TrainJob
from ganbatch.models.checkpoint import load_generator
from ganbatch.render import render_clip
from ganbatch.synth.dataset import write_dataset
from ganbatch.targets.aus import expression_aus
from ganbatch.train import run_train
from ganbatch.train.checkpoints import list_checkpoints
from ganbatch.train.preview import HEADER_HEIGHT
from ganbatch.train.state import STATE_FILE, build_state, read_state

TINY = {"size": 64, "conv_dim": 8, "res_blocks": 1, "d_conv_dim": 8}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    write_dataset(root, 4, 4, size=64, seed=1, contact_sheet=False)
    return str(root)


def _job(family, data, out, name, **fields):
    settings = {"network": TINY, "objective": {"critic_steps": 2}, "batch_size": 4, "steps": 3,
                "checkpoint_every": 2, "log_every": 1, "sample_every": 3,
                "execution": {"workers": 2, "precision": "fp32"}}  # fp32: 1 and 2 workers agree to rounding
    for key, value in fields.items():
        settings[key] = {**settings[key], **value} if isinstance(settings.get(key), dict) else value
    return TrainJob(family=family, data=data, out=str(out), name=name, **settings)


def _metrics(run):
    return [json.loads(line) for line in storage.read_bytes(storage.join(run, "metrics.jsonl")).splitlines()]


def _check_model_renders(model_path, family):
    generator, info = load_generator(model_path)
    assert info.family == family and info.image_size == 64 and info.config["training"]["steps"] >= 3
    face = np.full((64, 64, 3), 128, np.uint8)
    targets = expression_aus("happy")[None] if family == "ganimation" else np.full((1, 66, 2), 32.0, np.float32)
    clip = render_clip(generator, info, face, targets)
    assert clip.frames.shape == (1, 64, 64, 3)


@pytest.fixture(scope="module")
def ganimation_two_workers(ray_local, data, tmp_path_factory):
    """A finished 2-worker GANimation run of 3 steps (shared by the run and equivalence tests)."""
    return run_train(_job("ganimation", data, tmp_path_factory.mktemp("runs"), "anim2"))


@pytest.fixture(scope="module")
def ganimation_one_worker(ray_local, data, tmp_path_factory):
    """The same run on 1 worker."""
    return run_train(_job("ganimation", data, tmp_path_factory.mktemp("runs"), "anim1", execution={"workers": 1}))


@pytest.mark.slow
def test_two_worker_run_writes_checkpoints_metrics_samples_and_model(ganimation_two_workers):
    result = ganimation_two_workers
    run = result.outputs["run"]
    assert result.ok and result.step == 3 and result.outputs["model"] == f"{run}/model.pt"
    assert [step for step, _ in list_checkpoints(run)] == [3, 2]
    records = _metrics(run)
    assert records[0]["event"] == "start" and records[0]["workers"] == 2
    assert [r["step"] for r in records[1:]] == [1, 2, 3]
    assert {"d_adv", "d_au", "d_gp", "g_adv", "g_au", "g_cycle", "g_mask", "g_tv", "images_per_s"} <= set(records[1])
    tensorboard = storage.list_uris(f"{run}/tensorboard")
    assert len(tensorboard) == 1 and "tfevents" in tensorboard[0]
    grid = np.asarray(Image.open(f"{run}/samples/step_00000003.png"))
    # a header row naming the columns, then 3 faces x (frames, masks) rows; face + 6 targets columns
    assert grid.shape == (HEADER_HEIGHT + 3 * 2 * 64, 7 * 64, 3)
    _check_model_renders(result.outputs["model"], "ganimation")


def _flat(state, network):
    return torch.cat([tensor.flatten() for tensor in state[network].values()])


@pytest.mark.slow
def test_one_and_two_workers_reach_the_same_weights(ganimation_one_worker, ganimation_two_workers):
    assert ganimation_one_worker.ok
    states = [read_state(f"{r.outputs['run']}/checkpoint_00000003/{STATE_FILE}")
              for r in (ganimation_one_worker, ganimation_two_workers)]
    for network in ("generator", "critic"):
        differences = (_flat(states[0], network) - _flat(states[1], network)).abs()
        # Adam moves every weight by about lr = 1e-4 per step, whatever the gradient's size: 2 workers that did
        # not average their gradients differ in most weights (measured: 98% of the generator's, 44% of the
        # critic's). Averaged ones differ only by rounding, which flips Adam's sign where a gradient is ~0
        # (weights on the constant AU maps before an InstanceNorm: 0.3% of the generator).
        assert float((differences > 1e-6).float().mean()) < 0.01, network
        assert float(differences.mean()) < 1e-6, network


@pytest.mark.slow
def test_a_finished_run_without_its_model_writes_it_again_without_training(ganimation_one_worker, tmp_path):
    """A run at its last step whose model.pt is gone (deleted, or the export was cut short): the model is written
    from the latest checkpoint, nothing is trained."""
    import shutil

    run = Path(ganimation_one_worker.outputs["run"])
    step, latest = list_checkpoints(str(run))[0]
    shutil.copytree(run, tmp_path / run.name)
    (tmp_path / run.name / "model.pt").unlink()
    job = TrainJob.model_validate_json(storage.read_bytes(f"{latest}/job.json"))
    again = run_train(job.model_copy(update={"out": str(tmp_path), "steps": step}))
    assert again.ok and again.start_step == again.step == step
    generator, info = load_generator(again.outputs["model"])
    assert info.config["training"]["step"] == step
    original, _ = load_generator(run / "model.pt")  # the run's own model: its last step, the latest checkpoint
    for name, tensor in original.state_dict().items():
        torch.testing.assert_close(generator.state_dict()[name], tensor, rtol=0, atol=0)


@pytest.mark.slow
def test_a_failing_worker_resumes_from_the_last_checkpoint(ray_local, data, tmp_path):
    job = _job("ganimation", data, tmp_path, "faulty", steps=4, execution={"fail_at_step": 3, "max_failures": 1})
    result = run_train(job)
    assert result.ok and result.step == 4
    records = _metrics(result.outputs["run"])
    assert [r["step"] for r in records if "event" in r] == [0, 2]  # the second attempt started at checkpoint 2
    assert [r["step"] for r in records if "event" not in r] == [1, 2, 3, 4]


@pytest.mark.slow
def test_gannotation_on_s3_storage_with_two_workers_and_export(ray_local, data, s3_bucket, tmp_path):
    prefix = f"s3://{s3_bucket}/faces"
    for file in Path(data).rglob("*"):
        if file.is_file():
            storage.upload_file(file, storage.join(prefix, file.relative_to(data).as_posix()))
    result = run_train(_job("gannotation", prefix, f"s3://{s3_bucket}/runs", "anno"))
    run = result.outputs["run"]
    assert result.ok and run == f"s3://{s3_bucket}/runs/anno"
    assert [step for step, _ in list_checkpoints(run)] == [3, 2]
    records = _metrics(run)
    assert [r["step"] for r in records if "event" not in r] == [1, 2, 3]
    assert {"d_adv", "g_adv", "g_pixel", "g_cycle", "g_triple", "g_tv"} <= set(records[-1])
    assert storage.list_uris(f"{run}/tensorboard") and storage.exists(f"{run}/samples/step_00000003.png")
    local_model = tmp_path / "run_model.pt"
    storage.download_file(result.outputs["model"], local_model)
    _check_model_renders(local_model, "gannotation")
    exported = tmp_path / "model.pt"
    cli = CliRunner().invoke(main, ["export", run, "--out", str(exported)])
    assert cli.exit_code == 0, cli.output
    assert f"exported the generator of {run} at step 3" in cli.output
    _check_model_renders(exported, "gannotation")


def test_bad_data_fails_before_starting_ray(tmp_path):
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "imgs" / "a.jpg")
    with pytest.raises(JobError, match="train x: .*no AU labels"):
        run_train(TrainJob(family="ganimation", data=str(tmp_path), out=str(tmp_path / "runs"), name="x"))


def test_export_of_a_run_without_checkpoints_says_so(tmp_path):
    result = CliRunner().invoke(main, ["export", str(tmp_path), "--out", str(tmp_path / "model.pt")])
    assert result.exit_code == 1 and "no checkpoints (checkpoint_<step>/ with state.pt and job.json)" in result.output


def test_train_command_dry_run_and_flags(tmp_path, data):
    result = CliRunner().invoke(main, ["train", "--family", "gannotation", "--data", data, "--out", str(tmp_path),
                                       "--name", "r", "--size", "64", "--conv-dim", "8", "--res-blocks", "1",
                                       "--workers", "2", "--batch-size", "6", "--adversarial", "wgan-gp",
                                       "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "adversarial: wgan-gp" in result.output and "size: 64" in result.output
    assert "wgan-gp, 4 critic step(s) per generator step" in result.output
    assert "global batch 6 over 2 worker(s)" in result.output


# ---------------------------------------------------------------------------------------------------------------
# Starting the generator from a model (`init`: fine-tuning)


def _tiny_model(path, family="ganimation", conv_dim=8):
    """A ganbatch checkpoint of an untrained tiny generator, as `init` would take it."""
    from ganbatch.families import get_family
    from ganbatch.models.checkpoint import save_generator

    family = get_family(family)
    generator = family.generator_cls(conv_dim=conv_dim, repeat_num=1, options=family.training_options)
    save_generator(generator, path, {"image_size": 64})
    return path


@pytest.mark.slow
def test_a_run_with_init_starts_from_the_models_weights_and_its_rerun_with_more_steps_resumes_without_it(
        ray_local, data, tmp_path, capfd):
    """`init` seeds the generator of a new run; rerunning the finished run with more steps resumes it from its last
    checkpoint (with its metrics and model going on), whatever `init` now says (here: a file that is gone)."""
    torch.manual_seed(123)  # other weights than the ones the job's seed draws
    base = str(_tiny_model(tmp_path / "base.pt"))
    tiny_steps = {"optimizer": {"lr_g": 1e-12, "lr_d": 1e-12}, "steps": 1, "checkpoint_every": 1,
                  "execution": {"workers": 1}}
    job = _job("ganimation", data, tmp_path, "tuned", init=base, **tiny_steps)
    tuned = run_train(job)
    assert tuned.ok
    weights = {name: _generator_weights(path) for name, path in (("base", base), ("tuned", tuned.outputs["model"]))}
    # what the job's seed draws when nothing is loaded (as a worker builds it; no second run on Ray needed)
    weights["fresh"] = _flat({"generator": build_state(job, torch.device("cpu")).nets.generator.state_dict()},
                             "generator")
    assert float((weights["tuned"] - weights["base"]).abs().max()) < 1e-6  # one step at lr 1e-12: the base itself
    assert float((weights["fresh"] - weights["base"]).abs().mean()) > 1e-2  # the seed's initial weights are not
    assert load_generator(tuned.outputs["model"])[1].config["training"]["init"] == base
    saved = json.loads(storage.read_bytes(f"{tuned.outputs['run']}/checkpoint_00000001/job.json"))
    capfd.readouterr()
    resumed = run_train(TrainJob.model_validate({**saved, "steps": 2, "init": str(tmp_path / "gone.pt")}))
    assert "resuming from step 1" in capfd.readouterr().err
    assert resumed.ok and resumed.start_step == 1 and resumed.step == 2  # the run's checkpoint, not the model
    records = _metrics(resumed.outputs["run"])
    assert [(r["step"], r["resumed"]) for r in records if "event" in r] == [(0, False), (1, True)]
    assert [r["step"] for r in records if "event" not in r] == [1, 2]
    assert load_generator(resumed.outputs["model"])[1].config["training"]["step"] == 2


def _generator_weights(path):
    return _flat({"generator": load_generator(path)[0].state_dict()}, "generator")


def test_an_init_model_that_does_not_fit_the_job_fails_in_one_line_before_ray(tmp_path, data):
    model = _tiny_model(tmp_path / "narrow.pt", conv_dim=8)
    job = _job("ganimation", data, tmp_path / "runs", "wide", init=str(model), network={"conv_dim": 16})
    with pytest.raises(JobError, match=r"init .*narrow.pt: a generator that does not fit the job: conv_dim 8 "
                                       r"\(the job: 16\)$"):
        run_train(job)
    other_family = _job("gannotation", data, tmp_path / "runs", "other", init=str(model))
    with pytest.raises(JobError, match=r"family ganimation \(the job: gannotation\)"):
        run_train(other_family)
    with pytest.raises(JobError, match=r"init .*missing.pt: .*not found"):
        run_train(_job("ganimation", data, tmp_path / "runs", "gone", init=str(tmp_path / "missing.pt")))


def test_train_dry_run_checks_and_shows_init(tmp_path, data):
    model = _tiny_model(tmp_path / "base.pt")
    flags = ["train", "--family", "ganimation", "--data", data, "--out", str(tmp_path), "--name", "r", "--size", "64",
             "--conv-dim", "8", "--res-blocks", "1", "--dry-run"]
    result = CliRunner().invoke(main, [*flags, "--init", str(model)])
    assert result.exit_code == 0, result.output
    assert f"init: {model}" in result.output and f"generator: starts from {model}" in result.output
    wrong = CliRunner().invoke(main, [*flags[:-3], "--conv-dim", "16", "--res-blocks", "1", "--dry-run",
                                      "--init", str(model)])
    assert wrong.exit_code == 1 and "conv_dim 8 (the job: 16)" in wrong.output and "Traceback" not in wrong.output


def test_ray_trains_controller_polls_often_unless_the_user_says_otherwise(monkeypatch):
    """Ray Train's 2 s default poll cost a short run about 5 s; the driver's value reaches the controller."""
    from ganbatch.train.run import CONTROLLER_POLL_ENV, CONTROLLER_POLL_SECONDS, _controller_poll_default

    monkeypatch.delenv(CONTROLLER_POLL_ENV, raising=False)
    with _controller_poll_default():
        assert os.environ[CONTROLLER_POLL_ENV] == CONTROLLER_POLL_SECONDS
    assert CONTROLLER_POLL_ENV not in os.environ  # only for the fit
    monkeypatch.setenv(CONTROLLER_POLL_ENV, "3")
    with _controller_poll_default():
        assert os.environ[CONTROLLER_POLL_ENV] == "3"
    assert os.environ[CONTROLLER_POLL_ENV] == "3"
