"""The training loop each Ray Train worker runs: resume, train to the job's step count, log, sample, checkpoint.

Per generator step: `critic_steps` critic updates, each on its own global batch, then one generator update on the
last of those batches (as GANimation's trainer does). Worker 0 writes the run's files; every worker calls
`ray.train.report` at each checkpoint (Ray Train's barrier), worker 0 with the checkpoint folder.
"""
import tempfile
from pathlib import Path

import ray.train
import ray.train.torch
import torch

from ganbatch.jobs.train import TrainJob
from ganbatch.families import get_family
from ganbatch.train.batches import BatchMaker
from ganbatch.train.checkpoints import checkpoint_dir_name, checkpoint_names
from ganbatch.train.data import TrainingData, local_images_root
from ganbatch.train.distributed import broadcast_module, mean_over_workers
from ganbatch.train.monitor import MODEL_FILE, RunFiles, RunMonitor, console
from ganbatch.train.preview import PREVIEW_COLUMNS, PREVIEW_FACES, sample_grid
from ganbatch.train.state import (TrainState, build_state, export_generator, initial_generator_weights, resume_state,
                                  save_state)



class InjectedFault(RuntimeError):
    """Raised by `execution.fail_at_step` (fault injection for tests)."""


class _Accumulator:
    """Sums of loss terms between two log lines, kept as tensors on the device (no per-step synchronisation)."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, prefix: str, terms: dict[str, torch.Tensor]) -> None:
        """Add one step's terms under `prefix_name` keys."""
        for name, value in terms.items():
            key = f"{prefix}_{name}"
            self.sums[key] = self.sums[key] + value.float() if key in self.sums else value.float()
            self.counts[key] = self.counts.get(key, 0) + 1

    def means(self) -> dict[str, float]:
        """The mean of each term since the last call, as floats; starts a new interval."""
        means = {key: float(total) / self.counts[key] for key, total in self.sums.items()}
        self.sums.clear()
        self.counts.clear()
        return means


def _restore(state: TrainState, job: TrainJob, run_uri: str) -> bool:
    """Load Ray Train's latest checkpoint into state (an earlier one when it is unreadable: `resume_state`), if
    there is one; returns whether there was."""
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return False
    with checkpoint.as_directory() as folder:
        resume_state(state, job, Path(folder), run_uri, report=console, latest_name=Path(checkpoint.path).name)
    return True


def _checkpoint(state: TrainState, job: TrainJob, files: RunFiles | None, metrics: dict,
                taken: frozenset[str]) -> None:
    """Report a checkpoint to Ray Train (all workers), then refresh OUT/NAME/model.pt (worker 0); `taken`: the
    checkpoint folder names in the run when this attempt started (see checkpoint_dir_name)."""
    name = checkpoint_dir_name(state.step, taken)
    if files is None:
        ray.train.report(metrics, checkpoint=None, checkpoint_dir_name=name)
        return
    with tempfile.TemporaryDirectory(prefix="ganbatch-ckpt-") as folder:
        save_state(state, Path(folder), job)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder), checkpoint_dir_name=name)
    export_generator(state, files.path(MODEL_FILE), job, files.uri)
    files.publish(MODEL_FILE)


def train_worker(config: dict) -> None:
    """Ray Train's train_loop_per_worker: config holds "job" (TrainJob data), "data" (TrainingData), "run" (URI) and
    "init" (where the model the generator starts from is: `state.init_location`)."""
    job = TrainJob.model_validate(config["job"])
    data: TrainingData = config["data"]
    run_uri: str = config["run"]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(job.execution.threads_per_worker or max(1, int(job.execution.cpus_per_worker)))
    device = ray.train.torch.get_device()
    objective = job.resolved_objective()
    family = get_family(job.family)

    state = build_state(job, device)
    resumed = _restore(state, job, run_uri)
    taken = checkpoint_names(run_uri)  # before this attempt writes any: the same on every worker
    if job.init and not resumed:
        state.nets.generator.load_state_dict(initial_generator_weights(job, config["init"]))
    broadcast_module(state.nets.generator)
    broadcast_module(state.nets.critic)
    start_step = state.step
    batches = BatchMaker(data, local_images_root(data), family, job.network.size, seed=job.seed,
                         global_batch=job.batch_size, critic_steps=objective.critic_steps, rank=rank,
                         world_size=world, flip=job.augment.flip, jitter=job.augment.jitter, **objective.sampling())
    files = RunFiles(run_uri) if rank == 0 else None
    monitor = None
    if files is not None:
        console(f"[{job.name}] {'resuming from step' if resumed else 'starting at step'} {start_step} of "
                f"{job.steps} on {world} worker(s) ({device}, {state.trainer.precision}); {data.describe()}")
        monitor = RunMonitor(files, job.name, start_step, job.steps,
                             {"workers": world, "resumed": resumed, "device": str(device),
                              "precision": state.trainer.precision})
        faces = batches.preview_faces(PREVIEW_FACES)
        targets = family.preview_targets(batches, PREVIEW_COLUMNS)
    sums = _Accumulator()
    images_per_step = objective.critic_steps * job.batch_size
    logged_step = start_step
    try:
        while state.step < job.steps:
            for iteration in range(objective.critic_steps):
                batch = batches.batch(state.step, iteration).to(device)
                sums.add("d", state.trainer.critic_step(batch))
            sums.add("g", state.trainer.generator_step(batch))
            state.advance()
            step = state.step
            if job.execution.fail_at_step == step and not resumed and rank == world - 1:
                raise InjectedFault(f"injected fault at step {step} (execution.fail_at_step)")
            final = step == job.steps
            record = {}
            if step % job.log_every == 0 or final:
                values = {**mean_over_workers(sums.means(), device), **state.learning_rates()}
                if monitor is not None:
                    record = monitor.log(step, values, images_per_step * (step - logged_step))
                logged_step = step
            if monitor is not None and (step % job.sample_every == 0 or final):
                monitor.samples(step, sample_grid(state.nets.generator, faces, targets, device=device))
            if step % job.checkpoint_every == 0 or final:
                _checkpoint(state, job, files, {"step": step, **record}, taken)
    finally:
        if monitor is not None:
            monitor.close()
            files.close()
