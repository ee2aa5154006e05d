"""Per-frame target paths: keyframes joined by eased segments, optionally ping-ponged and looped.

A Schedule turns keyframes into one target per video frame: AU vectors (T, 17) for GANimation or landmark sets
(T, N, 2) for GANnotation. Keyframes sit at a time in seconds (`at`, rounded to the nearest frame) or at a frame
index; before the first keyframe its value holds, after the last one its value holds. Each keyframe's `easing`
shapes the segment that starts there:

- `linear`: constant speed;
- `ease-in-out`: smoothstep, 3t^2 - 2t^3 (starts and ends at rest);
- `hold`: the keyframe's value until the next keyframe's frame, then a jump;
- `cubic`: a C1 curve through all keyframe values, the monotone piecewise-cubic Hermite interpolant (PCHIP,
  Fritsch & Carlson). Unlike Catmull-Rom it never overshoots: between two keyframes the path stays within their
  values, so AU intensities stay in 0-5 and a plateau of equal keyframes stays flat.

The plain-dict form (`ganbatch.jobs.keyframes.schedule_from_dict`, which validates it with the job schema and
builds a Schedule; `read_keyframes` loads it from YAML; job files reuse these keys):

    fps: 25              # frames per second (default 25)
    duration: 2.0        # seconds of the path, or
    frames: 50           # its frame count; with neither, the path ends at the last keyframe
    pingpong: true       # then play it backwards to the start (2 * frames - 1 frames in all)
    loop: 1              # how many times the (ping-ponged) path plays (default 1)
    input_first: false   # frame 0 of the video is the untouched input image (the renderer does this)
    keyframes:
      - {at: 0.0, preset: neutral}                       # at: seconds, or frame: index
      - {at: 0.8, preset: happy, intensity: 0.9, easing: ease-in-out}
      - {at: 1.5, aus: {AU12: 4.0, AU25: 2.0}, easing: hold}
      - {frame: 40, preset: surprise, aus: {AU26: 1.0}}  # aus override the preset's intensities

A keyframe holds an expression (`preset`, with `intensity` scaling it, and/or `aus` set over the preset, or over the
base AUs when there is no preset) or a landmark set (`landmarks`: a file path, relative to the YAML file, or an
inline [[x, y], ...] list). One schedule holds one kind: all AU keyframes or all landmark keyframes. A keyframe at
the very end of `duration` lands on the last frame. This module is pure numpy: the schema builds schedules, not the
reverse.
"""
import numbers
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from ganbatch import choices
from ganbatch.limits import MAX_FRAMES


class ScheduleError(ValueError):
    """A schedule that cannot be built: bad keyframes, timing or fields. Messages name the keyframe and field."""


def linear(t: np.ndarray) -> np.ndarray:
    """Constant speed."""
    return np.asarray(t, dtype=np.float64)


def ease_in_out(t: np.ndarray) -> np.ndarray:
    """Smoothstep 3t^2 - 2t^3: zero speed at both ends, monotone in between."""
    t = np.asarray(t, dtype=np.float64)
    return t * t * (3.0 - 2.0 * t)


def hold(t: np.ndarray) -> np.ndarray:
    """Stay at the start value until the end of the segment."""
    return np.where(np.asarray(t) < 1.0, 0.0, 1.0)


def _check_number(value, name: str, *, minimum: float, integer: bool = False, strict: bool = False) -> None:
    """A ScheduleError naming `name` unless `value` is a finite number (an integer if asked) above `minimum`."""
    kind = numbers.Integral if integer else numbers.Real
    valid = isinstance(value, kind) and not isinstance(value, bool) and bool(np.isfinite(value))
    if not valid or (value <= minimum if strict else value < minimum):
        wanted = f"{'an integer' if integer else 'a number'} {'>' if strict else '>='} {minimum:g}"
        raise ScheduleError(f"{name} must be {wanted}, got {value!r}")


# Segment easings: name -> weight of the segment's end value at relative position t in [0, 1].
EASINGS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"linear": linear, "ease-in-out": ease_in_out, "hold": hold}
# `cubic` is not a per-segment weight: it follows one spline through all keyframe values.
CUBIC = "cubic"
EASING_NAMES = choices.EASINGS  # the weights above, and cubic (tests/test_schedule.py checks they agree)


@dataclass(frozen=True, kw_only=True, eq=False)
class Keyframe:
    """A target value (AU vector (17,) or landmarks (N, 2)) at `at` seconds or at `frame`.

    `easing` shapes the segment from this keyframe to the next one.
    """

    value: np.ndarray
    at: Optional[float] = None
    frame: Optional[int] = None
    easing: str = "linear"

    def __post_init__(self):
        if (self.at is None) == (self.frame is None):
            raise ScheduleError("a keyframe needs exactly one of 'at' (seconds) or 'frame'")
        if self.at is not None:
            _check_number(self.at, "'at' (seconds)", minimum=0)
        if self.frame is not None:
            _check_number(self.frame, "'frame'", minimum=0, integer=True)
        if self.easing not in EASING_NAMES:
            raise ScheduleError(f"unknown easing '{self.easing}'; known: {', '.join(EASING_NAMES)}")
        object.__setattr__(self, "value", np.asarray(self.value, dtype=np.float32))


@dataclass(frozen=True, kw_only=True, eq=False)
class Schedule:
    """Keyframes plus timing; `targets()` gives the per-frame targets.

    `frames` or `duration` (seconds) sets the length of the path; with neither it ends at the last keyframe.
    `pingpong` appends the path backwards (without repeating its last frame), `loop` repeats the result
    (ping-pong repeats share their turning frame). `input_first` asks the renderer to show the untouched input
    as frame 0; `targets()` still holds a target for that frame.
    """

    keyframes: Sequence[Keyframe]
    fps: float = 25.0
    frames: Optional[int] = None
    duration: Optional[float] = None
    pingpong: bool = False
    loop: int = 1
    input_first: bool = False
    _path_frames: int = field(init=False, repr=False)
    _keyframe_indices: tuple = field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "keyframes", tuple(self.keyframes))
        if not self.keyframes:
            raise ScheduleError("a schedule needs at least one keyframe")
        _check_number(self.fps, "fps", minimum=0, strict=True)
        _check_number(self.loop, "loop", minimum=1, integer=True)
        for flag in ("pingpong", "input_first"):
            if not isinstance(getattr(self, flag), bool):
                raise ScheduleError(f"{flag} must be true or false, got {getattr(self, flag)!r}")
        if self.frames is not None and self.duration is not None:
            raise ScheduleError("give frames or duration, not both")
        if self.frames is not None:
            _check_number(self.frames, "frames", minimum=1, integer=True)
        if self.duration is not None:
            _check_number(self.duration, "duration", minimum=0, strict=True)
            if round(self.duration * self.fps) < 1:
                raise ScheduleError(f"duration {self.duration} s at {self.fps:g} fps holds no frame")
        shape = self.keyframes[0].value.shape
        for i, keyframe in enumerate(self.keyframes):
            if keyframe.value.shape != shape:
                raise ScheduleError(f"keyframe {i}: value of shape {keyframe.value.shape}, keyframe 0 has {shape} "
                                    "(a schedule holds either AU vectors or landmark sets of one layout)")
        wanted = [k.frame if k.frame is not None else round(k.at * self.fps) for k in self.keyframes]
        if self.frames is not None:
            length = int(self.frames)
        elif self.duration is not None:
            length = round(self.duration * self.fps)
        else:
            length = max(wanted) + 1
        object.__setattr__(self, "_path_frames", length)
        if self.num_frames > MAX_FRAMES:
            raise ScheduleError(f"the video would have {self.num_frames} frames; at most {MAX_FRAMES} are allowed")
        object.__setattr__(self, "_keyframe_indices", self._place_keyframes(wanted, length))

    def _place_keyframes(self, wanted: list[int], length: int) -> tuple:
        """The path frame of each keyframe, checked to be increasing and inside the path."""
        resolved = []
        for i, (keyframe, index) in enumerate(zip(self.keyframes, wanted)):
            if keyframe.at is not None and index == length:
                index = length - 1  # a keyframe at the very end of the duration lands on the last frame
            if index >= length:
                when = f"at {keyframe.at:g} s (frame {index})" if keyframe.at is not None else f"at frame {index}"
                raise ScheduleError(f"keyframe {i} is {when}, past the last frame {length - 1} of the path")
            if resolved and index <= resolved[-1]:
                raise ScheduleError(
                    f"keyframe {i} (frame {index}) is not after keyframe {i - 1} (frame {resolved[-1]})"
                )
            resolved.append(index)
        return tuple(resolved)

    @property
    def path_frames(self) -> int:
        """Frames of the path before ping-pong and loops."""
        return self._path_frames

    @property
    def num_frames(self) -> int:
        """Frames of the whole video: the path, ping-ponged and looped."""
        if self.pingpong:
            return 2 * (self.path_frames - 1) * self.loop + 1
        return self.path_frames * self.loop

    def path(self) -> np.ndarray:
        """The per-frame targets of one forward pass, float32 (path_frames, ...)."""
        indices = self._keyframe_indices
        values = np.stack([k.value for k in self.keyframes]).astype(np.float64)
        path = np.empty((self.path_frames,) + values.shape[1:], dtype=np.float64)
        path[: indices[0] + 1] = values[0]
        path[indices[-1]:] = values[-1]
        uses_spline = any(k.easing == CUBIC for k in self.keyframes[:-1])
        spline = None
        if uses_spline:
            from scipy.interpolate import PchipInterpolator  # scipy.interpolate takes seconds to import: only here

            spline = PchipInterpolator(indices, values, axis=0)
        for i, (start, end) in enumerate(zip(indices[:-1], indices[1:])):
            easing = self.keyframes[i].easing
            frames = np.arange(start, end)
            if easing == CUBIC:
                path[start:end] = spline(frames)
            else:
                weight = EASINGS[easing]((frames - start) / (end - start))
                weight = weight.reshape((-1,) + (1,) * (values.ndim - 1))
                path[start:end] = values[i] + weight * (values[i + 1] - values[i])
        return path.astype(np.float32)

    def targets(self) -> np.ndarray:
        """The per-frame targets of the whole video, float32 (num_frames, 17) or (num_frames, N, 2)."""
        path = self.path()
        if not self.pingpong:
            return np.concatenate([path] * self.loop)
        cycle = np.concatenate([path, path[-2::-1]])
        return np.concatenate([cycle[:-1]] * (self.loop - 1) + [cycle])


def expression_schedule(
    source,
    target,
    *,
    fps: float = 25.0,
    frames: Optional[int] = None,
    duration: Optional[float] = None,
    easing: str = "ease-in-out",
    pingpong: bool = False,
    hold_frames: int = 0,
    input_first: bool = False,
) -> Schedule:
    """The common path: from `source` at frame 0 to `target`, reached `hold_frames` before the end and held.

    `source` and `target` are AU vectors (17,) or landmark sets (N, 2). `frames` or `duration` is the length of the
    path including the hold (with `pingpong`, the hold sits at the turning point).
    """
    if (frames is None) == (duration is None):
        raise ScheduleError("give exactly one of frames or duration")
    length = int(frames) if frames is not None else round(duration * fps)
    if hold_frames < 0 or length - 1 - hold_frames < 1:
        raise ScheduleError(f"a path of {length} frames has no room for a transition and {hold_frames} hold frames")
    keyframes = [
        Keyframe(frame=0, value=source, easing=easing),
        Keyframe(frame=length - 1 - hold_frames, value=target),
    ]
    return Schedule(keyframes=keyframes, fps=fps, frames=length, pingpong=pingpong, input_first=input_first)
