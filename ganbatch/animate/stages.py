"""The three stages of the animate run as row functions, shared by the two streams that run them: Ray Data's
(ganbatch.animate.ray_stream: CPU tasks, an actor pool, CPU tasks) and this process's (ganbatch.animate.in_process).
The CPU stages, prepare and encode, are here and load no torch; generate, the one that needs it and a model, is in
ganbatch.animate.generate.
Work items -> prepare -> generate -> encode -> manifest rows, consumed by the driver as they come (with the seconds
the generator took to open its model and what `auto` chose it from, for the driver's -v lines).

Rows. A row carries the item's output URI, `status` ("ok" until a stage fails it, then "failed" with `error`), the
`seconds` spent on it so far, and its stage data as pickled bytes: `item` (the WorkItem), `clip` (the PreparedClip,
then the generated Clip) and `placement` (what encode needs besides the frames). Pickled columns because the arrays
are ragged (clips differ in length, photos in size) and absent on failed rows, which Arrow tensor columns do not
hold; the bytes are ours, made and read by the stages of one run. The generator unpickles only `clip`. A failed row
flows on untouched through later stages, so nothing one item raises stops the stream; the encode stage turns every
row into its manifest row (JSON, column `row`).

Every stage is idempotent: an output is written whole under a temporary name and renamed (or uploaded whole), so a
retried item overwrites its own output, and the driver keeps one row per output.
"""
import importlib
import json
import pickle
import time
from dataclasses import dataclass

from ganbatch.io import storage
from ganbatch.animate.item import ItemSettings, describe_error, encode_item, prepare_item
from ganbatch.animate.manifest import manifest_row
from ganbatch.animate.plan import WorkItem
from ganbatch.animate.targets import Target


@dataclass(frozen=True)
class GeneratorSpec:
    """What a generator actor needs: the model (URI, runtime, device, precision, pickle trust), the frames per
    forward pass, whether encoding needs the attention maps, and the storage retry budget. Only what the actor
    uses: Ray Data hands the map function, these arguments included, to every actor (and every restart) through
    the object store, owned by the driver, so the run's targets, which can be large, stay out."""

    model: str
    runtime: str
    device: str
    precision: str
    trust_pickle: bool
    batch_size: int
    return_maps: bool
    storage_retry_seconds: float


@dataclass(frozen=True)
class RunSpec:
    """What the CPU stages of one run need: the items' settings and targets, the model's input size, and the
    storage retry budget; and the generator actors' GeneratorSpec."""

    settings: ItemSettings
    targets: list[Target]
    image_size: int
    storage_retry_seconds: float
    generator: GeneratorSpec


def pack(value) -> bytes:
    """A row's stage data (a WorkItem, a clip, a placement) as the bytes of its column."""
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def unpack(data: bytes):
    """The stage data of a column's bytes (see pack)."""
    return pickle.loads(data)  # noqa: S301 - bytes made by this run's own stages (see the module doc)


def _failed(row: dict, error: Exception, started: float) -> dict:
    return {**row, "status": "failed", "error": describe_error(error), "clip": b"", "placement": b"",
            "seconds": row["seconds"] + time.monotonic() - started}


def item_row(item: WorkItem) -> dict:
    """The dataset's input row for a work item."""
    return {"output": item.output, "item": pack(item), "status": "ok", "error": "", "seconds": 0.0,
            "clip": b"", "placement": b"", "runtime": "", "model_seconds": 0.0, "decision": ""}


def prepare(row: dict, spec: RunSpec) -> dict:
    """Stage 1 (a CPU task, or a thread): read, decode, crop, per-frame targets."""
    if spec.settings.encode_needs_torch:
        # Loaded now, while the generator starts, by the task workers that will also encode: imported lazily in the
        # encode step, it would come after the generator's first batch, on the way to every worker's first video.
        importlib.import_module("torch")
    started = time.monotonic()
    try:
        with storage.retry_budget(spec.storage_retry_seconds):
            clip, placement = prepare_item(unpack(row["item"]), spec.targets, spec.settings.crop, spec.image_size)
    except Exception as error:  # noqa: BLE001 - an item's failure becomes its row, the stream goes on
        return _failed(row, error, started)
    return {**row, "clip": pack(clip), "placement": pack(placement),
            "seconds": row["seconds"] + time.monotonic() - started}


def encode(row: dict, spec: RunSpec) -> dict:
    """Stage 3 (a CPU task, or a thread): layout, ffmpeg, atomic write or upload; the row becomes its manifest row."""
    started = time.monotonic()
    item: WorkItem = unpack(row["item"])
    fields = {"input": item.input, "output": item.output, "model": spec.settings.model, "target": item.label,
              "model_digest": spec.settings.model_digest, "runtime": row["runtime"] or None}
    if row["status"] == "ok":
        try:
            placement = unpack(row["placement"])
            with storage.retry_budget(spec.storage_retry_seconds):
                frames = encode_item(item, unpack(row["clip"]), placement, spec.settings)
            result = manifest_row(**fields, status="ok", frames=frames, fps=placement.fps,
                                  seconds=row["seconds"] + time.monotonic() - started, **placement.record)
        except Exception as error:  # noqa: BLE001 - an item's failure becomes its row, the stream goes on
            result = manifest_row(**fields, status="failed", error=describe_error(error),
                                  seconds=row["seconds"] + time.monotonic() - started)
    else:
        result = manifest_row(**fields, status="failed", error=row["error"], seconds=row["seconds"])
    return {"output": item.output, "row": json.dumps(result), "model_seconds": row["model_seconds"],
            "decision": row["decision"]}
