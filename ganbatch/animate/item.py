"""One video in three steps, none of which needs Ray: prepare, generate, encode.

- `prepare_item`: read the image (local or S3), decode it, crop the face (or fit the crop to the model's size), and
  compute the per-frame targets: a `PreparedClip` (what the generator needs) and a `Placement` (what the encoder
  needs besides the frames).
- generate: `ganbatch.render.render_clips`, the frames of several clips at once through a Runtime.
- `encode_item`: layout (side-by-side, mask, paste-back), ffmpeg, and an atomic write: a local output appears under
  its name only when complete; an S3 output is encoded to a local temporary file and uploaded whole (a PNG folder
  frame by frame, its first frame last: a re-run takes the first frame as the mark of a complete folder).

The Ray pipeline runs each step as its own stage (ganbatch.animate.stages); every failure of an item (unreadable or
corrupt image, no face, bad source AUs, an encoder error, ...) becomes a `failed` row naming the reason.
"""
import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
from ganbatch.io import scratch, storage
from ganbatch.animate.plan import WorkItem
from ganbatch.animate.targets import NEUTRAL_AUS, Target
from ganbatch.errors import one_line
from ganbatch.faces import CropTransform, Face, crop_face, fit_to_size, get_detector, largest_face, paste_back
from ganbatch.faces.au_estimator import load_au_estimator
from ganbatch.jobs.animate import CropSpec, OutputSpec
from ganbatch.io.images import decode_image
from ganbatch.io.video import VideoWriter
from ganbatch.layout import compose_frames
from ganbatch.clips import Clip, PreparedClip
from ganbatch.targets import AU_NAMES, to_gannotation66


class ItemError(Exception):
    """An item that cannot be made, for a reason worth reporting as it is (e.g. no face found)."""


# Frames laid out (and pasted back) per write to the encoder: bounds the photo-sized frames held at once.
ENCODE_CHUNK = 16


@dataclass(frozen=True)
class ItemSettings:
    """How every item is made: face crops, video output, and the model's URI and tensor digest (recorded in manifest
    rows). (Frames per generator call are the generator actors' setting: stages.GeneratorSpec.)"""

    model: str
    crop: CropSpec
    output: OutputSpec
    model_digest: Optional[str] = None

    @property
    def needs_attention(self) -> bool:
        """Whether encoding uses the attention maps (paste-back, or the with-mask layout)."""
        return self.crop.pasteback or self.output.layout == "with-mask"

    @property
    def encode_needs_torch(self) -> bool:
        """Whether encoding resamples frames with torch: paste-back, or panels rescaled to `output.size`."""
        return self.crop.pasteback or self.output.size is not None


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
    """Encode the frames at path, ENCODE_CHUNK frames at a time (paste-back works on photo-sized frames)."""
    output, step = settings.output, ENCODE_CHUNK
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
