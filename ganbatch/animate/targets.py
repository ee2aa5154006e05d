"""Job targets -> per-frame generator targets: TargetSpec plus a face's source AUs/landmarks -> a Schedule.

`load_targets` runs once in the driver: it reads every target file (OpenFace CSVs, landmark files, keyframe YAML and
the landmark files it names), expands `aus_csv_mode: per-row` into one target per row, and leaves each Target a
self-contained, picklable value for the workers. `Target.schedule(source_aus, source_landmarks)` then builds one
face's Schedule (see ganbatch.targets.schedule); `Schedule.targets()` gives GANimation (T, 17) AU vectors or
GANnotation (T, 66, 2) points in the crop's pixel frame.

Driving videos are read separately (`read_driving_videos`), as finding their landmarks takes a face detector: a
GANnotation model follows their landmarks (`DrivingTarget`), a GANimation model the AUs estimated from them
(`DrivingAUTarget`, see `for_condition`).
"""
import abc
import dataclasses
import logging
import os
import posixpath
from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np
import yaml

from ganbatch import safe_yaml
from ganbatch.io import storage
from ganbatch.io.video import missing_frames, open_video
from ganbatch.faces import largest_face
from ganbatch.faces.tracks import hold_missing
from ganbatch.jobs.animate import TargetSpec
from ganbatch.jobs.keyframes import schedule_from_dict
from ganbatch.targets import (
    AU_SCALE,
    NUM_AUS,
    AUError,
    Keyframe,
    Schedule,
    ScheduleError,
    apply_aus,
    expression_aus,
    expression_schedule,
    read_aus_pkl,
    read_landmarks,
    read_openface_csv,
    to_gannotation66,
)
from ganbatch.targets.aus import aus_problem

DEFAULT_DURATION = 2.0
DEFAULT_VIDEO_FPS = 25.0  # a video whose header gives no frame rate
TIMING_FIELDS = ("fps", "duration", "frames", "pingpong", "input_first")
NEUTRAL_AUS = np.zeros(NUM_AUS, np.float32)

log = logging.getLogger(__name__)


class TargetError(ValueError):
    """A target that cannot be used: an unreadable target file, or a target that does not fit the model."""


@dataclass(frozen=True)
class Target(abc.ABC):
    """A named target path, ready for the workers; subclasses say how a face's schedule is built."""

    label: str
    spec: TargetSpec
    problem: Optional[str] = dataclasses.field(default=None, kw_only=True)  # why its items cannot be made
    needs_source_landmarks: ClassVar[bool] = False

    def check_usable(self) -> None:
        """TargetError with `problem` when the target file's values cannot drive a video (each item fails alone)."""
        if self.problem:
            raise TargetError(self.problem)

    @property
    @abc.abstractmethod
    def condition(self) -> str:
        """The model condition this target produces: "aus" (GANimation) or "landmarks" (GANnotation)."""

    def manifest_fields(self) -> dict:
        """Fields this target adds to its videos' manifest rows (see ganbatch.animate.manifest)."""
        return {}

    @abc.abstractmethod
    def schedule(self, source_aus: np.ndarray, source_landmarks: Optional[np.ndarray] = None) -> Schedule:
        """The Schedule for one face, given its AU vector (17,) and, where needed, its (66, 2) crop landmarks."""


@dataclass(frozen=True)
class ExpressionTarget(Target):
    """From the face's own AUs to an end AU vector: a preset (or an OpenFace row) with `aus` over it, or `aus`
    over the face's own AUs when there is no preset."""

    preset_aus: Optional[np.ndarray] = None
    aus: tuple[tuple[str, float], ...] = ()

    @property
    def condition(self) -> str:
        return "aus"

    def schedule(self, source_aus, source_landmarks=None):
        self.check_usable()
        end = apply_aus(source_aus if self.preset_aus is None else self.preset_aus, dict(self.aus))
        spec = self.spec
        duration = DEFAULT_DURATION if spec.duration is None and spec.frames is None else spec.duration
        return expression_schedule(source_aus, end, fps=spec.fps, frames=spec.frames, duration=duration,
                                   easing=spec.easing, pingpong=spec.pingpong, input_first=spec.input_first)


@dataclass(frozen=True)
class KeyframeTarget(Target):
    """Keyframes in the schedule module's dict form, landmark files already read into inline points."""

    schedule_spec: dict

    @property
    def condition(self) -> str:
        keyframes = self.schedule_spec["keyframes"]
        return "landmarks" if any("landmarks" in keyframe for keyframe in keyframes) else "aus"

    def schedule(self, source_aus, source_landmarks=None):
        return schedule_from_dict(self.schedule_spec, base_aus=source_aus)


def sequence_schedule(values: np.ndarray, spec: TargetSpec) -> Schedule:
    """One keyframe per frame of `values` (T, ...); `frames`/`duration` trim the sequence or hold its last frame."""
    length = spec.frames if spec.frames is not None else (
        round(spec.duration * spec.fps) if spec.duration is not None else len(values))
    keyframes = [Keyframe(frame=index, value=value) for index, value in enumerate(values[:length])]
    return Schedule(keyframes=keyframes, fps=spec.fps, frames=length, pingpong=spec.pingpong,
                    input_first=spec.input_first)


@dataclass(frozen=True)
class SequenceTarget(Target):
    """A given value per frame: AU rows of an OpenFace CSV (T, 17) or GANnotation points (T, 66, 2)."""

    values: np.ndarray

    @property
    def condition(self) -> str:
        return "aus" if self.values.shape[1:] == (NUM_AUS,) else "landmarks"

    def schedule(self, source_aus, source_landmarks=None):
        self.check_usable()
        return sequence_schedule(self.values, self.spec)


@dataclass(frozen=True)
class DrivingTarget(Target):
    """The landmark motion of a driving video, relative to its first frame, applied to the face's own landmarks.

    The motion is scaled by the ratio of the two faces' sizes (RMS distance of the points from their centroid).
    `driving` holds the video's (T, 66, 2) points once `with_driving_landmarks` has read them.
    """

    driving: Optional[np.ndarray] = None
    held: int = 0  # driving frames without a face, which hold the nearest earlier frame's value
    needs_source_landmarks: ClassVar[bool] = True

    @property
    def condition(self) -> str:
        return "landmarks"

    def manifest_fields(self) -> dict:
        return {"driving_held_frames": self.held}

    def schedule(self, source_aus, source_landmarks=None):
        if self.driving is None:
            raise TargetError(f"target '{self.label}': the driving video's landmarks were not read")
        if source_landmarks is None:
            raise TargetError(f"target '{self.label}': needs the face's landmarks")
        scale = face_scale(source_landmarks) / face_scale(self.driving[0])
        values = source_landmarks[None] + scale * (self.driving - self.driving[:1])
        return sequence_schedule(values.astype(np.float32), self.spec)


@dataclass(frozen=True)
class DrivingAUTarget(Target):
    """A driving video for a GANimation model: the driving face's AUs per frame (estimated from its landmarks by
    ganbatch.faces.au_estimator), relative to its first frame, added to the face's own AUs and clipped to 0-5.

    `driving` holds the video's (T, 17) AUs once `read_driving_videos` has estimated them.
    """

    driving: Optional[np.ndarray] = None
    held: int = 0  # driving frames without a face, which hold the nearest earlier frame's AUs

    @property
    def condition(self) -> str:
        return "aus"

    def manifest_fields(self) -> dict:
        return {"driving_held_frames": self.held}

    def schedule(self, source_aus, source_landmarks=None):
        if self.driving is None:
            raise TargetError(f"target '{self.label}': the driving video's AUs were not estimated")
        values = np.clip(np.asarray(source_aus)[None] + self.driving - self.driving[:1], 0.0, AU_SCALE)
        return sequence_schedule(values.astype(np.float32), self.spec)


def for_condition(targets: list[Target], condition: str) -> list[Target]:
    """The targets for a model conditioned on `condition`: driving videos follow AUs for an "aus" model."""
    if condition != "aus":
        return targets
    return [DrivingAUTarget(target.label, target.spec) if isinstance(target, DrivingTarget) else target
            for target in targets]


def face_scale(points: np.ndarray) -> float:
    """Size of a landmark set: the RMS distance of its (N, 2) points from their centroid."""
    points = np.asarray(points, dtype=np.float64)
    return float(np.sqrt(((points - points.mean(axis=0)) ** 2).sum(axis=1).mean()))


def _read(uri: str) -> bytes:
    """The content of a target file; TargetError naming it when it cannot be read."""
    try:
        return storage.read_bytes(uri)
    except storage.StorageError as error:
        raise TargetError(f"cannot read {uri}: {error.reason}") from None


def _landmark_frames(uri: str) -> np.ndarray:
    """A landmark file as (T, 66, 2) GANnotation points."""
    try:
        return to_gannotation66(read_landmarks(_read(uri)))
    except ValueError as error:
        raise TargetError(f"{uri}: {error}") from None


def _resolve(uri: str, base: Optional[str]) -> str:
    """`uri` relative to the folder/prefix `base` when it is a relative local path."""
    if base is None or "://" in uri or os.path.isabs(uri):
        return uri
    return storage.join(base, uri)


def _schedule_spec(spec: TargetSpec) -> dict:
    """The dict form of an inline or file keyframe target, target timing fields given in the job taking precedence."""
    if isinstance(spec.keyframes, str):
        uri = spec.keyframes
        try:
            loaded = safe_yaml.safe_load(_read(uri))
        except safe_yaml.YamlLimitError as error:
            raise TargetError(f"{uri}: refused: {error}") from None
        except yaml.YAMLError as error:
            raise TargetError(f"{uri}: not valid YAML ({safe_yaml.describe_error(error)})") from None
        loaded = {"keyframes": loaded} if isinstance(loaded, list) else loaded
        if not isinstance(loaded, dict) or not isinstance(loaded.get("keyframes"), list):
            raise TargetError(f"{uri}: expected a list of keyframes, or a mapping with a 'keyframes' list")
        base, where = posixpath.dirname(uri) or ".", uri
        keyframes, timing = loaded.pop("keyframes"), loaded
        given = spec.model_fields_set
    else:
        base, where = None, f"target '{spec.label}'"
        keyframes = [keyframe.model_dump(exclude_unset=True, exclude_none=True) for keyframe in spec.keyframes]
        timing, given = {}, set(TIMING_FIELDS)
    timing = dict(timing)
    if {"duration", "frames"} & given:
        timing.pop("duration", None)
        timing.pop("frames", None)
    timing.update({name: getattr(spec, name) for name in TIMING_FIELDS if name in given})
    inline = []
    for keyframe in keyframes:
        if isinstance(keyframe, dict) and isinstance(keyframe.get("landmarks"), str):
            keyframe = dict(keyframe)
            points = _landmark_frames(_resolve(keyframe["landmarks"], base))
            if len(points) != 1:
                raise TargetError(f"{where}: keyframe landmarks {keyframe['landmarks']} hold {len(points)} frames; "
                                  "a keyframe takes one landmark set")
            keyframe["landmarks"] = points[0].tolist()
        inline.append(keyframe)
    return {**timing, "keyframes": inline}


def _csv_targets(spec: TargetSpec) -> list[Target]:
    try:
        table = read_openface_csv(_read(spec.aus_csv))
    except AUError as error:
        raise TargetError(f"{spec.aus_csv}: {error}") from None
    if len(table) == 0:
        raise TargetError(f"{spec.aus_csv}: no rows")
    problems = [None if problem is None else f"{spec.aus_csv}, line {line}: {problem}"
                for line, problem in zip(table.lines, map(aus_problem, table.aus))]
    if spec.aus_csv_mode == "path":
        return [SequenceTarget(spec.label, spec, values=table.aus,
                               problem=next((problem for problem in problems if problem), None))]
    names = table.names or tuple(str(index) for index in range(len(table)))
    return [ExpressionTarget(f"{spec.label}-{os.path.splitext(name)[0]}", spec, preset_aus=row, problem=problem)
            for name, row, problem in zip(names, table.aus, problems)]


def _expression_target(spec: TargetSpec) -> ExpressionTarget:
    preset_aus = None
    if spec.expression:
        name, _, strength = spec.expression.partition(":")
        preset_aus = expression_aus(name, float(strength) if strength else 1.0)
    return ExpressionTarget(spec.label, spec, preset_aus=preset_aus, aus=tuple(spec.aus.items()))


def load_targets(specs: list[TargetSpec]) -> list[Target]:
    """The job's targets, target files read; per-row CSV targets become one target per row, labelled LABEL-ROW
    (ROW: the row's `name` without extension, else its index). Raises TargetError naming the file and the problem."""
    targets: list[Target] = []
    for spec in specs:
        if spec.keyframes is not None:
            targets.append(KeyframeTarget(spec.label, spec, schedule_spec=_schedule_spec(spec)))
        elif spec.aus_csv:
            targets += _csv_targets(spec)
        elif spec.landmarks:
            targets.append(SequenceTarget(spec.label, spec, values=_landmark_frames(spec.landmarks)))
        elif spec.driving_video:
            targets.append(DrivingTarget(spec.label, spec))
        else:
            targets.append(_expression_target(spec))
    for target in targets:  # catch bad timing or keyframes now, not once per face
        if target.problem:
            log.warning("target '%s': %s; its videos will fail", target.label, target.problem)
        elif not target.needs_source_landmarks:
            try:
                target.schedule(NEUTRAL_AUS)
            except (ScheduleError, AUError) as error:
                raise TargetError(f"target '{target.label}': {error}") from None
    labels = [target.label for target in targets]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise TargetError(f"targets need distinct names; repeated: {', '.join(repeated)}")
    return targets


LANDMARK_MARGIN = 1.0  # how far landmark targets may lie outside the crop, in crop sizes


def check_landmark_range(targets: list[Target], image_size: int) -> None:
    """TargetError naming the file for landmark targets (GANnotation points, in the crop's pixels) that lie more
    than LANDMARK_MARGIN crop sizes outside the `image_size` crop: a unit or layout mistake (a 1e30 was accepted and
    drew nothing)."""
    low, high = -LANDMARK_MARGIN * image_size, (1 + LANDMARK_MARGIN) * image_size
    for target in targets:
        if isinstance(target, SequenceTarget) and target.condition == "landmarks":
            sets, where = target.values, target.spec.landmarks or f"target '{target.label}'"
        elif isinstance(target, KeyframeTarget) and target.condition == "landmarks":
            sets = [np.asarray(keyframe["landmarks"], np.float64) for keyframe in target.schedule_spec["keyframes"]
                    if "landmarks" in keyframe]
            where = target.spec.keyframes if isinstance(target.spec.keyframes, str) else f"target '{target.label}'"
        else:
            continue
        for frame, points in enumerate(sets, start=1):
            outside = np.argwhere(~((np.asarray(points) >= low) & (np.asarray(points) <= high)))
            if len(outside):
                point, axis = outside[0]
                value = np.asarray(points)[point, axis]
                raise TargetError(f"{where}: landmark {'xy'[axis]} = {value:g} (frame {frame}, point {point + 1}) "
                                  f"lies outside the {image_size}-px crop by more than its size (allowed "
                                  f"{low:g}..{high:g}); landmark targets are in the crop's pixels")


def check_condition(targets: list[Target], family_name: str, condition: str, model: str) -> None:
    """Raise TargetError naming each target whose kind does not fit the model's condition ("aus"/"landmarks"): the
    one condition check, of the dry run (the model's header) and of the run."""
    advice = {"aus": "expression, aus, aus_csv or AU keyframes (--expression, --au, --aus-csv, --keyframes)",
              "landmarks": "landmarks, driving_video or landmark keyframes (--landmarks, --driving-video, --keyframes)"}
    problems = [f"target '{target.label}' gives {target.condition}, but {model} is a {family_name} model, "
                f"conditioned on {condition}: use {advice[condition]}" for target in targets
                if target.condition != condition]
    if problems:
        raise TargetError("; ".join(problems))


def video_face_landmarks(uri: str, detector) -> tuple[list[Optional[np.ndarray]], float]:
    """The (68, 2) landmarks of the largest face in every frame of the video at `uri` (None where there is none),
    and its frame rate (DEFAULT_VIDEO_FPS when its header has none).

    Raises TargetError naming the video when it cannot be read or decoded, has no face at all, or the detector gives
    no landmarks.
    """
    points = []
    try:
        with storage.local_copy(uri) as path, open_video(path) as (meta, frames):
            for frame in frames:
                face = largest_face(detector.detect(frame))
                if face is not None and face.landmarks is None:
                    raise TargetError(f"{uri}: face backend '{detector.name}' finds no landmarks; use "
                                      "face-alignment or dlib (crop.backend, --detector)")
                points.append(None if face is None else face.landmarks)
    except (storage.StorageError, OSError, RuntimeError) as error:
        reason = " ".join(str(error).split("=== stderr ===")[0].split())  # imageio-ffmpeg appends ffmpeg's banner
        raise TargetError(f"{uri}: cannot read the video ({reason})") from None
    short = missing_frames(meta, len(points))
    if short:  # a shared target cut short would make every video short: an error before any work, not N warnings
        raise TargetError(f"{uri}: {short}")
    if not any(value is not None for value in points):
        raise TargetError(f"{uri}: no face found in any of its {len(points)} frames")
    return points, float(meta.get("fps") or DEFAULT_VIDEO_FPS)


def driving_landmarks(uri: str, detector) -> np.ndarray:
    """(T, 66, 2) landmarks of the largest face in every frame of the video at `uri`; frames where no face is found
    repeat the nearest earlier frame's landmarks (the first found, at the start)."""
    return _driving_landmarks(uri, detector)[0]


def _driving_landmarks(uri: str, detector) -> tuple[np.ndarray, int]:
    points, _ = video_face_landmarks(uri, detector)
    values, held = hold_missing([None if p is None else to_gannotation66(p) for p in points])
    return values.astype(np.float32), held


def driving_aus(uri: str, detector, estimator) -> tuple[np.ndarray, int]:
    """(T, 17) AUs that `estimator`'s video read-out reads off the largest face in every frame of the video at `uri`
    (raw, not clipped to 0-5, so changes near 0 count; `AUEstimator.read_video`: frames without a face hold an
    earlier frame's, the whole smoothed over time), and the number of held frames."""
    points, fps = video_face_landmarks(uri, detector)
    read = estimator.read_video(points, fps, clip=False)
    return read.aus, read.held


def read_driving_videos(targets: list[Target], detector_for) -> list[Target]:
    """The targets with every driving video read: landmarks for a DrivingTarget, AUs (ganbatch's bundled estimator)
    for a DrivingAUTarget; `detector_for()` gives the face detector."""
    ready = []
    for target in targets:
        if isinstance(target, DrivingTarget):
            driving, held = _driving_landmarks(target.spec.driving_video, detector_for())
            target = dataclasses.replace(target, driving=driving, held=held)
        elif isinstance(target, DrivingAUTarget):
            from ganbatch.faces.au_estimator import load_au_estimator

            driving, held = driving_aus(target.spec.driving_video, detector_for(), load_au_estimator())
            target = dataclasses.replace(target, driving=driving, held=held)
        ready.append(target)
    return ready


def read_source_aus(uri: str) -> dict[str, np.ndarray]:
    """Image name -> AU vector (17,) from an OpenFace CSV with a `name` column, or a GANimation aus_openface.pkl.

    CSV rows whose `success` is 0 (no face found, as OpenFace and `ganbatch aus` mark them) are left out."""
    data = _read(uri)
    try:
        if uri.lower().endswith(".pkl"):
            return read_aus_pkl(data)
        table = read_openface_csv(data)
    except AUError as error:
        raise TargetError(f"{uri}: {error}") from None
    if table.names is None:
        raise TargetError(f"{uri}: source AUs need a 'name' column naming each row's image")
    found = np.ones(len(table), bool) if table.success is None else table.success
    return {name: aus for name, aus, ok in zip(table.names, table.aus, found) if ok}


def source_aus_for(table: dict[str, np.ndarray], image_uri: str, source: str) -> np.ndarray:
    """The AU vector of an image, looked up by file name, then by name without extension; AUError if absent."""
    name = image_uri.rstrip("/").rsplit("/", 1)[-1]
    for key in (name, os.path.splitext(name)[0]):
        if key in table:
            return np.asarray(table[key], dtype=np.float32)
    raise AUError(f"no source AUs for {name} in {source}")
