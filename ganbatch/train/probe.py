"""A short measured probe for `ganbatch train --dry-run`: the seconds one generator step takes here.

It builds the job's networks, optimisers and batches exactly as a worker does (`state.build_state`,
`batches.BatchMaker` on the real data, one worker's share of the global batch) and times one step (its critic
steps and its generator step) after one untimed warm-up step. The figure is for this machine's CPU or GPU with the
job's threads per worker; workers elsewhere run at their own speed.
"""
import time

import torch

from ganbatch.jobs.train import TrainJob
from ganbatch.families import get_family
from ganbatch.train.batches import BatchMaker
from ganbatch.train.data import TrainingData, local_images_root
from ganbatch.train.state import build_state


def step_seconds(job: TrainJob, data: TrainingData, workers: int) -> tuple[float, str]:
    """(seconds per generator step of one worker, the precision used) measured on this machine's CPU."""
    threads = job.execution.threads_per_worker or max(1, int(job.execution.cpus_per_worker))
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        state = build_state(job, torch.device("cpu"))
        objective = job.resolved_objective()
        batches = BatchMaker(data, local_images_root(data), get_family(job.family), job.network.size, seed=job.seed,
                             global_batch=job.batch_size, critic_steps=objective.critic_steps, world_size=workers,
                             flip=job.augment.flip, jitter=job.augment.jitter, **objective.sampling())

        def one_step(step: int) -> None:
            for iteration in range(objective.critic_steps):
                batch = batches.batch(step, iteration)
                state.trainer.critic_step(batch)
            state.trainer.generator_step(batch)

        one_step(0)
        started = time.perf_counter()
        one_step(1)
        return time.perf_counter() - started, state.trainer.precision
    finally:
        torch.set_num_threads(previous)
