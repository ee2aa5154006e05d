"""`kind: train` jobs on the driver: check the data, plan, start Ray Train's TorchTrainer, report the outcome.

The run lives at OUT/NAME: Ray Train's storage (`RunConfig(storage_path=OUT, name=NAME)`) holds the checkpoints
and its own run snapshot, next to the files the workers write (`monitor`). Re-running a job with the same OUT and
NAME makes Ray Train find the snapshot and hand the latest checkpoint to the workers, which resume from it and train
on to `steps`; a finished run asked for more steps continues. Worker-group failures restart from the latest
checkpoint up to `execution.max_failures` times.

Errors follow the job contract (`ganbatch.errors`): what the user can fix (unreadable data, a resume that does not
fit, storage) raises TrainError before Ray starts; a run that started and failed returns `ok=False` with the reason
and the step it stopped at (the CLI turns it into JobFailed).

Workers form a torch.distributed process group through Ray Train's TorchConfig default: gloo for CPU workers,
nccl for GPU workers (`execution.gpus_per_worker`). For S3 storage Ray Train writes through pyarrow; when
AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL is set (MinIO, moto, ...), an explicit
`pyarrow.fs.S3FileSystem(endpoint_override=...)` is passed so that every pyarrow version uses it.
"""
import contextlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field

from ganbatch.io import storage
from ganbatch.cluster import cluster_gpus, import_ray, ray_session
from ganbatch.errors import ExportError, JobError, one_line
from ganbatch.export import write_generator
from ganbatch.jobs.train import TrainJob
from ganbatch.families import get_family
from ganbatch.train.data import DataError, TrainingData, find_training_data
from ganbatch.train.export import run_generator
from ganbatch.train.checkpoints import latest_checkpoint, usable_checkpoint
from ganbatch.train.monitor import METRICS_FILE, MODEL_FILE, progress_line, start_line
from ganbatch.train.state import (JOB_FILE, InitError, ResumeError, check_resumable, init_location,
                                  initial_generator_weights, parse_job, shape_settings)

log = logging.getLogger(__name__)

# Ray Train's controller polls its workers this often (its default is 2 s). Every state change of a run (scheduled,
# started, finished) waits for a poll, so the 2 s default cost a short run about 5 s of its start and end; each poll
# is one small call per worker. Ray Train passes the driver's value on to its controller; a user's own wins.
CONTROLLER_POLL_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
CONTROLLER_POLL_SECONDS = "0.5"


class WorkerCountError(ValueError):
    """The global batch does not split evenly over the workers chosen for the cluster."""


@dataclass
class TrainResult:
    """The outcome of run_train: outputs {"model": OUT/NAME/model.pt, "run": OUT/NAME}; start_step is where this
    call began (0 for a new run), step where the run stands now; error says why it failed when not ok."""

    ok: bool
    outputs: dict[str, str]
    start_step: int = 0
    step: int = 0
    error: str | None = None
    metrics: dict = field(default_factory=dict)


def run_uri(job: TrainJob) -> str:
    """OUT/NAME, with a local OUT made absolute (Ray Train needs absolute local storage paths)."""
    return storage.join(storage.absolute(job.out), job.name)


def _outputs(job: TrainJob) -> dict[str, str]:
    run = run_uri(job)
    return {"model": storage.join(run, MODEL_FILE), "run": run}


def _workers(job: TrainJob) -> int:
    if job.execution.workers:
        return job.execution.workers
    if job.execution.gpus_per_worker > 0:
        return max(1, int(cluster_gpus() // job.execution.gpus_per_worker))
    return 1


def _storage(job: TrainJob) -> tuple[str, object]:
    """(storage_path, storage_filesystem or None) for Ray Train's RunConfig."""
    out = os.path.dirname(run_uri(job))
    return storage.pyarrow_filesystem(out) if storage.is_s3(out) else (out, None)


def plan_train(job: TrainJob) -> str:
    """What the job would do: data, networks, objective, schedule, workers and storage."""
    objective = job.resolved_objective()
    optimizer = job.resolved_optimizer()
    family = get_family(job.family)
    workers = job.execution.workers or "1 (or one per GPU)"
    net = job.network
    lines = [
        f"train {job.family} on {job.data} -> {run_uri(job)} (checkpoints, metrics.jsonl, tensorboard/, samples/, "
        f"{MODEL_FILE})",
        f"networks: {net.size}px, generator conv_dim {net.conv_dim} x {net.res_blocks} residual blocks, critic "
        f"conv_dim {net.critic_width()} x {net.critic_layers()} stride-2 layers",
        f"objective: {objective.adversarial}, {objective.critic_steps} critic step(s) per generator step, "
        + ", ".join(f"lambda_{term} {getattr(objective, 'lambda_' + term):g}" for term in family.loss_terms
                    if term != "gp" or objective.adversarial == "wgan-gp")
        + objective.plan_suffix(),
        *family.plan_notes,
        f"adam: lr G {optimizer.lr_g:g} / D {optimizer.lr_d:g}, betas ({optimizer.beta1:g}, {optimizer.beta2:g}), "
        f"constant to step {optimizer.decay_start}, then linear to 0",
        f"{job.steps} steps, global batch {job.batch_size} over {workers} worker(s), checkpoint every "
        f"{job.checkpoint_every} (keep {job.keep_checkpoints}), log every {job.log_every}, samples every "
        f"{job.sample_every}; re-running the same name resumes",
    ]
    return "\n".join(lines + _checks(job))


class TrainError(JobError):
    """A train job that cannot start, found by the dry run or the run itself: its data, its resume or its
    storage."""


def _checks(job: TrainJob) -> list[str]:
    """The deep part of the plan: the data read, workers and precision resolved, the resume checked and the time
    estimated from a measured step (see `probe`). Raises TrainError where the run would fail."""
    try:
        data = find_training_data(job.data, job.family)
        latest, skipped = usable_checkpoint(run_uri(job))
        changes = []
        if latest:
            job_file = storage.join(latest[1], JOB_FILE)
            saved = parse_job(storage.read_bytes(job_file).decode(), job_file)
            _check_resume(saved, job, latest[1], warn=False)
            changes = job_changes(saved, job)
        elif job.init:
            initial_generator_weights(job)
    except (DataError, ResumeError, InitError, ExportError, storage.StorageError) as error:
        raise TrainError(f"train {job.name}: {error}") from None
    lines = [f"data: {data.describe()}"]
    start = latest[0] if latest else 0
    if job.init and not latest:
        lines.append(f"generator: starts from {job.init} (its family and network fit the job); the critic: fresh")
    if latest:
        lines.append(f"resumes from step {start}" + (f" with changed settings: {'; '.join(changes)}" if changes else
                                                     " with the same settings")
                     + (f" (skipped the newer {'; '.join(skipped)})" if skipped else ""))
    gpu_workers = job.execution.gpus_per_worker > 0 and not job.execution.workers  # known once connected
    workers = 1 if gpu_workers else _workers(job)
    where = job.execution.address or os.environ.get("RAY_ADDRESS") or "a local Ray started for the run"
    lines.append(f"workers: {'one per GPU of the cluster' if gpu_workers else workers} on {where}, "
                 f"{job.execution.cpus_per_worker:g} CPU(s) and {job.execution.gpus_per_worker:g} GPU(s) each")
    left = max(job.steps - start, 0)
    if left and not storage.is_s3(data.root) and not job.execution.gpus_per_worker:
        from ganbatch.progress import format_duration
        from ganbatch.train.probe import step_seconds

        seconds, precision = step_seconds(job, data, workers)
        lines.append(f"precision: {precision} (on this machine's CPU)")
        lines.append(f"estimate: {format_duration(seconds * left)} for {left} steps ({seconds:.2f} s per step "
                     f"measured here for one worker's {job.batch_size // workers} images; workers on other machines "
                     "run at their own speed)")
    elif left:
        lines.append("estimate: not measured (data on S3 or GPU workers; the probe runs on local CPU data only)")
    return lines


def _flat(data, prefix: str = "") -> dict:
    """{dotted key: value} of nested dicts."""
    if not isinstance(data, dict):
        return {prefix: data}
    flat = {}
    for key, value in data.items():
        flat.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _settings(job: TrainJob) -> dict:
    """What a resumed run should keep: networks, objective, optimiser, data and batch (steps, intervals, name and
    execution may change freely)."""
    return {**shape_settings(job), "objective": job.resolved_objective().model_dump(mode="json"),
            "optimizer": job.resolved_optimizer().model_dump(mode="json"),
            "augment": job.augment.model_dump(mode="json"), "batch_size": job.batch_size, "data": job.data,
            "seed": job.seed}


def job_changes(saved: TrainJob, job: TrainJob) -> list[str]:
    """`key: old -> new` for each setting of `_settings` that differs between a run's saved job and `job`."""
    before, after = _flat(_settings(saved)), _flat(_settings(job))
    if saved.optimizer.decay_start is None and job.optimizer.decay_start is None:
        del before["optimizer.decay_start"]  # it follows `steps`, which a resume may change
        del after["optimizer.decay_start"]
    return [f"{key}: {before.get(key)} -> {after.get(key)}" for key in dict.fromkeys([*before, *after])
            if before.get(key) != after.get(key)]


def _check_resume(saved: TrainJob, job: TrainJob, where: str, *, warn: bool = True) -> None:
    """ResumeError naming what changed when the networks differ; a warning naming what changed otherwise (`warn`)."""
    changes = job_changes(saved, job)
    shape = [change for change in changes if change.split(":")[0].split(".")[0] in ("family", "network")]
    if shape:
        raise ResumeError(f"{where}: the run's networks differ from this job's ({'; '.join(shape)}); use another "
                          "--name, or the run's settings")
    check_resumable(saved, job, where)
    if changes and warn:
        log.warning(f"train {job.name}: resuming with changed settings: {'; '.join(changes)}")


def _failed(job: TrainJob, outputs: dict, error: Exception, start: int = 0, step: int | None = None) -> TrainResult:
    reason = one_line(error)
    log.error(f"train {job.name}: failed: {reason}")
    return TrainResult(ok=False, outputs=outputs, start_step=start, step=start if step is None else step,
                       error=reason)


def _prepare(job: TrainJob, run: str) -> tuple[TrainingData, int]:
    """The indexed data set and the step the run stands at (0 for a new run); checks a run to resume fits job."""
    data = find_training_data(job.data, job.family)
    latest, skipped = usable_checkpoint(run)
    if latest:
        job_file = storage.join(latest[1], JOB_FILE)
        _check_resume(parse_job(storage.read_bytes(job_file).decode(), job_file), job, latest[1])
    elif skipped:
        raise ResumeError("no readable checkpoint to resume from: " + "; ".join(skipped))
    log.info(f"train {job.name}: {data.describe()}")
    log.info(_resume_line(job, run, latest, skipped))
    if job.init and not latest:
        initial_generator_weights(job)  # a model that does not fit fails here, in one line, not in every worker
        log.info(f"train {job.name}: the generator starts from {job.init}; the critic starts fresh")
    return data, latest[0] if latest else 0


def _resume_line(job: TrainJob, run: str, latest: tuple[int, str] | None, skipped: list[str]) -> str:
    """'resuming from checkpoint_00000010 (step 10)', with the newer checkpoints skipped and why."""
    if not latest:
        return f"train {job.name}: new run at {run}"
    name = latest[1].rstrip("/").rsplit("/", 1)[-1]
    newer = f"; skipped the newer {'; '.join(skipped)}" if skipped else ""
    return f"train {job.name}: resuming from {name} (step {latest[0]}){newer}"


def run_train(job: TrainJob) -> TrainResult:
    """Train (or resume) the run OUT/NAME to job.steps on Ray Train; see the module doc."""
    outputs = _outputs(job)
    run = outputs["run"]
    try:
        data, start = _prepare(job, run)
        if start >= job.steps:
            log.info(f"train {job.name}: already at step {start} (steps: {job.steps}); nothing to train")
            if not storage.exists(outputs["model"]):
                generator, info, _ = run_generator(run)
                write_generator(generator, info, outputs["model"], format="pt")
            return TrainResult(ok=True, outputs=outputs, start_step=start, step=start)
    except (DataError, ResumeError, InitError, ExportError, storage.StorageError) as error:
        raise TrainError(f"train {job.name}: {one_line(error)}") from None
    import_ray()
    import ray.train

    try:
        result = _fit(job, data, run)
    except (WorkerCountError, ray.train.TrainingFailedError) as error:
        stopped = latest_checkpoint(run)
        return _failed(job, outputs, error, start, stopped[0] if stopped else start)
    metrics = dict(result.metrics or {})
    return TrainResult(ok=True, outputs=outputs, start_step=start, step=int(metrics.get("step", start)),
                       metrics=metrics)


def _fit(job: TrainJob, data, run: str):
    """Run the TorchTrainer (inside a Ray session) and return its Result; raises TrainingFailedError when the
    workers failed more often than max_failures allows."""
    import ray.train
    from ray.train.torch import TorchTrainer

    from ganbatch.train.loop import train_worker

    execution = job.execution
    with ray_session(execution.address):
        workers = _workers(job)
        if job.batch_size % workers:
            raise WorkerCountError(f"batch_size {job.batch_size} does not split evenly over the {workers} workers "
                                   "of this cluster's GPUs; set execution.workers")
        storage_path, filesystem = _storage(job)
        resources = {"CPU": execution.cpus_per_worker}
        if execution.gpus_per_worker:
            resources["GPU"] = execution.gpus_per_worker
        trainer = TorchTrainer(
            train_worker,
            train_loop_config={"job": job.model_dump(mode="json"), "data": data, "run": run,
                               "init": init_location(job)},
            scaling_config=ray.train.ScalingConfig(num_workers=workers, use_gpu=execution.gpus_per_worker > 0,
                                                   resources_per_worker=resources),
            run_config=ray.train.RunConfig(
                name=job.name, storage_path=storage_path, storage_filesystem=filesystem,
                checkpoint_config=ray.train.CheckpointConfig(num_to_keep=job.keep_checkpoints),
                failure_config=ray.train.FailureConfig(max_failures=execution.max_failures),
            ),
        )
        with _MetricsFollower(storage.join(run, METRICS_FILE), job), _controller_poll_default():
            return _fit_interruptibly(trainer)


@contextlib.contextmanager
def _controller_poll_default():
    """CONTROLLER_POLL_SECONDS as the controller's poll interval for one fit, unless the user set one."""
    if CONTROLLER_POLL_ENV in os.environ:
        yield
        return
    os.environ[CONTROLLER_POLL_ENV] = CONTROLLER_POLL_SECONDS
    try:
        yield
    finally:
        os.environ.pop(CONTROLLER_POLL_ENV, None)


def _fit_interruptibly(trainer):
    """trainer.fit() in a helper thread, so that Ctrl-C reaches this (main) thread as a KeyboardInterrupt at once.

    In the main thread, Ray Train installs its own SIGINT handler, whose graceful abort ends the process with exit
    status 1 and no word; here the interrupt propagates instead, and the Ray session's shutdown stops the run (its
    checkpoints are complete or absent, so re-running the same command resumes).
    """
    outcome = {}

    def fit():
        try:
            outcome["result"] = trainer.fit()
        except BaseException as error:  # noqa: BLE001 - re-raised in the calling thread
            outcome["error"] = error

    thread = threading.Thread(target=fit, name="ganbatch-train-fit", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


class _MetricsFollower(threading.Thread):
    """Logs the run's progress on the driver, from the metrics.jsonl that worker 0 writes (so that the lines carry
    no Ray worker prefix and show even when worker output is not forwarded): one line per log_every steps."""

    def __init__(self, uri: str, job: TrainJob, interval: float = 1.0):
        super().__init__(name="ganbatch-train-progress", daemon=True)
        self.uri, self.job, self.interval = uri, job, interval
        self._stop_event = threading.Event()
        self._seen = self._skip = None  # lines already shown / at start (an earlier attempt's)
        self._last = None

    def __enter__(self):
        self._skip = len(self._lines())
        self._seen = self._skip
        self.start()
        return self

    def __exit__(self, *exc):
        self._stop_event.set()
        self.join(timeout=5)
        self._show()

    def _lines(self) -> list[str]:
        try:
            if not storage.exists(self.uri):
                return []
            return [line for line in storage.read_bytes(self.uri).decode().splitlines() if line.strip()]
        except (storage.StorageError, OSError):
            return []

    def _show(self) -> None:
        lines = self._lines()
        if len(lines) < self._seen:  # a resumed attempt rewrote the file without the lines past its checkpoint
            self._seen = len(lines)
        for line in lines[self._seen:]:
            try:
                record = json.loads(line)
            except ValueError:
                break  # a line being written; read again next time
            self._seen += 1
            if record.get("event") == "start":
                log.info(start_line(self.job.name, record, self.job.steps))
                self._last = record
            elif "step" in record:
                log.info(progress_line(self.job.name, record, self.job.steps, self._last))
                self._last = record

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self._show()
