"""How big each stage of the animate pipeline is, from the job's execution settings and the cluster's resources.

Defaults that need no tuning:
- generator actors (`workers`): one per GPU when the cluster has GPUs, else one; never more than the items to make;
- each actor asks Ray for its GPU(s), if any, and at most one CPU: a *share* that leaves room for the CPU stages (on
  a 2-CPU machine one actor reserves 1 CPU, two reserve 0.5 each), so that prepare and encode tasks always find room
  next to the generators: no `--workers` the machine allows can deadlock the stream. On a cluster the share also
  leaves that room when a node is lost: the actors of the lost node restart on the others, and the smallest node
  must still hold its even part of all the actors next to one prepare and one encode task;
- a CPU actor's torch threads follow the cores it may actually use (its process's CPU affinity, divided among the
  actors of its node), not its reservation: Ray's CPU counts are for scheduling, the cores are shared anyway;
- prepare and encode tasks ask for half a CPU each (a quarter of the machine on one with under 2 CPUs).

An explicit `cpus_per_worker` is both the actor's reservation and its torch threads (its whole CPUs); when the loss
of the largest node would leave the actors all the CPUs (no room for a prepare or encode task), the plan's `warning`
says so (shown by --dry-run and at the start of the run).
"""
import math
from dataclasses import dataclass
from typing import Optional

from ganbatch.jobs.animate import AnimateExecution

STAGE_TASK_CPUS = 0.5
MIN_GENERATOR_CPUS = 0.05


class ResourceError(ValueError):
    """The stages cannot be placed on the cluster (too many workers, GPUs asked for that it lacks, ...)."""


@dataclass(frozen=True)
class StagePlan:
    """The pipeline's sizes: `workers` generator actors of `generator_cpus` CPUs and `generator_gpus` GPUs each
    (torch `threads` each, None: from the cores the actor may use, shared by `actors_per_node`), prepare and
    encode tasks of `task_cpus` CPUs, and `clips_per_call` clips per generator call."""

    workers: int
    generator_cpus: float
    generator_gpus: float
    threads: Optional[int]
    actors_per_node: int
    task_cpus: float
    clips_per_call: int
    batch_size: int
    warning: Optional[str] = None  # explicit reservations the loss of the largest node would leave no room for

    def describe(self) -> list[str]:
        """The stage structure and each stage's resources, one line per stage (for --dry-run and the log)."""
        threads = (f"{self.threads} torch threads" if self.threads else
                   "torch threads: the cores it may use" + (f" / {self.actors_per_node}"
                                                             if self.actors_per_node > 1 else ""))
        gpus = f" + {self.generator_gpus:g} GPU" if self.generator_gpus else ""
        return [
            f"prepare: CPU tasks of {self.task_cpus:g} CPU (read, decode, crop, per-frame targets)",
            f"generate: {self.workers} actor(s), one model each, {self.generator_cpus:g} CPU{gpus} each, {threads}; "
            f"up to {self.batch_size} frames of {self.clips_per_call} clip(s) per forward pass",
            f"encode: CPU tasks of {self.task_cpus:g} CPU (layout, paste-back, ffmpeg, atomic write or upload)",
            "driver: manifest rows as videos finish, progress, summary",
            *([f"warning: {self.warning}"] if self.warning else []),
        ]


def _loss_warning(workers: int, generator_cpus: float, task_cpus: float, cpus: float, cpu_nodes: int,
                  largest_node_cpus: float) -> Optional[str]:
    """Why explicit reservations would stall the stream once the largest node is lost (None when they would not, or
    on one node, whose loss ends the run anyway): the actors restart on what is left and may hold all of it."""
    left = cpus - largest_node_cpus
    if cpu_nodes < 2 or left - workers * generator_cpus >= 2 * task_cpus - 1e-9:
        return None
    return (f"{workers} workers x {generator_cpus:g} CPUs (set explicitly) cannot survive the loss of the largest node "
            f"({largest_node_cpus:g} CPUs): the {left:g} CPUs left would go to the generator actors, leaving no room "
            f"for the prepare and encode tasks ({task_cpus:g} CPU each), and the run would stop with its items left "
            "failed (execution.stall_seconds); use fewer workers or CPUs per worker, or leave them unset")


def plan_stages(execution: AnimateExecution, *, cpus: float, gpus: float, cpu_nodes: int, node_cpus: float,
                todo: int, frames_per_clip: int, largest_node_cpus: Optional[float] = None) -> StagePlan:
    """The StagePlan for a cluster of `cpus` CPUs (on `cpu_nodes` nodes, the smallest with `node_cpus`, the largest
    with `largest_node_cpus`) and `gpus` GPUs and `todo` items whose shortest clip has `frames_per_clip` frames;
    ResourceError when it cannot be placed (see the module doc); its `warning` names explicit reservations that
    the loss of the largest node would leave no room for."""
    gpu_share = execution.gpus_per_worker if execution.gpus_per_worker is not None else float(gpus > 0)
    if gpu_share > gpus:
        raise ResourceError(f"workers ask for {gpu_share:g} GPUs each, the cluster has {gpus:g}")
    if gpu_share == 0 and (execution.device == "cuda" or execution.precision == "fp16"):
        raise ResourceError(f"device {execution.device} / precision {execution.precision} needs GPU workers; set "
                            f"--gpus-per-worker (the cluster has {gpus:g} GPUs) or use --device cpu and fp32/bf16")
    workers = execution.workers or (max(1, int(gpus // gpu_share)) if gpu_share else 1)
    workers = max(1, min(workers, todo))
    if gpu_share and workers * gpu_share > gpus:
        raise ResourceError(f"{workers} workers x {gpu_share:g} GPUs need {workers * gpu_share:g} GPUs, "
                            f"the cluster has {gpus:g}")
    task_cpus = min(STAGE_TASK_CPUS, cpus / 4)
    room = cpus - 2 * task_cpus  # what the generators may reserve: one prepare and one encode task always fit
    per_surviving_node = math.ceil(workers / max(1, cpu_nodes - 1))  # after one node's loss
    node_room = node_cpus - 2 * task_cpus
    generator_cpus = (execution.cpus_per_worker if execution.cpus_per_worker is not None
                      else min(1.0, room / workers, node_room / per_surviving_node))
    if generator_cpus < MIN_GENERATOR_CPUS or workers * generator_cpus > room + 1e-9:
        most = max(1, math.floor(room / max(generator_cpus, MIN_GENERATOR_CPUS) + 1e-9))
        raise ResourceError(f"{workers} workers x {generator_cpus:g} CPUs do not fit next to the CPU stages on "
                            f"{cpus:g} CPUs; use at most {most} workers" +
                            (" or fewer --cpus-per-worker" if execution.cpus_per_worker is not None else ""))
    threads = max(1, int(execution.cpus_per_worker)) if execution.cpus_per_worker is not None else None
    warning = None
    if execution.cpus_per_worker is not None and not gpu_share:
        warning = _loss_warning(workers, generator_cpus, task_cpus, cpus, cpu_nodes,
                                node_cpus if largest_node_cpus is None else largest_node_cpus)
    return StagePlan(
        workers=workers, generator_cpus=round(generator_cpus, 3), generator_gpus=gpu_share, threads=threads,
        actors_per_node=math.ceil(workers / max(1, cpu_nodes)), task_cpus=task_cpus,
        clips_per_call=max(1, execution.batch_size // max(1, frames_per_clip)), batch_size=execution.batch_size,
        warning=warning)
