"""Everything a training run resumes from, and the files it is kept in.

A checkpoint folder (`OUT/NAME/checkpoint_<step>/`, managed by Ray Train) holds `state.pt` (both networks, both
Adam optimisers and learning-rate schedules, the GradScaler and the step), `job.json`, the job that wrote it (a
resumed run must have the same family and `network` settings, and `ganbatch export` rebuilds the generator's
provenance from it), and `complete.json`, written last: the SHA-256 of the other two. A folder whose files do not
match it (an upload or a write cut short, a file changed since) is never taken for complete; one without it (written
before markers existed) is loaded as it is. On resume, `resume_state` loads Ray Train's latest checkpoint and, when
that one cannot be read, reports why and falls back to the run's previous complete checkpoint. Random draws need no saved state: every draw is a
function of the seed and the sample position (see `batches`), and initial weights of the seed, except for a job that
starts its generator from a model (`job.init`, `initial_generator_weights`).
"""
import json
import pickle
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ganbatch import __version__
from ganbatch.families import Networks, get_family
from ganbatch.io import storage
from ganbatch.jobs.train import TrainJob
from ganbatch.models.checkpoint import save_generator
from ganbatch.train.checkpoints import (
    COMPLETE_FILE,
    JOB_FILE,
    STATE_FILE,
    IncompleteCheckpointError,
    ResumeError,
    checkpoint_order,
    download_checkpoint,
    file_sha256,
    list_checkpoints,
    verify_checkpoint,
)
from ganbatch.train.precision import resolve_precision
from ganbatch.train.steps import Trainer, linear_decay, make_optimizer

STATE_FORMAT = "ganbatch-train"
STATE_VERSION = 1


class InitError(ValueError):
    """The model a job starts its generator from (`init`) cannot be read or does not fit the job's networks."""


@dataclass
class TrainState:
    """The live training state of one worker."""

    trainer: Trainer
    generator_schedule: torch.optim.lr_scheduler.LambdaLR
    critic_schedule: torch.optim.lr_scheduler.LambdaLR
    step: int = 0

    @property
    def nets(self) -> Networks:
        """The generator/critic pair."""
        return self.trainer.nets

    def advance(self) -> None:
        """Count one finished generator step and move both learning-rate schedules along."""
        self.step += 1
        self.generator_schedule.step()
        self.critic_schedule.step()

    def learning_rates(self) -> dict[str, float]:
        """Current learning rates of the generator and the critic."""
        return {"lr_g": self.generator_schedule.get_last_lr()[0], "lr_d": self.critic_schedule.get_last_lr()[0]}


def shape_settings(job: TrainJob) -> dict:
    """What fixes the networks' shapes: a checkpoint can only be resumed by a job with the same settings."""
    return {"family": job.family, "network": job.network.resolved().model_dump()}


def build_state(job: TrainJob, device) -> TrainState:
    """Fresh networks (initial weights drawn from the job's seed), optimisers and schedules on device."""
    family = get_family(job.family)
    net = job.network
    torch.manual_seed(job.seed)
    generator = family.generator_cls(conv_dim=net.conv_dim, repeat_num=net.res_blocks,
                                     options=family.training_options).to(device)
    critic = family.discriminator_cls(image_size=net.size, conv_dim=net.critic_width(),
                                      repeat_num=net.critic_layers()).to(device)
    settings = job.resolved_optimizer()
    generator_optimizer = make_optimizer(generator, settings.lr_g, settings)
    critic_optimizer = make_optimizer(critic, settings.lr_d, settings)
    factor = linear_decay(job.steps, settings.decay_start)
    trainer = Trainer(Networks(family, generator, critic), job.resolved_objective(), settings,
                      critic_optimizer=critic_optimizer, generator_optimizer=generator_optimizer,
                      precision=resolve_precision(job.execution.precision, device), device=device)
    return TrainState(trainer=trainer,
                      generator_schedule=torch.optim.lr_scheduler.LambdaLR(generator_optimizer, factor),
                      critic_schedule=torch.optim.lr_scheduler.LambdaLR(critic_optimizer, factor))


def init_location(job: TrainJob) -> str | None:
    """Where the model `job.init` names is, as a worker in another folder or on another machine can read it: the
    bundled file for a demo name, a local path made absolute, an s3:// URI as it is."""
    from ganbatch.models.locate import resolve_model_uri

    return storage.absolute(resolve_model_uri(job.init)) if job.init else None


def initial_generator_weights(job: TrainJob, location: str | None = None) -> dict[str, torch.Tensor]:
    """The state_dict of the model `job.init` names (read from `location`, `init_location`'s answer, when given),
    for the job's fresh generator; InitError (one line) when it cannot be read or differs from the job's generator
    in family, image size, width, residual blocks or trunk."""
    from ganbatch.models.checkpoint import CheckpointError
    from ganbatch.models.locate import open_model

    try:
        generator, info = open_model(location or job.init)
    except CheckpointError as error:
        raise InitError(f"init {job.init}: {error}") from None
    family = get_family(job.family)
    net = job.network.resolved()
    options = family.training_options or family.generator_cls.default_options
    wanted = {"family": job.family, "image size": net.size, "conv_dim": net.conv_dim, "res_blocks": net.res_blocks,
              "trunk": options.to_dict()}
    found = {"family": info.family, "image size": info.image_size or family.default_image_size,
             "conv_dim": info.hparams.get("conv_dim"), "res_blocks": info.hparams.get("repeat_num"),
             "trunk": generator.options.to_dict()}
    differences = [f"{key} {found[key]} (the job: {wanted[key]})" for key in wanted if found[key] != wanted[key]]
    if differences:
        raise InitError(f"init {job.init}: a generator that does not fit the job: " + ", ".join(differences))
    return generator.state_dict()


def save_state(state: TrainState, folder: Path, job: TrainJob) -> None:
    """Write folder/state.pt and folder/job.json, then folder/complete.json (their digests) last."""
    _write_state(state, folder, job)
    folder = Path(folder)
    marker = {name: file_sha256(folder / name) for name in (STATE_FILE, JOB_FILE)}
    (folder / COMPLETE_FILE).write_text(json.dumps({"sha256": marker, "step": state.step}))


def _write_state(state: TrainState, folder: Path, job: TrainJob) -> None:
    trainer = state.trainer
    (Path(folder) / JOB_FILE).write_text(json.dumps(job.model_dump(mode="json"), indent=1))
    torch.save({
        "format": STATE_FORMAT, "version": STATE_VERSION, "step": state.step,
        "generator": trainer.nets.generator.state_dict(), "critic": trainer.nets.critic.state_dict(),
        "generator_optimizer": trainer.generator_optimizer.state_dict(),
        "critic_optimizer": trainer.critic_optimizer.state_dict(),
        "generator_schedule": state.generator_schedule.state_dict(),
        "critic_schedule": state.critic_schedule.state_dict(),
        "scaler": trainer.scaler.state_dict(),
    }, Path(folder) / STATE_FILE)


def read_state(path: Path, map_location="cpu") -> dict:
    """The content of a state.pt (tensors only, loaded with weights_only=True); ResumeError if it is not one,
    IncompleteCheckpointError if it cannot be read (cut short, corrupt)."""
    try:
        content = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, ValueError, OSError, pickle.UnpicklingError) as error:
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        raise IncompleteCheckpointError(f"{path}: cannot be read ({reason})") from None
    if not isinstance(content, dict) or content.get("format") != STATE_FORMAT:
        raise ResumeError(f"{path}: not a ganbatch training checkpoint")
    if content.get("version") != STATE_VERSION:
        raise ResumeError(f"{path}: training checkpoint version {content.get('version')!r} is not supported")
    return content


def parse_job(text: str, where: str) -> TrainJob:
    """The job of a checkpoint's job.json text."""
    try:
        return TrainJob.from_saved_json(text)
    except ValueError as error:
        raise ResumeError(f"{where}: not a valid training job ({error})") from None


def check_resumable(saved: TrainJob, job: TrainJob, where: str) -> None:
    """ResumeError unless job can continue a run written by `saved` (same family and network settings)."""
    if shape_settings(saved) != shape_settings(job):
        raise ResumeError(f"{where}: the run was trained with {shape_settings(saved)}, the job asks for "
                          f"{shape_settings(job)}; use another --name or the run's settings")


def load_state(state: TrainState, folder: Path, job: TrainJob) -> None:
    """Restore state from a checkpoint folder written by save_state; ResumeError when the networks differ,
    IncompleteCheckpointError when the folder is not a complete, readable checkpoint."""
    folder = Path(folder)
    verify_checkpoint(folder)
    check_resumable(parse_job((folder / JOB_FILE).read_text(), str(folder / JOB_FILE)), job, str(folder))
    content = read_state(folder / STATE_FILE, map_location=state.trainer.device)
    trainer = state.trainer
    trainer.nets.generator.load_state_dict(content["generator"])
    trainer.nets.critic.load_state_dict(content["critic"])
    trainer.generator_optimizer.load_state_dict(content["generator_optimizer"])
    trainer.critic_optimizer.load_state_dict(content["critic_optimizer"])
    state.generator_schedule.load_state_dict(content["generator_schedule"])
    state.critic_schedule.load_state_dict(content["critic_schedule"])
    trainer.scaler.load_state_dict(content["scaler"])
    state.step = int(content["step"])


def model_config(job: TrainJob, step: int, run_uri: str) -> dict:
    """The config stored with an exported generator: image size and training provenance."""
    return {
        "image_size": job.network.size,
        "training": {
            "run": run_uri, "step": step, "steps": job.steps, "data": job.data, "seed": job.seed,
            "batch_size": job.batch_size, "workers": job.execution.workers or 1, "init": job.init,
            "network": job.network.resolved().model_dump(), "objective": job.resolved_objective().model_dump(),
            "optimizer": job.resolved_optimizer().model_dump(), "augment": job.augment.model_dump(),
            "ganbatch_version": __version__,
        },
    }


def export_generator(state: TrainState, path: Path, job: TrainJob, run_uri: str) -> None:
    """Write the current generator to path in ganbatch's checkpoint format (`save_generator`)."""
    save_generator(state.nets.generator, path, model_config(job, state.step, run_uri))


def resume_state(state: TrainState, job: TrainJob, latest: Path, run_uri: str,
                 report: Callable[[str], None] = print, latest_name: str | None = None) -> int:
    """Load the newest usable checkpoint into state and return its step: `latest` (the folder Ray Train hands the
    workers), else, when that one is incomplete or unreadable, the run's earlier checkpoints under run_uri, newest
    first (those named below `latest_name`, the latest's folder name in the run, by default latest's own). Each
    one skipped is reported in one line. ResumeError when the networks differ (no fallback: the job
    is wrong, not the file) or no checkpoint can be read."""
    try:
        load_state(state, latest, job)
        return state.step
    except IncompleteCheckpointError as error:
        problems = [str(error)]
        report(f"resume: skipping the latest checkpoint: {error}")
    latest_name = latest_name or Path(latest).name
    for step, uri in list_checkpoints(run_uri):
        if checkpoint_order(uri.rstrip("/").rsplit("/", 1)[-1]) >= checkpoint_order(latest_name):
            continue  # the one that failed, or newer ones Ray Train did not report as complete
        try:
            with tempfile.TemporaryDirectory(prefix="ganbatch-resume-") as folder:
                load_state(state, download_checkpoint(uri, Path(folder)), job)
        except (IncompleteCheckpointError, storage.StorageError) as error:
            problems.append(f"{uri}: {error}")
            report(f"resume: skipping checkpoint {uri}: {error}")
            continue
        report(f"resume: continuing from the earlier complete checkpoint {uri} (step {step})")
        return state.step
    raise ResumeError("no readable checkpoint to resume from: " + "; ".join(problems))
