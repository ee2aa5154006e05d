"""`kind: animate` on Ray: plan the work items, stream them through a pool of model actors, keep the manifest.

The driver reads the targets and the model's family (a mismatch is an error before any work), lists the inputs and
the destination once (existing outputs are skipped unless `overwrite`), then starts `workers` actors. Each actor
opens the checkpoint from its URI itself (S3 checkpoints are downloaded inside the actor), sets torch's thread count
to its CPU share and makes videos one item at a time with `ItemAnimator`. The driver keeps at most
IN_FLIGHT_PER_WORKER items queued per actor, so input order streams through with no actor idle between items, and
writes each manifest row as its item finishes. A worker that dies fails its queued items and leaves the pool.

Ray: an existing cluster (`execution.address`, else `RAY_ADDRESS`), or a local Ray started and stopped with the run
(see ganbatch.cluster.ray_session).
"""
import dataclasses
import functools
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field

import ray
import torch
from ray.exceptions import RayActorError, RayError
from tqdm import tqdm

from ganbatch import storage
from ganbatch.animate.item import ItemAnimator, ItemSettings
from ganbatch.animate.manifest import ManifestWriter, manifest_row, read_manifest
from ganbatch.animate.plan import (
    PlanError,
    WorkItem,
    existing_outputs,
    find_inputs,
    output_relative,
    plan_items,
    worker_uri,
)
from ganbatch.animate.preview import write_preview
from ganbatch.animate.targets import (
    Target,
    TargetError,
    check_condition,
    load_targets,
    read_source_aus,
    source_aus_for,
    with_driving_landmarks,
)
from ganbatch.cluster import cluster_gpus, ray_session
from ganbatch.errors import JobError
from ganbatch.faces import BackendUnavailable, get_detector
from ganbatch.jobs.animate import AnimateJob
from ganbatch.models.checkpoint import CheckpointError
from ganbatch.models.families import get_family
from ganbatch.models.hub import open_model, resolve_model_uri
from ganbatch.targets import AUError

IN_FLIGHT_PER_WORKER = 2
LISTED_FAILURES = 10


class AnimateError(JobError):
    """The job cannot start (bad targets or inputs, a missing model, a target the model cannot take, too few
    cluster resources); raised before any video is made."""


@dataclass
class AnimateResult:
    """What run_animate did: `outputs` has `out` and `manifest`; counts of the videos by status; every row."""

    ok: bool
    outputs: dict[str, str]
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    frames: int = 0
    seconds: float = 0.0
    rows: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class Resources:
    """The actor pool: `workers` actors of `cpus` CPUs and `gpus` GPUs each."""

    workers: int
    cpus: float
    gpus: float

    @property
    def threads(self) -> int:
        """torch threads per actor: its whole CPUs, at least one."""
        return max(1, int(self.cpus))


@dataclass(frozen=True)
class _Work:
    """The planned run: targets, every item, and the files that exist below the destination already."""

    targets: list[Target]
    items: list[WorkItem]
    existing: frozenset[str]

    @property
    def todo(self) -> list[WorkItem]:
        """Items to make."""
        return [item for item in self.items if item.marker not in self.existing]

    @property
    def done(self) -> list[WorkItem]:
        """Items whose output exists (skipped)."""
        return [item for item in self.items if item.marker in self.existing]


class AnimateWorker:
    """A model actor's body (wrapped with ray.remote by the pipeline; usable without Ray): opens the model from its
    URI, then animates items one at a time."""

    def __init__(self, model: str, trust_pickle: bool, targets: list[Target], settings: ItemSettings,
                 device: str, threads: int):
        torch.set_num_threads(threads)
        generator, info = open_model(model, trust_pickle=trust_pickle)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.animator = ItemAnimator(generator, info, targets, settings, device)

    def animate(self, item: WorkItem) -> dict:
        """The item's manifest row, after its video is in place."""
        return self.animator.animate(item)


def _plan_work(job: AnimateJob, targets: list[Target]) -> _Work:
    out = worker_uri(job.out)
    items = plan_items(find_inputs(job.inputs, job.recursive), [t.label for t in targets], out, job.output.format)
    return _Work(targets, items, frozenset() if job.overwrite else frozenset(existing_outputs(out)))


def _with_source_aus(items: list[WorkItem], uri: str) -> list[WorkItem]:
    """Items with their image's source AUs, or the lookup's failure as their problem."""
    table = read_source_aus(uri)
    ready = []
    for item in items:
        try:
            ready.append(dataclasses.replace(item, source_aus=source_aus_for(table, item.input, uri)))
        except AUError as error:
            ready.append(dataclasses.replace(item, problem=str(error)))
    return ready


def _ray_description(job: AnimateJob) -> str:
    address = job.execution.address or os.environ.get("RAY_ADDRESS")
    return f"Ray cluster at {address}" if address else "a local Ray, started and stopped with the command"


def plan_animate(job: AnimateJob) -> str:
    """The plan for --dry-run: videos to make and skip, output names, faces, workers and resources (reads target
    files and lists inputs and the destination; loads no model and starts no Ray)."""
    try:
        work = _plan_work(job, load_targets(job.targets))
    except (TargetError, PlanError, storage.StorageError) as error:
        raise AnimateError(str(error)) from None
    execution, crop = job.execution, job.crop
    images = len({item.input for item in work.items})
    labels = [target.label for target in work.targets]
    gpus = "1 when the cluster has GPUs, else 0" if execution.gpus_per_worker is None else \
        f"{execution.gpus_per_worker:g}"
    workers = execution.workers or "one per GPU of the cluster, else 1"
    faces = "inputs are face crops (crop: none)" if crop.mode == "none" else (
        f"detect the largest face ({crop.backend}, margin {crop.margin:g})"
        + (f", paste it back into the photo (feather {crop.feather:g})" if crop.pasteback else ""))
    example = output_relative("{stem}", "{target}", job.output.format)
    redo = "" if job.overwrite else "; --overwrite redoes them"
    return "\n".join([
        f"model: {job.model}",
        f"{images} images x {len(labels)} targets ({', '.join(labels)}) = {len(work.items)} videos: "
        f"{len(work.todo)} to make, {len(work.done)} already exist (skipped{redo})",
        f"output: {storage.join(job.out, example)} ({job.output.format}, layout {job.output.layout}); "
        f"manifest {storage.join(job.out, job.manifest)}",
        f"faces: {faces}",
        f"workers: {workers}; each {execution.cpus_per_worker:g} CPUs, GPUs: {gpus}; device {execution.device}, "
        f"precision {execution.precision}, batch {execution.batch_size} frames",
        f"ray: {_ray_description(job)}",
    ])


def _resources(job: AnimateJob, todo: int) -> Resources:
    """The actor pool for the connected cluster; AnimateError when it cannot be placed."""
    execution = job.execution
    available_gpus = cluster_gpus()
    gpus = execution.gpus_per_worker if execution.gpus_per_worker is not None else float(available_gpus > 0)
    if gpus > available_gpus:
        raise AnimateError(f"workers ask for {gpus:g} GPUs each, the cluster has {available_gpus:g}")
    if gpus == 0 and (execution.device == "cuda" or execution.precision == "fp16"):
        raise AnimateError(f"device {execution.device} / precision {execution.precision} needs GPU workers; "
                           "set --gpus-per-worker (the cluster has "
                           f"{available_gpus:g} GPUs) or use --device cpu and fp32/bf16")
    workers = execution.workers or (max(1, int(available_gpus // gpus)) if gpus else 1)
    workers = max(1, min(workers, todo))
    cpus = float(ray.cluster_resources().get("CPU", 0))
    if execution.cpus_per_worker > cpus:
        raise AnimateError(f"workers ask for {execution.cpus_per_worker:g} CPUs each, the cluster has {cpus:g}")
    return Resources(workers=workers, cpus=execution.cpus_per_worker, gpus=gpus)


class _Progress:
    """Counts of finished items and frames, shown in a tqdm bar on stderr (on terminals only)."""

    def __init__(self, total: int):
        self.bar = tqdm(total=total, unit="video", file=sys.stderr, disable=None, dynamic_ncols=True)
        self.started = time.monotonic()
        self.counts = {"ok": 0, "failed": 0}
        self.frames = 0

    def update(self, row: dict) -> None:
        self.counts[row["status"]] += 1
        self.frames += row["frames"] or 0
        elapsed = time.monotonic() - self.started
        rate = f"{self.frames / elapsed:.1f}" if elapsed else "-"
        self.bar.set_postfix({"ok": self.counts["ok"], "failed": self.counts["failed"], "frames/s": rate},
                             refresh=False)
        self.bar.update(1)

    def close(self) -> float:
        self.bar.close()
        return time.monotonic() - self.started


def _stream(actors: list, items: list[WorkItem], model: str, on_row) -> None:
    """Run items on the actors, at most IN_FLIGHT_PER_WORKER queued per actor, calling on_row(row) as each ends;
    items lost with a dead worker get failed rows (for `model`)."""
    queue, pending = deque(items), {}
    load = {actor: 0 for actor in actors}

    def fill():
        while queue and load:
            actor = min(load, key=load.get)
            if load[actor] >= IN_FLIGHT_PER_WORKER:
                return
            item = queue.popleft()
            pending[actor.animate.remote(item)] = (actor, item)
            load[actor] += 1

    fill()
    while pending:
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        actor, item = pending.pop(ref)
        try:
            row = ray.get(ref)
        except RayError as error:
            if isinstance(error, RayActorError):
                load.pop(actor, None)  # the actor is gone: its other queued items fail the same way
            reason = " ".join(str(error).split())[:500]
            row = manifest_row(input=item.input, output=item.output, status="failed", model=model,
                               target=item.label, error=f"worker failed: {reason}")
        if actor in load:
            load[actor] -= 1
        on_row(row)
        fill()
    for item in queue:
        on_row(manifest_row(input=item.input, output=item.output, status="failed", model=model, target=item.label,
                            error="no worker left: every worker died"))


def _skipped_rows(work: _Work, job: AnimateJob, previous: list[dict]) -> list[dict]:
    earlier = {row["output"]: row for row in previous if row.get("status") == "ok"}
    rows = []
    for item in work.done:
        before = earlier.get(item.output, {})
        rows.append(manifest_row(input=item.input, output=item.output, status="skipped", model=job.model,
                                 target=item.label, frames=before.get("frames"), fps=before.get("fps")))
    return rows


def _prepare(job: AnimateJob) -> _Work:
    """Targets, model family check, work items with source AUs and driving landmarks; AnimateError on a problem."""
    try:
        targets = load_targets(job.targets)
        _, info = open_model(job.model, trust_pickle=job.trust_pickle)
        family = get_family(info.family)
        check_condition(targets, family.name, family.condition, job.model)
        if job.source_aus and family.condition != "aus":
            raise TargetError(f"source_aus applies to GANimation models; {job.model} is a {family.name} model")
        work = _plan_work(job, targets)
        if job.source_aus:
            work = dataclasses.replace(work, items=_with_source_aus(work.items, job.source_aus))
        if work.todo:
            detector = functools.partial(get_detector, job.crop.backend, "cpu")  # built only for driving videos
            work = dataclasses.replace(work, targets=with_driving_landmarks(targets, detector))
    except (TargetError, PlanError, CheckpointError, storage.StorageError, BackendUnavailable) as error:
        raise AnimateError(str(error)) from None
    return work


def _summary(result: AnimateResult, manifest: str) -> str:
    total = result.succeeded + result.failed + result.skipped
    rate = f" ({result.frames / result.seconds:.1f} frames/s)" if result.seconds else ""
    lines = [f"animate: {total} videos: {result.succeeded} ok, {result.failed} failed, {result.skipped} skipped; "
             f"{result.frames} frames in {result.seconds:.1f} s{rate}; manifest {manifest}"]
    failures = [row for row in result.rows if row["status"] == "failed"]
    lines += [f"  failed: {row['input']} [{row['target']}]: {row['error']}" for row in failures[:LISTED_FAILURES]]
    if len(failures) > LISTED_FAILURES:
        lines.append(f"  ... and {len(failures) - LISTED_FAILURES} more (see the manifest)")
    return "\n".join(lines)


def run_animate(job: AnimateJob) -> AnimateResult:
    """Make every video of the job (see the module doc); `ok` unless an item failed and not `allow_failures`.

    Raises AnimateError, before any work, for problems with the job as a whole.
    """
    work = _prepare(job)
    manifest_uri = storage.join(worker_uri(job.out), job.manifest)
    result = AnimateResult(ok=True, outputs={"out": job.out, "manifest": storage.join(job.out, job.manifest)})
    previous = read_manifest(manifest_uri)
    with ManifestWriter(manifest_uri) as manifest:
        for row in _skipped_rows(work, job, previous):
            manifest.append(row)
            result.rows.append(row)
        if work.todo:
            _run_on_ray(job, work, manifest, result)
    result.skipped = len(work.done)
    result.ok = result.failed == 0 or job.allow_failures
    if job.output.preview:
        write_preview(result.rows, worker_uri(job.out))
    print(_summary(result, result.outputs["manifest"]), file=sys.stderr)
    return result


def _run_on_ray(job: AnimateJob, work: _Work, manifest: ManifestWriter, result: AnimateResult) -> None:
    """Stream the items to be made through a pool of actors, recording each row in the manifest and result."""
    settings = ItemSettings(model=job.model, crop=job.crop, output=job.output,
                            batch_size=job.execution.batch_size, precision=job.execution.precision)
    with ray_session(job.execution.address):
        resources = _resources(job, len(work.todo))
        worker = ray.remote(AnimateWorker).options(num_cpus=resources.cpus, num_gpus=resources.gpus, max_restarts=0)
        model = worker_uri(resolve_model_uri(job.model))
        actors = [worker.remote(model, job.trust_pickle, work.targets, settings, job.execution.device,
                                resources.threads) for _ in range(resources.workers)]
        progress = _Progress(len(work.todo))

        def record(row: dict) -> None:
            manifest.append(row)
            result.rows.append(row)
            progress.update(row)

        try:
            _stream(actors, work.todo, job.model, record)
        finally:
            result.seconds = progress.close()
            for actor in actors:
                ray.kill(actor)
    result.succeeded, result.failed = progress.counts["ok"], progress.counts["failed"]
    result.frames = progress.frames
