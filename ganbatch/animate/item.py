"""One video in three steps, none of which needs Ray: prepare, generate, encode.

- `prepare_item`: read the image (local or S3), decode it, crop the face (or fit the crop to the model's size), and
  compute the per-frame targets: a `PreparedClip` (what the generator needs) and a `Placement` (what the encoder
  needs besides the frames).
- `generate_clips`: frames for several clips at once through a Runtime, their generated frames concatenated into
  forward passes of at most `batch_size` frames; for one clip exactly `render_clip(..., chunk_size=batch_size)`.
- `encode_item`: layout (side-by-side, mask, paste-back), ffmpeg, and an atomic write: a local output appears under
  its name only when complete; an S3 output is encoded to a local temporary file and uploaded whole (a PNG folder
  frame by frame, its first frame last: a re-run takes the first frame as the mark of a complete folder).

The Ray pipeline runs each step as its own stage (ganbatch.animate.stages). `ItemAnimator` runs the three in a row
for one item at a time, in one process, and returns the item's manifest row: every failure of an item (unreadable or
corrupt image, no face, bad source AUs, an encoder error, ...) becomes a `failed` row naming the reason.
"""
import dataclasses
import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from ganbatch.io import scratch, storage
from ganbatch.animate.manifest import manifest_row
from ganbatch.animate.plan import WorkItem
from ganbatch.animate.targets import NEUTRAL_AUS, Target
from ganbatch.errors import one_line
from ganbatch.faces import CropTransform, Face, crop_face, fit_to_size, get_detector, largest_face, paste_back
from ganbatch.faces.au_estimator import load_au_estimator
from ganbatch.jobs.animate import CropSpec, OutputSpec
from ganbatch.io.images import decode_image
from ganbatch.io.video import VideoWriter
from ganbatch.layout import compose_frames
from ganbatch.families import get_family
from ganbatch.models.runtime import Runtime
from ganbatch.render import Clip
from ganbatch.targets import AU_NAMES, to_gannotation66


class ItemError(Exception):
    """An item that cannot be made, for a reason worth reporting as it is (e.g. no face found)."""


@dataclass(frozen=True)
class ItemSettings:
    """How every item is made: face crops, video output, frames per generator call, and the model's URI and
    tensor digest (recorded in manifest rows)."""

    model: str
    crop: CropSpec
    output: OutputSpec
    batch_size: int
    model_digest: Optional[str] = None

    @property
    def needs_attention(self) -> bool:
        """Whether encoding uses the attention maps (paste-back, or the with-mask layout)."""
        return self.crop.pasteback or self.output.layout == "with-mask"


@dataclass(frozen=True)
class PreparedClip:
    """The generator's input for one video: the model-sized uint8 face crop, one target per frame (the family's
    convention), and whether frame 0 is the untouched face."""

    face: np.ndarray
    targets: np.ndarray
    input_first: bool = False


@dataclass(frozen=True)
class Placement:
    """How one video's frames are laid out: its fps, the image shown beside the animation (the crop, or the photo
    with paste-back) and, for paste-back, the crop's transform in that photo; `record`: what the prepare stage found
    that the manifest row records (estimated source AUs, driving frames without a face)."""

    fps: float
    source: np.ndarray
    transform: Optional[CropTransform] = None
    record: dict = dataclasses.field(default_factory=dict)


def describe_error(error: Exception) -> str:
    """A one-line reason for a manifest row: the message of ganbatch's own errors, with the type for others (the
    original error's, through Ray's wrappers)."""
    return one_line(error)


# --------------------------------------------------------------------------------------------------- prepare


def prepare_item(item: WorkItem, targets: list[Target], crop: CropSpec, image_size: int) -> tuple[PreparedClip,
                                                                                                    Placement]:
    """Read, decode and crop the item's image and compute its per-frame targets; raises on any problem."""
    if item.problem:
        raise ItemError(item.problem)
    target = targets[item.target]
    photo = decode_image(storage.read_bytes(item.input), item.input)
    transform, found = None, None
    if crop.mode == "none":
        face = fit_to_size(photo, image_size)
    else:
        found = largest_face(_detector(crop).detect(photo))
        if found is None:
            raise ItemError(f"{item.input}: no face found (face backend {_detector(crop).name})")
        face, transform = crop_face(photo, found, image_size, margin=crop.margin)
    source_aus = NEUTRAL_AUS if item.source_aus is None else item.source_aus
    record = target.manifest_fields()
    if item.estimate_aus:
        source_aus = _estimated_aus(found if found is not None else photo, item.input, crop)
        record["source_aus"] = {name: round(float(value), 3) for name, value in zip(AU_NAMES, source_aus)}
    landmarks = None
    if target.needs_source_landmarks:  # the face's 66 points in the crop: from detection, else found on the crop
        if found is not None and found.landmarks is not None:
            landmarks = to_gannotation66(transform.apply(found.landmarks)).astype(np.float32)
        else:
            landmarks = _crop_landmarks(face, item.input, crop)
    schedule = target.schedule(source_aus, landmarks)
    clip = PreparedClip(face, schedule.targets(), schedule.input_first)
    placement = Placement(schedule.fps, photo if crop.pasteback else face, transform if crop.pasteback else None,
                          record)
    return clip, placement


def _detector(crop: CropSpec):
    return get_detector(crop.backend, "cpu")


def _estimated_aus(face: Union[Face, np.ndarray], name: str, crop: CropSpec) -> np.ndarray:
    """`source_aus: estimate`: the AUs of a detected face, or of the face found in the photo (`crop: none`, where
    the photo is the crop before its resize to the model's size)."""
    if isinstance(face, np.ndarray):
        face = largest_face(_detector(crop).detect(face))
    if face is None or face.landmarks is None:
        raise ItemError(f"{name}: no face landmarks found (face backend {_detector(crop).name}); source_aus: "
                        "estimate needs them")
    return load_au_estimator().predict(face.landmarks)[0]


def _crop_landmarks(face: np.ndarray, name: str, crop: CropSpec) -> np.ndarray:
    """The face's 66 GANnotation points found on the crop itself (inputs that are crops already)."""
    found = largest_face(_detector(crop).detect(face))
    if found is None or found.landmarks is None:
        raise ItemError(f"{name}: no face landmarks found in the crop (face backend {_detector(crop).name}); "
                        "a driving video needs them")
    return to_gannotation66(found.landmarks)


# --------------------------------------------------------------------------------------------------- generate


def generate_clips(runtime: Runtime, clips: list[PreparedClip], *, batch_size: int,
                   return_maps: bool = False) -> list[Clip]:
    """The frames (and with return_maps the attention maps) of several clips, see the module doc.

    The frames to generate (every frame but an input_first frame 0) of all clips are taken in order and cut into
    forward passes of at most batch_size frames, so short clips share a pass.
    """
    family = get_family(runtime.info.family)
    outputs, wanted = [], []  # per clip: its Clip; per generated frame: (clip index, frame index)
    for index, clip in enumerate(clips):
        count, side = len(clip.targets), clip.face.shape[0]
        frames = np.empty((count, side, side, 3), np.uint8)
        attention = np.empty((count, side, side), np.float32) if return_maps else None
        if clip.input_first:
            frames[0] = clip.face
            if return_maps:
                attention[0] = 1.0
        outputs.append(Clip(frames=frames, attention=attention))
        wanted += [(index, frame) for frame in range(int(clip.input_first), count)]
    inputs = [family.face_to_input(clip.face) for clip in clips]
    for start in range(0, len(wanted), batch_size):
        segments = _segments(wanted[start:start + batch_size])
        x = torch.cat([inputs[index].expand(stop - begin, -1, -1, -1) for index, begin, stop in segments])
        cond = torch.cat([family.targets_to_cond(clips[index].targets[begin:stop], clips[index].face.shape[0])
                          for index, begin, stop in segments])
        image, _, attention_map = runtime(x, cond)
        pixels = family.to_pixels(image)
        offset = 0
        for index, begin, stop in segments:
            outputs[index].frames[begin:stop] = pixels[offset:offset + stop - begin]
            if return_maps:
                outputs[index].attention[begin:stop] = attention_map[offset:offset + stop - begin, 0].numpy()
            offset += stop - begin
    return outputs


def _segments(frames: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """Consecutive (clip, frame) pairs grouped as (clip, first frame, stop frame)."""
    segments = []
    for index, frame in frames:
        if segments and segments[-1][0] == index and segments[-1][2] == frame:
            segments[-1] = (index, segments[-1][1], frame + 1)
        else:
            segments.append((index, frame, frame + 1))
    return segments


# --------------------------------------------------------------------------------------------------- encode


def encode_item(item: WorkItem, clip: Clip, placement: Placement, settings: ItemSettings) -> int:
    """Lay out and encode the clip's frames into the item's output (see the module doc); the frame count."""
    if storage.is_s3(item.output):
        _remove_orphaned_staging()
        with scratch.scratch_dir("video") as staging:
            local = staging / item.output.rsplit("/", 1)[-1]
            frames = _write_video(clip, placement, settings, local)
            _upload(local, item.output)
        return frames
    return _write_video(clip, placement, settings, Path(item.output))


@functools.cache
def _remove_orphaned_staging() -> None:
    """Once per process: the staging folders of uploads that killed workers on this machine left behind."""
    scratch.remove_orphans("video")


def _write_video(clip: Clip, placement: Placement, settings: ItemSettings, path: Path) -> int:
    """Encode the frames at path, batch_size frames at a time (paste-back works on photo-sized frames)."""
    output, step = settings.output, settings.batch_size
    with VideoWriter(path, fps=placement.fps, format=output.format, crf=output.crf) as writer:
        for start in range(0, len(clip.frames), step):
            frames = clip.frames[start:start + step]
            attention = None if clip.attention is None else clip.attention[start:start + step]
            if placement.transform is not None:
                frames = paste_back(placement.source, frames, attention, placement.transform,
                                    feather=settings.crop.feather)
            writer.write(compose_frames(frames, layout=output.layout, source=placement.source, attention=attention,
                                        size=output.size))
    return writer.frames_written


def _upload(local: Path, uri: str) -> None:
    """Upload a video file, or a folder of PNG frames under the prefix `uri`, its first frame last."""
    if local.is_dir():
        for frame in sorted(local.iterdir(), reverse=True):
            storage.upload_file(frame, storage.join(uri, frame.name))
    else:
        storage.upload_file(local, uri)


# --------------------------------------------------------------------------------------------------- one item


class ItemAnimator:
    """Makes items' videos one at a time in this process with one Runtime and the job's targets (no Ray)."""

    def __init__(self, runtime: Runtime, targets: list[Target], settings: ItemSettings):
        self.runtime = runtime
        self.size = runtime.info.image_size or get_family(runtime.info.family).default_image_size
        self.targets = targets
        self.settings = settings

    def animate(self, item: WorkItem) -> dict:
        """Make one item's video; returns its manifest row (status ok or failed)."""
        started = time.monotonic()
        row = {"input": item.input, "output": item.output, "model": self.settings.model, "target": item.label,
               "model_digest": self.settings.model_digest}
        try:
            clip, placement = prepare_item(item, self.targets, self.settings.crop, self.size)
            (frames,) = generate_clips(self.runtime, [clip], batch_size=self.settings.batch_size,
                                       return_maps=self.settings.needs_attention)
            count = encode_item(item, frames, placement, self.settings)
        except Exception as error:  # noqa: BLE001 - one item's failure, whatever it is, must not stop the batch
            return manifest_row(**row, status="failed", error=describe_error(error),
                                seconds=time.monotonic() - started)
        return manifest_row(**row, status="ok", frames=count, fps=placement.fps, seconds=time.monotonic() - started,
                            **placement.record)
