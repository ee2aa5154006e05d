"""One video, start to finish, with no Ray: read -> decode -> crop -> schedule -> render -> compose -> encode -> write.

`ItemAnimator` holds a loaded generator and the job's targets and settings; `animate(item)` makes one item's video
and returns its manifest row. Every failure of an item (unreadable or corrupt image, no face, bad source AUs, an
encoder error, ...) becomes a `failed` row naming the reason; nothing raised by one item stops the others.

Frames are generated `batch_size` at a time and each chunk goes to the encoder (an ffmpeg subprocess) as soon as it
is ready, so encoding overlaps generation. Local outputs are written in place (atomically); S3 outputs are encoded
to a temporary file, then uploaded.
"""
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ganbatch import storage
from ganbatch.animate.manifest import manifest_row
from ganbatch.animate.plan import WorkItem
from ganbatch.animate.targets import NEUTRAL_AUS, Target
from ganbatch.faces import CropTransform, crop_face, fit_to_size, get_detector, largest_face, paste_back
from ganbatch.jobs.animate import CropSpec, OutputSpec
from ganbatch.media import VideoWriter, compose_frames, decode_image
from ganbatch.models.checkpoint import GeneratorInfo
from ganbatch.models.families import get_family
from ganbatch.models.networks import AttentionGenerator
from ganbatch.render import Clip, render_clip
from ganbatch.targets import to_gannotation66


class ItemError(Exception):
    """An item that cannot be made, for a reason worth reporting as it is (e.g. no face found)."""


@dataclass(frozen=True)
class ItemSettings:
    """How every item is made: face crops, video output, generator batching and precision, and the model's URI
    (recorded in manifest rows)."""

    model: str
    crop: CropSpec
    output: OutputSpec
    batch_size: int
    precision: str


@dataclass(frozen=True)
class FaceCrop:
    """The model-sized face of a photo; with detection, also the photo, the crop's transform and the face's
    (68, 2) landmarks in the photo."""

    face: np.ndarray
    photo: Optional[np.ndarray] = None
    transform: Optional[CropTransform] = None
    landmarks: Optional[np.ndarray] = None


def stream_clip(generator: AttentionGenerator, info: GeneratorInfo, face: np.ndarray, targets: np.ndarray, *,
                batch_size: int, device, precision: str = "fp32", input_first: bool = False,
                return_maps: bool = False) -> Iterator[Clip]:
    """`render_clip` in consecutive pieces of at most batch_size generated frames, yielded as they are made.

    The pieces are exactly render_clip's generator batches (with input_first, the first piece also holds the
    untouched input frame), so their concatenation equals render_clip(..., chunk_size=batch_size).
    """
    first = int(input_first) + batch_size
    starts = [0, *range(first, len(targets), batch_size)]
    for index, start in enumerate(starts):
        stop = starts[index + 1] if index + 1 < len(starts) else len(targets)
        yield render_clip(generator, info, face, targets[start:stop], chunk_size=batch_size, device=device,
                          precision=precision, input_first=input_first and start == 0, return_maps=return_maps)


def describe_error(error: Exception) -> str:
    """A one-line reason for a manifest row: the message of ganbatch's own errors, with the type for others."""
    message = " ".join(str(error).split())
    own = type(error).__module__.startswith("ganbatch.")
    return message if own and message else f"{type(error).__name__}: {message}".rstrip(": ")


class ItemAnimator:
    """Makes items' videos with one generator (moved to `device`) and the job's targets; see the module doc."""

    def __init__(self, generator: AttentionGenerator, info: GeneratorInfo, targets: list[Target],
                 settings: ItemSettings, device: str = "cpu"):
        self.generator = generator.to(device).eval()
        self.info = info
        self.family = get_family(info.family)
        self.size = info.image_size or self.family.default_image_size
        self.targets = targets
        self.settings = settings
        self.device = device

    def animate(self, item: WorkItem) -> dict:
        """Make one item's video; returns its manifest row (status ok or failed)."""
        started = time.monotonic()
        target = self.targets[item.target]
        row = {"input": item.input, "output": item.output, "model": self.settings.model, "target": item.label}
        try:
            if item.problem:
                raise ItemError(item.problem)
            frames, fps = self._make(item, target)
        except Exception as error:  # noqa: BLE001 - one item's failure, whatever it is, must not stop the batch
            return manifest_row(**row, status="failed", error=describe_error(error),
                                seconds=time.monotonic() - started)
        return manifest_row(**row, status="ok", frames=frames, fps=fps, seconds=time.monotonic() - started)

    def _make(self, item: WorkItem, target: Target) -> tuple[int, float]:
        image = decode_image(storage.read_bytes(item.input), item.input)
        crop = self._crop(image, item.input)
        source_aus = NEUTRAL_AUS if item.source_aus is None else item.source_aus
        landmarks = self._crop_landmarks(crop, item.input) if target.needs_source_landmarks else None
        schedule = target.schedule(source_aus, landmarks)
        if storage.is_s3(item.output):
            with tempfile.TemporaryDirectory(prefix="ganbatch-video-") as staging:
                local = Path(staging) / item.output.rsplit("/", 1)[-1]
                frames = self._encode(crop, schedule, local)
                _upload(local, item.output)
        else:
            frames = self._encode(crop, schedule, Path(item.output))
        return frames, schedule.fps

    def _crop(self, image: np.ndarray, name: str) -> FaceCrop:
        if self.settings.crop.mode == "none":
            return FaceCrop(fit_to_size(image, self.size))
        found = largest_face(self._detector().detect(image))
        if found is None:
            raise ItemError(f"{name}: no face found (face backend {self._detector().name})")
        face, transform = crop_face(image, found, self.size, margin=self.settings.crop.margin)
        return FaceCrop(face, photo=image, transform=transform,
                        landmarks=found.landmarks)

    def _crop_landmarks(self, crop: FaceCrop, name: str) -> np.ndarray:
        """The face's 66 GANnotation points in the crop: from detection, else found on the crop itself."""
        if crop.landmarks is not None:
            return to_gannotation66(crop.transform.apply(crop.landmarks)).astype(np.float32)
        found = largest_face(self._detector().detect(crop.face))
        if found is None or found.landmarks is None:
            raise ItemError(f"{name}: no face landmarks found in the crop (face backend {self._detector().name}); "
                            "a driving video needs them")
        return to_gannotation66(found.landmarks)

    def _detector(self):
        return get_detector(self.settings.crop.backend, self.device)

    def _encode(self, crop: FaceCrop, schedule, path: Path) -> int:
        """Render the schedule's frames chunk by chunk into the video at path; returns the frame count."""
        output, crop_spec = self.settings.output, self.settings.crop
        pasteback = crop_spec.pasteback
        maps = pasteback or output.layout == "with-mask"
        source = crop.photo if pasteback else crop.face
        chunks = stream_clip(self.generator, self.info, crop.face, schedule.targets(),
                             batch_size=self.settings.batch_size, device=self.device,
                             precision=self.settings.precision, input_first=schedule.input_first, return_maps=maps)
        with VideoWriter(path, fps=schedule.fps, format=output.format, crf=output.crf) as writer:
            for clip in chunks:
                frames = clip.frames
                if pasteback:
                    frames = paste_back(crop.photo, frames, clip.attention, crop.transform, feather=crop_spec.feather)
                writer.write(compose_frames(frames, layout=output.layout, source=source, attention=clip.attention,
                                            size=output.size))
        return writer.frames_written


def _upload(local: Path, uri: str) -> None:
    """Upload a video file, or a folder of PNG frames under the prefix `uri`, its first frame last (a re-run takes
    the first frame as the mark of a complete folder)."""
    if local.is_dir():
        for frame in sorted(local.iterdir(), reverse=True):
            storage.upload_file(frame, storage.join(uri, frame.name))
    else:
        storage.upload_file(local, uri)
