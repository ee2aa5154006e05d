"""ganbatch from Python: the one-clip layer, named, and the CLI's jobs.

    import ganbatch
    model = ganbatch.load_model("demo", runtime="torch")        # any --model; runtime "auto" by default
    frames = model.animate("face.png", "happy", frames=32)       # uint8 (T, H, W, 3)
    result = ganbatch.animate(["photos/"], out="videos/", model="demo", targets=["happy"])  # what the CLI runs
    result = ganbatch.run_job("job.yaml")                         # or a dict: any job kind, a pipeline too

`Model.animate` is `ganbatch.render.render_clip` on a model opened with `ganbatch.runtimes.open_runtime`, its
per-frame targets built by the animate job's own target rules (`ganbatch.animate.targets`): a target means the same
in Python, on the command line and in a job file. `animate` and `run_job` validate with the job schema (the CLI's
`load_job`) and run through `ganbatch.runner.run_job`, as the CLI does.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import numpy as np

# a target file's kind by its suffix (a string that is not a file's name is an expression: happy, happy:0.8)
_TARGET_FILES = {".yaml": "keyframes", ".yml": "keyframes", ".csv": "aus_csv", ".txt": "landmarks",
                 ".npy": "landmarks", ".mp4": "driving_video", ".webm": "driving_video", ".mov": "driving_video"}
_TIMING = ("frames", "fps", "duration", "easing", "pingpong", "input_first")


@dataclass
class Model:
    """A model opened for animating single faces: `info` (family, size, config) and the `runtime` it runs on."""

    runtime: Any  # ganbatch.runtimes.Runtime
    uri: str

    @property
    def info(self):
        """The model's GeneratorInfo: family, image_size, config."""
        return self.runtime.info

    @property
    def image_size(self) -> int:
        """The side of the face crops the model takes."""
        from ganbatch.families import get_family

        return self.info.image_size or get_family(self.info.family).default_image_size

    def animate(self, image, target, *, frames: int | None = None, fps: float | None = None,
                duration: float | None = None, easing: str | None = None, pingpong: bool | None = None,
                input_first: bool | None = None, source_aus: Mapping[str, float] | np.ndarray | None = None,
                batch_size: int = 16) -> np.ndarray:
        """The face in `image` animated towards `target`: uint8 frames (T, H, W, 3) at the model's crop size.

        image: a path, a PIL image or a uint8 (H, W, 3) array framed as a face crop (centre-cropped to a square and
        resized, as `--crop none` does). target: an expression name (`happy`, `happy:0.8`), an AU dict
        ({"AU12": 3.0}), keyframes (a list of keyframe dicts, or a dict with `keyframes` and timing), landmarks
        ((T, 66|68, 2) or (66|68, 2) points in the crop's pixels, GANnotation), or a target file (keyframes .yaml,
        OpenFace .csv, landmarks .txt/.npy). Timing left None takes the job schema's defaults (an expression:
        2 s at 25 fps, eased in and out). source_aus: the face's own AUs (default neutral). Raises ValueError
        (TargetError, pydantic's ValidationError) for a target that is invalid or does not fit the model.
        """
        from ganbatch.animate.targets import NEUTRAL_AUS, check_condition, load_targets
        from ganbatch.families import get_family
        from ganbatch.faces.align import fit_to_size
        from ganbatch.render import render_clip
        from ganbatch.targets.aus import AU_NAMES, check_aus

        timing = {name: value for name, value in zip(_TIMING, (frames, fps, duration, easing, pingpong, input_first))
                  if value is not None}
        [made] = load_targets([_target_spec(target, timing)])
        family = get_family(self.info.family)
        check_condition([made], family.name, family.condition, self.uri)
        if made.needs_source_landmarks:
            raise ValueError("a driving video needs the face's landmarks (face detection): use ganbatch.animate")
        if isinstance(source_aus, Mapping):
            source_aus = np.array([source_aus.get(name, 0.0) for name in AU_NAMES], np.float32)
        base = NEUTRAL_AUS if source_aus is None else check_aus(source_aus, "source_aus")
        schedule = made.schedule(base)
        face = fit_to_size(_pixels(image), self.image_size)
        clip = render_clip(self.runtime, self.info, face, schedule.targets(), chunk_size=batch_size,
                           input_first=schedule.input_first)
        return clip.frames


def _pixels(image) -> np.ndarray:
    """uint8 RGB pixels of a path / URI (EXIF-rotated, any mode), a PIL image or an array."""
    from PIL import Image

    from ganbatch.io.images import check_uint8, decode_image, to_rgb

    if isinstance(image, (str, os.PathLike)):
        from ganbatch.io import storage

        return decode_image(storage.read_bytes(os.fspath(image)), os.fspath(image))
    if isinstance(image, Image.Image):
        return to_rgb(image)
    return check_uint8(np.asarray(image), "image")


def _target_spec(target, timing: dict):
    """The job schema's TargetSpec for a Python target (see Model.animate)."""
    from ganbatch.jobs.animate import TargetSpec
    from ganbatch.targets.landmarks import to_gannotation66

    if isinstance(target, (str, os.PathLike)) and Path(target).suffix.lower() in _TARGET_FILES:
        return TargetSpec(**{_TARGET_FILES[Path(target).suffix.lower()]: os.fspath(target)}, **timing)
    if isinstance(target, str):
        return TargetSpec(expression=target, **timing)
    if isinstance(target, Mapping):
        if "keyframes" in target:
            return TargetSpec(**{**target, **timing})
        return TargetSpec(aus=dict(target), **timing)
    if isinstance(target, np.ndarray):  # landmark points: one keyframe per frame, as a landmark sequence plays
        points = target[None] if target.ndim == 2 else target
        if points.shape[1] == 68:
            points = to_gannotation66(points)
        keyframes = [{"frame": index, "landmarks": frame.tolist()} for index, frame in enumerate(points)]
        return TargetSpec(keyframes=keyframes, **{"easing": "linear", **timing})
    if isinstance(target, Sequence):
        return TargetSpec(keyframes=list(target), **timing)
    raise TypeError(f"a target is an expression name, an AU dict, keyframes, landmarks or a target file, "
                    f"not {type(target).__name__}")


def load_model(uri: str = "demo", *, runtime: str = "auto", device: str = "cpu", precision: str = "fp32",
               trust_pickle: bool = False) -> Model:
    """Open a model (any `--model`: `demo`, a checkpoint, an .onnx file or OpenVINO folder, local or s3://) on a
    runtime (`auto`: the fastest here that keeps fp32's quality; torch, onnxruntime, openvino, tensorrt)."""
    from ganbatch.runtimes import open_runtime

    opened = open_runtime(uri, runtime=runtime, device=device, precision=precision, trust_pickle=trust_pickle)
    return Model(runtime=opened, uri=uri)


def _option_paths(kind: str) -> dict[str, str]:
    """Keyword -> dotted job path for a job kind: its top-level fields, and the fields of its sections (crop,
    output, execution...) by their own names where no other section has that name."""
    from pydantic import BaseModel

    from ganbatch.jobs.animate import AnimateJob

    model = {"animate": AnimateJob}[kind]
    paths = {name: name for name in model.model_fields}
    seen: dict[str, list[str]] = {}
    for section, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            for name in field.annotation.model_fields:
                seen.setdefault(name, []).append(f"{section}.{name}")
    paths.update({name: where[0] for name, where in seen.items() if len(where) == 1 and name not in paths})
    return paths


def _run(kind: str | None, values: list[tuple[str, Any, str]], manifest=None):
    from ganbatch.jobs.load import load_job
    from ganbatch.runner import run_job as run

    return run(load_job(manifest, kind=kind, values=values).job)


def animate(inputs: Union[str, Sequence[str]], *, out: str, model: str = "demo",
            targets: Sequence[Union[str, Mapping[str, Any]]] = ("happy",), **options):
    """Run an animate job, the one `ganbatch animate` runs, and return its AnimateResult (`ok`, `succeeded`,
    `failed`, `skipped`, every manifest row in `rows`, `outputs`).

    targets: expression names or TargetSpec dicts ({"keyframes": "path.yaml"}, {"aus": {"AU12": 3}}, ...).
    options: any other field of the job, by its name (`overwrite=True`), a section as a dict
    (`output={"format": "gif"}`) or a section's field by its own name (`format="gif"`, `workers=1`,
    `runtime="torch"`). Raises ManifestError (every problem) for an invalid job and JobError for what stops it.
    """
    paths = _option_paths("animate")
    unknown = sorted(set(options) - set(paths))
    if unknown:
        raise TypeError(f"unknown animate option(s): {', '.join(unknown)}; known: {', '.join(sorted(paths))}")
    specs = [{"expression": target} if isinstance(target, str) else dict(target) for target in targets]
    values = [("inputs", [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs), "inputs"),
              ("out", os.fspath(out), "out"), ("model", model, "model"), ("targets", specs, "targets")]
    values += [(paths[name], value, name) for name, value in options.items()]
    return _run("animate", [(path, os.fspath(v) if isinstance(v, os.PathLike) else v, f"ganbatch.animate({label}=)")
                            for path, v, label in values])


def run_job(job: Union[str, os.PathLike, Mapping[str, Any]]):
    """Run a job manifest (a YAML file's path, or the same content as a dict: any kind, a pipeline too) as
    `ganbatch run` does; returns the runner's result (`ok`, `outputs`, and the kind's own fields)."""
    if isinstance(job, Mapping):
        return _run(None, [(key, value, "ganbatch.run_job") for key, value in job.items()])
    return _run(None, [], manifest=os.fspath(job))
