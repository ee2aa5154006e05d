"""`kind: animate` on Ray: plan the work items, stream them through Ray Data stages, keep the manifest.

The driver reads the targets and the model's family (a mismatch is an error before any work), lists the inputs and
the destination once (existing outputs are skipped unless `overwrite`), claims the destination (one run at a time,
ganbatch.animate.lock), removes what interrupted writes left in it, and streams the items to make through three
stages (ganbatch.animate.stages):

    prepare (CPU tasks) -> generate (actor pool, one model per actor) -> encode (CPU tasks) -> driver

sized by ganbatch.animate.resources (shown by --dry-run). The driver consumes the manifest rows as they stream,
keeps one row per item (a retried item never doubles its row), appends each to the manifest (after its video is in
place), drives the progress bar and prints a summary with the start-up time. Worker deaths and lost nodes are Ray's
to retry; transient storage faults are the storage layer's (`execution.storage_retry_seconds`). Should the stream
itself stop, or make no progress with no CPU free for its tasks (ganbatch.animate.watch, `execution.stall_seconds`),
the items it had not finished get failed rows naming the reason and the manifest is still finalised.

Ray: an existing cluster (`execution.address`, else `RAY_ADDRESS`), or a local Ray started and stopped with the run
(see ganbatch.cluster.ray_session).
"""
import contextlib
import dataclasses
import functools
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from ganbatch.io import storage
from ganbatch.animate.gallery import write_gallery
from ganbatch.animate.item import ItemSettings, describe_error
from ganbatch.animate.lock import LOCK_NAME, claim_destination
from ganbatch.animate.manifest import ManifestWriter, manifest_row, read_manifest_rows, set_aside_unreadable
from ganbatch.animate.plan import (
    InputListing,
    PlanError,
    WorkItem,
    existing_outputs,
    find_inputs,
    output_relative,
    plan_items,
    worker_uri,
)
from ganbatch.animate.preview import write_preview
from ganbatch.animate.resources import ResourceError, StagePlan, plan_stages
from ganbatch.animate import in_process
from ganbatch.animate.stages import GeneratorSpec, RunSpec
from ganbatch.animate.watch import watched_rows
from ganbatch.animate.targets import (
    NEUTRAL_AUS,
    Target,
    TargetError,
    check_condition,
    check_landmark_range,
    for_condition,
    load_targets,
    read_driving_videos,
    read_source_aus,
    source_aus_for,
)
from ganbatch.cluster import cluster_resources, local_cpus, local_resources, ray_session
from ganbatch.errors import JobError
from ganbatch.faces import BackendUnavailable, get_detector
from ganbatch.jobs.animate import ESTIMATE, IN_PROCESS_MAX_FRAMES, REPORT_MIN_ITEMS, AnimateJob
from ganbatch.models.checkpoint import CheckpointError
from ganbatch.families import get_family
from ganbatch.models.locate import resolve_model_uri
from ganbatch.runtimes import RuntimeUnavailableError, model_info
from ganbatch.progress import Progress, describe_cluster, describe_setup, format_duration
from ganbatch.targets import AUError

LISTED_FAILURES = 10

log = logging.getLogger(__name__)


class AnimateError(JobError):
    """The job cannot start (bad targets or inputs, a missing model, a target the model cannot take, too few
    cluster resources); raised before any video is made."""


@dataclass
class AnimateResult:
    """What run_animate did: `outputs` has `out` and `manifest`; counts of the videos by status; every row;
    `executor` where the stages ran (`ray`, `in-process`; empty when nothing was made) and why; `startup` the
    seconds until Ray was up (0 in process) and `first_video` until the first row arrived; `stats` Ray Data's
    per-operator statistics of the stream (empty when nothing was made or it ran in process)."""

    ok: bool
    outputs: dict[str, str]
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    frames: int = 0
    seconds: float = 0.0
    executor: str = ""
    executor_reason: str = ""
    startup: Optional[float] = None
    first_video: Optional[float] = None
    rows: list[dict] = field(default_factory=list)
    stats: str = ""
    problems: list[str] = field(default_factory=list)
    stream_abandoned: bool = False  # the stream stopped before its end (its threads may still be waiting on it)

    @property
    def failure(self) -> str:
        """Why the job failed, for the command's last line: how many videos, where their rows are, what to do."""
        return (f"{self.failed} of {_count(self.succeeded + self.failed + self.skipped, 'video')} failed; the rows, "
                f"each failure with its reason, are in {self.outputs['manifest']}; re-run to retry them (videos made "
                "are skipped), or pass --allow-failures to accept partial results")


@dataclass(frozen=True)
class _Work:
    """The planned run: targets, every item, the files that exist below the destination already, and the model's
    input size and tensor digest; `listing` also names the files of input folders that were not used."""

    targets: list[Target]
    items: list[WorkItem]
    existing: frozenset[str]
    listing: InputListing
    image_size: int = 0
    model_digest: Optional[str] = None

    @property
    def todo(self) -> list[WorkItem]:
        """Items to make."""
        return [item for item in self.items if item.marker not in self.existing]

    @property
    def done(self) -> list[WorkItem]:
        """Items whose output exists (skipped)."""
        return [item for item in self.items if item.marker in self.existing]


def _plan_work(job: AnimateJob, targets: list[Target]) -> _Work:
    out = worker_uri(job.out)
    listing = find_inputs(job.inputs, job.recursive, destination=out)
    items = plan_items(listing, [t.label for t in targets], out, job.output.format)
    return _Work(targets, items, frozenset() if job.overwrite else frozenset(existing_outputs(out)), listing)


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


def _clip_lengths(targets: list[Target]) -> list[Optional[int]]:
    """Each target's frame count at the neutral source (None when its length depends on the face or it cannot be
    made: the item itself reports that)."""
    lengths = []
    for target in targets:
        try:
            with np.errstate(all="ignore"):
                lengths.append(target.schedule(NEUTRAL_AUS, np.zeros((66, 2), np.float32)).num_frames)
        except Exception:  # noqa: BLE001 - only an estimate, see the docstring
            lengths.append(None)
    return lengths


def _shortest_clip(targets: list[Target], fallback: int) -> int:
    """The fewest frames a target's clip has, for batching clips together (fallback for unknown lengths)."""
    return min((length or fallback for length in _clip_lengths(targets)), default=fallback)


def _stage_plan(job: AnimateJob, targets: list[Target], todo: int, resources: dict) -> StagePlan:
    try:
        return plan_stages(job.execution, cpus=resources["CPU"], gpus=resources["GPU"],
                           cpu_nodes=resources["cpu_nodes"], node_cpus=resources["node_cpus"],
                           largest_node_cpus=resources.get("largest_node_cpus"),
                           todo=max(1, todo),
                           frames_per_clip=_shortest_clip(targets, job.execution.batch_size))
    except ResourceError as error:
        raise AnimateError(str(error)) from None


def _model_lines(job: AnimateJob, targets: list[Target]) -> list[str]:
    """The dry run's model lines: what it is (read from its header, not its weights), whether its tensors are
    verified, and AnimateError when the targets ask for what the model cannot follow."""
    try:
        info = model_info(job.model, trust_pickle=job.trust_pickle)
        check_condition(for_condition(targets, info.condition), info.family, info.condition, job.model)
    except (CheckpointError, storage.StorageError, TargetError) as error:
        raise AnimateError(str(error)) from None
    digest = info.digest
    integrity = (f"tensors recorded as sha256 {digest[:12]}..., verified when each worker loads them" if digest
                 else "no tensor digest recorded (a published layout or an older file): its integrity cannot be "
                      "verified")
    return [f"model: {job.model} ({info.describe()}); {integrity}"]


def _estimate(job: AnimateJob, frames: int) -> str:
    """How long generating `frames` frames takes, from a short probe of the model on this machine (one batch)."""
    from ganbatch.runtimes.timing import generator_seconds_per_frame

    if not frames:
        return "time: nothing to make"
    runtime = job.execution.runtime if job.execution.runtime != "auto" else "torch"
    probe_frames = min(job.execution.batch_size, 8)  # one forward pass, kept short
    try:
        per_frame = generator_seconds_per_frame(job.model, chunk_size=probe_frames, runtime=runtime,
                                                trust_pickle=job.trust_pickle)
    except Exception as error:  # noqa: BLE001 - only an estimate; the run reports real problems itself
        return f"time: not estimated ({describe_error(error)})"
    return (f"time: about {format_duration(frames * per_frame)} of generator time on one worker here "
            f"({per_frame * 1000:.0f} ms/frame measured with {runtime} fp32, batch {probe_frames};"
            " start-up and encoding extra)")


def plan_animate(job: AnimateJob) -> str:
    """The plan for --dry-run: the model (header only) against the targets, videos to make and skip, frames and a
    time estimate, output names, unused input files, faces, stages and their resources (reads target files, lists
    inputs and the destination, probes the generator on one batch; starts no Ray)."""
    try:
        targets = load_targets(job.targets)
    except (TargetError, storage.StorageError) as error:
        raise AnimateError(str(error)) from None
    model_lines = _model_lines(job, targets)
    try:
        work = _plan_work(job, targets)
    except (TargetError, PlanError, storage.StorageError) as error:
        raise AnimateError(str(error)) from None
    execution, crop = job.execution, job.crop
    images = len({item.input for item in work.items})
    labels = [target.label for target in work.targets]
    faces = "inputs are face crops (crop: none)" if crop.mode == "none" else (
        f"detect the largest face ({crop.backend}, margin {crop.margin:g})"
        + (f", paste it back into the photo (feather {crop.feather:g})" if crop.pasteback else ""))
    example = output_relative("{stem}", "{target}", job.output.format)
    redo = "" if job.overwrite else "; --overwrite redoes them"
    frames = _planned_frames(work)
    address = execution.address or os.environ.get("RAY_ADDRESS")
    executor, why = _executor(job, frames)
    in_this_process = executor == "in-process"
    if address and not in_this_process:
        with ray_session(address):  # connected only to read its resources (ClusterUnreachable: one line)
            resources = cluster_resources()
        ray_line = (f"executor: Ray, the cluster at {address} ({resources['CPU']:g} CPUs on {resources['cpu_nodes']} "
                    f"node(s), {resources['GPU']:g} GPUs now)")
    else:
        resources = local_resources()
        where = "in this process, no Ray" if in_this_process else "a local Ray, started and stopped with the command"
        ray_line = f"executor: {where} ({why}; {resources['CPU']:g} CPUs, {resources['GPU']:g} GPUs here)"
    stages = _stage_lines(_stage_plan(job, work.targets, len(work.todo), resources), in_this_process)
    skipped = [work.listing.skipped_summary(), *(f"  {line}" for line in work.listing.skipped_lines())] \
        if work.listing.skipped else []
    return "\n".join([
        *model_lines,
        f"{_count(images, 'image')} x {_count(len(labels), 'target')} ({', '.join(labels)}) = "
        f"{_count(len(work.items), 'video')}: {len(work.todo)} to make, {len(work.done)} already exist "
        f"(skipped{redo})",
        f"frames: {frames} to generate",
        _estimate(job, frames),
        *skipped,
        f"output: {storage.join(job.out, example)} ({job.output.format}, layout {job.output.layout}); "
        f"manifest {storage.join(job.out, job.manifest)}",
        f"faces: {faces}",
        f"model runs: {execution.runtime} on device {execution.device}, precision {execution.precision}, "
        f"batch {execution.batch_size} frames; storage faults retried for {execution.storage_retry_seconds:g} s",
        "stages:", *[f"  {line}" for line in stages],
        ray_line,
    ])


def _executor(job: AnimateJob, frames: int) -> tuple[str, str]:
    """Where the stages run, `ray` or `in-process`, and why (see AnimateExecution.executor): auto takes this process
    for a small job that names no cluster and no Ray settings, when this process has no Ray running already (a
    caller's Ray, e.g. the Python API's user's, is used)."""
    execution = job.execution
    if execution.executor != "auto":
        return execution.executor, f"executor {execution.executor}"
    if execution.ray_settings():
        return "ray", f"{', '.join(execution.ray_settings())} given"
    if os.environ.get("RAY_ADDRESS"):
        return "ray", "RAY_ADDRESS is set"
    if _ray_running():
        return "ray", "Ray is running in this process"
    if frames > IN_PROCESS_MAX_FRAMES:
        return "ray", f"{frames} frames, over the {IN_PROCESS_MAX_FRAMES} that run in process"
    return "in-process", f"{frames} frames, a small local job"


def _stage_lines(plan: StagePlan, in_this_process: bool) -> list[str]:
    """The stages and their resources as they will run (for --dry-run and the log)."""
    return in_process.describe(plan, local_cpus()) if in_this_process else plan.describe()


def _ray_running() -> bool:
    """Whether this process has a Ray initialised (looked up without importing Ray: one running is imported)."""
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def _count(number: int, noun: str) -> str:
    """`1 image`, `2 images`."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _planned_frames(work: _Work) -> int:
    """Frames the videos to make hold (targets of unknown length count 0)."""
    lengths = _clip_lengths(work.targets)
    return sum(lengths[item.target] or 0 for item in work.todo if not item.problem)


def _skipped_rows(work: _Work, job: AnimateJob, previous: list[dict]) -> list[dict]:
    earlier = {row["output"]: row for row in previous if row.get("status") == "ok"}
    rows = []
    for item in work.done:
        before = earlier.get(item.output, {})
        rows.append(manifest_row(input=item.input, output=item.output, status="skipped", model=job.model,
                                 target=item.label, frames=before.get("frames"), fps=before.get("fps"),
                                 model_digest=before.get("model_digest")))
    return rows


def _prepare(job: AnimateJob) -> _Work:
    """Targets, model family check, work items with source AUs and driving landmarks; AnimateError on a problem."""
    try:
        targets = load_targets(job.targets)
        info = model_info(job.model, trust_pickle=job.trust_pickle)
        family = get_family(info.family)
        targets = for_condition(targets, family.condition)
        check_condition(targets, family.name, family.condition, job.model)
        if job.source_aus and family.condition != "aus":
            raise TargetError(f"source_aus applies to GANimation models; {job.model} is a {family.name} model")
        work = dataclasses.replace(_plan_work(job, targets), image_size=info.image_size or family.default_image_size,
                                   model_digest=info.digest)
        check_landmark_range(targets, work.image_size)
        if job.source_aus == ESTIMATE:
            estimated = [dataclasses.replace(item, estimate_aus=True) for item in work.items]
            work = dataclasses.replace(work, items=estimated)
        elif job.source_aus:
            work = dataclasses.replace(work, items=_with_source_aus(work.items, job.source_aus))
        if work.todo:
            detector = functools.partial(get_detector, job.crop.backend, "cpu")  # built only for driving videos
            work = dataclasses.replace(work, targets=read_driving_videos(work.targets, detector))
    except (TargetError, PlanError, CheckpointError, storage.StorageError, BackendUnavailable,
            RuntimeUnavailableError) as error:
        raise AnimateError(str(error)) from None
    return work


def _summary(result: AnimateResult, manifest: str) -> str:
    total = result.succeeded + result.failed + result.skipped
    rate = f" ({result.frames / result.seconds:.1f} frames/s)" if result.seconds else ""
    startup = ""
    if result.startup is not None:
        startup = f"; start-up {result.startup:.1f} s ({'in process' if result.executor == 'in-process' else 'Ray'})"
        if result.first_video is not None:
            startup += f", first video after {result.first_video:.1f} s"
    lines = [f"animate: {_count(total, 'video')}: {result.succeeded} ok, {result.failed} failed, {result.skipped} skipped; "
             f"{result.frames} frames in {result.seconds:.1f} s{rate}{startup}; manifest {manifest}"]
    failures = [row for row in result.rows if row["status"] == "failed"]
    lines += [f"  failed: {row['input']} [{row['target']}]: {row['error']}" for row in failures[:LISTED_FAILURES]]
    if len(failures) > LISTED_FAILURES:
        lines.append(f"  ... and {len(failures) - LISTED_FAILURES} more (see the manifest)")
    lines += [f"  note: {problem}" for problem in result.problems]
    return "\n".join(lines)


def _clean_destination(out: str, whose: str) -> None:
    """Remove what interrupted writes left below the destination, `whose` naming the writers (never fatal). Run while
    this run holds the destination: before its stream (earlier runs' leftovers) and after it (a worker of this run
    killed mid-write, with its node or its process; Ray made that item again elsewhere)."""
    try:
        removed = storage.remove_stale_temporaries(out, keep=(f".{LOCK_NAME}",))  # the lock's own are live
    except storage.StorageError as error:
        log.warning("could not clean up stale temporary files below %s: %s", out, error)
        return
    if removed:
        log.info("removed %d temporary file(s) left by %s below %s", removed, whose, out)


def _process_age() -> float:
    """Seconds since this process started."""
    import psutil

    return time.time() - psutil.Process().create_time()


def run_animate(job: AnimateJob) -> AnimateResult:
    """Make every video of the job (see the module doc); `ok` unless an item failed and not `allow_failures`.

    Raises AnimateError, before any work, for problems with the job as a whole.
    """
    planning = time.monotonic()
    log.debug("start-up: %.1f s since the process started (Python, imports)", _process_age())
    work = _prepare(job)
    log.debug("start-up: plan %.1f s (targets, model header, inputs)", time.monotonic() - planning)
    out = worker_uri(job.out)
    manifest_uri = storage.join(out, job.manifest)
    result = AnimateResult(ok=True, outputs={"out": job.out, "manifest": storage.join(job.out, job.manifest)})
    with storage.retry_budget(job.execution.storage_retry_seconds), claim_destination(out):
        _clean_destination(out, "an interrupted earlier run")
        try:
            set_aside = set_aside_unreadable(manifest_uri)
        except storage.StorageError as error:
            raise AnimateError(f"cannot set aside the unreadable lines of the manifest: {error}") from None
        if set_aside:
            log.warning(set_aside)
        previous = read_manifest_rows(manifest_uri)
        try:
            manifest = ManifestWriter(manifest_uri)
        except storage.StorageError as error:
            raise AnimateError(f"cannot read the existing manifest: {error}") from None
        with manifest:
            for row in _skipped_rows(work, job, previous):
                manifest.append(row)
                result.rows.append(row)
            if work.todo:
                _run_stream(job, work, manifest, result)
                _clean_destination(out, "workers of this run that were stopped mid-write")
        if manifest.problem:
            result.problems.append(manifest.problem)
    result.skipped = len(work.done)
    result.ok = result.failed == 0 or job.allow_failures
    if work.listing.skipped:
        result.problems.append(work.listing.skipped_summary())
    if job.output.preview:
        write_preview(result.rows, out)
    if job.output.report if job.output.report is not None else len(work.items) > REPORT_MIN_ITEMS:
        _write_gallery(job, result, out)
    log.info(_summary(result, result.outputs["manifest"]))
    return result


def _write_gallery(job: AnimateJob, result: AnimateResult, out: str) -> None:
    """DEST/index.html over every row of the manifest (this run's and earlier runs'); a failure is a note."""
    rows = read_manifest_rows(storage.join(out, job.manifest)) or result.rows
    rate = f"{result.frames / result.seconds:.1f}" if result.seconds else "-"
    summary = {"model": job.model, "made": f"{result.succeeded} ok, {result.failed} failed, {result.skipped} skipped",
               "processing time": f"{result.seconds:.1f} s", "frames/s": rate}
    try:
        page = write_gallery(rows, out, summary)
    except (storage.StorageError, OSError) as error:
        result.problems.append(f"gallery not written: {error}")
        return
    result.outputs["report"] = page
    log.info("gallery: %s", page)


def _run_spec(job: AnimateJob, work: _Work) -> RunSpec:
    execution = job.execution
    settings = ItemSettings(model=job.model, crop=job.crop, output=job.output, model_digest=work.model_digest)
    generator = GeneratorSpec(model=worker_uri(resolve_model_uri(job.model)), runtime=execution.runtime,
                              device=execution.device, precision=execution.precision, trust_pickle=job.trust_pickle,
                              batch_size=execution.batch_size, return_maps=settings.needs_attention,
                              storage_retry_seconds=execution.storage_retry_seconds)
    return RunSpec(settings=settings, targets=work.targets, image_size=work.image_size,
                   storage_retry_seconds=execution.storage_retry_seconds, generator=generator)


def _run_stream(job: AnimateJob, work: _Work, manifest: ManifestWriter, result: AnimateResult) -> None:
    """Stream the items to be made through the stages, on Ray or in this process (`_executor`), recording each row
    (once per output) in the manifest and result; items the stream did not finish get failed rows."""
    started = time.monotonic()
    result.executor, result.executor_reason = _executor(job, _planned_frames(work))
    in_this_process = result.executor == "in-process"
    with contextlib.nullcontext() if in_this_process else ray_session(job.execution.address):
        result.startup = time.monotonic() - started
        resources = local_resources() if in_this_process else cluster_resources()
        plan = _stage_plan(job, work.targets, len(work.todo), resources)
        log.info(_setup_line(job, plan, resources, in_this_process))
        if plan.warning:
            log.warning("animate: %s", plan.warning)
        log.debug("executor: %s (%s)", result.executor, result.executor_reason)
        spec = _run_spec(job, work)
        for line in _stage_lines(plan, in_this_process):
            log.debug("stage %s", line)
        dataset = None
        if in_this_process:
            streamed_rows = in_process.stream_rows(work.todo, spec, plan, encoders=local_cpus())
        else:
            from ganbatch.animate.ray_stream import build_dataset  # Ray Data only when the run is on Ray

            dataset = build_dataset(work.todo, spec, plan)
            streamed_rows = watched_rows(dataset.iter_rows(), task_cpus=plan.task_cpus,
                                         stall_seconds=job.execution.stall_seconds)
        progress = Progress(len(work.todo), unit="videos", label="animate")
        recorded: set[tuple] = set()
        where = "in process" if in_this_process else f"Ray {result.startup:.1f} s"

        def record(row: dict, model_seconds: float = 0.0, decision: str = "") -> None:
            key = (row["input"], row["target"])  # not the output: every item refused at planning has none
            if key in recorded:
                return
            if result.first_video is None:
                result.first_video = time.monotonic() - started
                log.debug("start-up: %s; the first video %.1f s later (its generator opened the model in %.1f s, "
                          "then prepared, generated and encoded the first batch)", where,
                          result.first_video - result.startup, model_seconds)
                if decision:
                    log.debug("runtime: %s", decision)
                if row.get("runtime"):
                    log.info("generator: %s", row["runtime"])
            recorded.add(key)
            manifest.append(row)
            result.rows.append(row)
            progress.update(frames=row["frames"] or 0, failed=row["status"] == "failed")

        try:
            for streamed in streamed_rows:
                record(json.loads(streamed["row"]), streamed["model_seconds"], streamed["decision"])
            if dataset is not None:
                result.stats = dataset.stats()
        except Exception as error:  # noqa: BLE001 - whatever stopped the stream, the manifest is finalised
            log.error("the animate stream stopped: %s", describe_error(error))
            result.stream_abandoned = not in_this_process  # Ray Data's threads may still wait on it
            reason = f"the pipeline stopped before this item was made: {describe_error(error)}"[:500]
            for item in work.todo:
                record(manifest_row(input=item.input, output=item.output, status="failed", model=job.model,
                                    target=item.label, error=reason, model_digest=work.model_digest))
        finally:
            result.seconds = progress.close()
    result.succeeded, result.failed = progress.done - progress.failed, progress.failed
    result.frames = progress.frames


def _setup_line(job: AnimateJob, plan: StagePlan, resources: dict, in_this_process: bool) -> str:
    """The start-up line naming the cluster, workers, device, precision, runtime and face detector."""
    execution = job.execution
    device = execution.device if execution.device != "auto" else ("cuda" if plan.generator_gpus else "cpu")
    detector = None
    if job.crop.mode == "detect":
        try:
            detector = get_detector(job.crop.backend, "cpu").name
        except BackendUnavailable:
            detector = job.crop.backend
    cluster = describe_cluster(resources, execution.address or os.environ.get("RAY_ADDRESS"),
                               in_process=in_this_process)
    return describe_setup(cluster=cluster, workers=plan.workers, device=device, precision=execution.precision,
                          runtime=execution.runtime, detector=detector, gpus=resources.get("GPU", 0),
                          threads=plan.threads)
