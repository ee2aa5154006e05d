"""Keyframes in the job schema's form -> a `ganbatch.targets.Schedule`: a keyframes YAML file or a job's inline
keyframes, validated as a `KeyframesFile` (whose keyframes are the `KeyframeSpec` of jobs/animate.py, so a keyframe
file and a job's inline keyframes follow the same rules), then built with the pure schedule layer.

The dict form is described in `ganbatch.targets.schedule`.
"""
import os
from typing import Any, Mapping, Optional, Union

import numpy as np
import yaml
from pydantic import Field, ValidationError

from ganbatch import safe_yaml
from ganbatch.jobs.animate import KeyframeSpec
from ganbatch.jobs.common import StrictModel
from ganbatch.jobs.problems import Origin
from ganbatch.jobs.validation import validation_problems
from ganbatch.targets.aus import NUM_AUS, apply_aus, check_aus, expression_aus
from ganbatch.targets.landmarks import as_frames, read_landmarks
from ganbatch.targets.schedule import Keyframe, Schedule, ScheduleError


class KeyframesFile(StrictModel):
    """The dict form of a schedule (see the module doc): timing, and keyframes in the job schema's KeyframeSpec."""

    fps: float = Field(25.0, gt=0, description="frames per second")
    duration: Optional[float] = Field(None, gt=0, description="seconds of the path")
    frames: Optional[int] = Field(None, ge=1, description="frame count of the path (instead of duration)")
    pingpong: bool = Field(False, description="then play it backwards to the start")
    loop: int = Field(1, ge=1, description="how many times the (ping-ponged) path plays")
    input_first: bool = Field(False, description="frame 0 of the video is the untouched input image")
    keyframes: list[KeyframeSpec] = Field(min_length=1)


def _where(path: tuple) -> str:
    """`keyframe 1, field 'aus'` for a problem at keyframes[1].aus..., `schedule, field 'fps'` for one at fps."""
    if path[:1] == ("keyframes",) and len(path) > 1:
        return f"keyframe {path[1]}" + (f", field '{path[2]}'" if len(path) > 2 else "")
    return "schedule" + (f", field '{path[0]}'" if path else "")


def _validated(spec: Any) -> KeyframesFile:
    """`spec` validated as a KeyframesFile; a ScheduleError naming each problem's keyframe and field."""
    try:
        return KeyframesFile.model_validate(spec)
    except ValidationError as error:
        problems = validation_problems(error.errors(), spec, KeyframesFile, lambda path: Origin("schedule"))
        raise ScheduleError("; ".join(f"{_where(p.path)}: {p.message}" for p in problems)) from None


def _keyframe_value(index: int, keyframe: KeyframeSpec, base_aus, base_dir: Optional[str]) -> np.ndarray:
    """The AU vector or landmark set of a validated keyframe (its landmark file read relative to `base_dir`)."""
    if keyframe.landmarks is not None:
        try:
            if isinstance(keyframe.landmarks, str):
                path = os.path.join(base_dir, keyframe.landmarks) if base_dir else keyframe.landmarks
                points = read_landmarks(path)
            else:
                points = as_frames(keyframe.landmarks, "inline landmarks")
        except (OSError, ValueError) as error:  # a LandmarkError is a ValueError
            raise ScheduleError(f"keyframe {index}, field 'landmarks': {error}") from None
        if len(points) != 1:
            raise ScheduleError(f"keyframe {index}, field 'landmarks': {len(points)} frames; a keyframe takes one "
                                "landmark set")
        return points[0]
    value = expression_aus(keyframe.preset, keyframe.intensity) if keyframe.preset is not None else base_aus
    return apply_aus(value, keyframe.aus) if keyframe.aus else value


def schedule_from_dict(
    spec: Mapping[str, Any],
    *,
    base_aus=None,
    base_dir: Optional[Union[str, os.PathLike]] = None,
) -> Schedule:
    """Build a Schedule from the plain-dict form described in this module's docstring.

    `base_aus` (17,) is what `aus` apply over in keyframes without a preset (default: neutral, all zeros);
    relative landmark paths are taken relative to `base_dir`. None values count as absent.
    """
    validated = _validated(spec)
    directory = os.fspath(base_dir) if base_dir is not None else None
    base_aus = np.zeros(NUM_AUS, np.float32) if base_aus is None else check_aus(base_aus, "base_aus")
    keyframes = [
        Keyframe(value=_keyframe_value(index, keyframe, base_aus, directory), easing=keyframe.easing,
                 **({"at": keyframe.at} if keyframe.at is not None else {"frame": keyframe.frame}))
        for index, keyframe in enumerate(validated.keyframes)
    ]
    timing = validated.model_dump(exclude={"keyframes"})
    try:
        return Schedule(keyframes=keyframes, **timing)
    except ScheduleError as error:
        raise ScheduleError(f"schedule: {error}") from None


def read_keyframes(path: Union[str, os.PathLike], *, base_aus=None) -> Schedule:
    """Load a keyframes YAML file (the dict form, or a bare list of keyframes) as a Schedule."""
    try:
        spec = safe_yaml.safe_load(safe_yaml.read_text(path))
    except yaml.YAMLError as error:
        raise ScheduleError(f"{os.fspath(path)}: not valid YAML ({safe_yaml.describe_error(error)})") from None
    except (OSError, UnicodeDecodeError, safe_yaml.YamlLimitError) as error:
        raise ScheduleError(f"{os.fspath(path)}: cannot read keyframes ({error})") from None
    if isinstance(spec, list):
        spec = {"keyframes": spec}
    try:
        return schedule_from_dict(spec, base_aus=base_aus, base_dir=os.path.dirname(os.path.abspath(path)))
    except ScheduleError as error:
        raise ScheduleError(f"{os.fspath(path)}: {error}") from None
