"""`kind: animate`: images x named targets -> one video per pair."""
import difflib
import posixpath
import re
from typing import Annotated, ClassVar, Literal, Optional, Union

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from ganbatch.choices import DETECTORS, EASINGS, OUTPUT_LAYOUTS, VIDEO_FORMATS
from ganbatch.jobs.common import Execution, Runtime, StrictModel, Uri
from ganbatch.limits import MAX_DURATION, MAX_FRAMES, MAX_INTENSITY

Easing = Literal[EASINGS]


def check_au_name(name: str) -> str:
    """Normalise an action-unit key ('au12', 'AU12_r', '12') to 'AU12'; reject unknown ones."""
    from ganbatch.targets.aus import AU_NAMES, au_index

    return AU_NAMES[au_index(name)]


def check_preset(name: str) -> str:
    """Accept the name of a built-in expression preset."""
    from ganbatch.targets.aus import EXPRESSIONS

    if name not in EXPRESSIONS:
        close = difflib.get_close_matches(name, EXPRESSIONS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"unknown expression; known: {', '.join(EXPRESSIONS)}{hint}")
    return name




def check_expression(value: str) -> str:
    """Accept a preset name, optionally with an intensity: 'happy' or 'happy:0.8' (0 to MAX_INTENSITY)."""
    preset, _, strength = value.partition(":")
    check_preset(preset)
    if strength:
        try:
            intensity = float(strength)
        except ValueError:
            raise ValueError("the intensity after ':' is not a number") from None
        if not 0 <= intensity <= MAX_INTENSITY:  # also false for nan
            raise ValueError(f"the intensity after ':' must be between 0 and {MAX_INTENSITY:g}")
    return value


def whole_number(low: int, high: int) -> BeforeValidator:
    """A validator for an integer field from low to high that says so in its message whatever the value's type
    (YAML reads `1e23` as a string, `2.5` as a float); whole floats such as 40.0 are taken as integers."""

    def check(value):
        message = f"must be a whole number from {low} to {high}"
        if isinstance(value, bool):
            raise ValueError(message)
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ValueError(message) from None
        if isinstance(value, float):
            if not value.is_integer():  # also false for inf and nan
                raise ValueError(message)
            value = int(value)
        if not isinstance(value, int) or not low <= value <= high:
            raise ValueError(message)
        return value

    return BeforeValidator(check)


FrameIndex = Annotated[int, whole_number(0, MAX_FRAMES - 1)]
FrameCount = Annotated[int, whole_number(1, MAX_FRAMES)]
AuName = Annotated[str, AfterValidator(check_au_name)]


def _text_keys(value):
    """A mapping's keys as text: a YAML key 12 is the action unit AU12, not the number."""
    return {str(key): item for key, item in value.items()} if isinstance(value, dict) else value


AuIntensities = Annotated[dict[AuName, Annotated[float, Field(ge=0, le=5)]], BeforeValidator(_text_keys)]
Preset = Annotated[str, AfterValidator(check_preset)]
Expression = Annotated[str, AfterValidator(check_expression)]


class KeyframeSpec(StrictModel):
    """One keyframe of a target path: a time (seconds) or frame index, and an expression or landmark set."""

    at: Optional[float] = Field(None, ge=0, le=MAX_DURATION, description="time in seconds")
    frame: Optional[FrameIndex] = Field(None, description="frame index (instead of `at`)")
    preset: Optional[Preset] = Field(None, description="named expression")
    intensity: float = Field(1.0, ge=0, le=MAX_INTENSITY, description="scales the preset")
    aus: AuIntensities = Field(default_factory=dict, description="AU intensities 0-5, over the preset")
    landmarks: Optional[Union[Uri, list[tuple[float, float]]]] = Field(
        None, description="a landmark file (GANnotation), or its points inline: [[x, y], ...]")
    easing: Easing = Field("linear", description="easing of the segment that starts at this keyframe")

    @model_validator(mode="after")
    def _one_time_and_a_value(self):
        if (self.at is None) == (self.frame is None):
            raise ValueError("give exactly one of 'at' (seconds) or 'frame'")
        if self.preset is None and not self.aus and self.landmarks is None:
            raise ValueError("give 'preset', 'aus' or 'landmarks'")
        if self.landmarks is not None and (self.preset is not None or self.aus):
            raise ValueError("a keyframe holds either an expression (preset/aus) or 'landmarks', not both")
        if "intensity" in self.model_fields_set and self.preset is None:
            raise ValueError("'intensity' scales a preset, but the keyframe has no 'preset'")
        return self


TARGET_SOURCES = ("expression", "aus", "keyframes", "aus_csv", "landmarks", "driving_video")


class TargetSpec(StrictModel):
    """A named target path. Sources: expression and/or aus, keyframes, aus_csv, landmarks or driving_video."""

    name: Optional[str] = Field(None, pattern=r"^[A-Za-z0-9_.+-]+$", description="used in output names")
    expression: Optional[Expression] = Field(
        None, description="preset name, optionally with intensity: happy or happy:0.8"
    )
    aus: AuIntensities = Field(default_factory=dict, description="AU intensities applied over the source AUs")
    keyframes: Optional[Union[list[KeyframeSpec], Uri]] = Field(None, description="inline keyframes or a YAML file")
    aus_csv: Optional[Uri] = Field(None, description="OpenFace CSV of target AUs")
    aus_csv_mode: Literal["path", "per-row"] = Field("path", description="rows as one path, or one video per row")
    landmarks: Optional[Uri] = Field(
        None, description="GANnotation driving landmarks (.txt/.npy, 68 or 66 points per frame), in the pixel frame "
                          "of the model's face crop")
    driving_video: Optional[Uri] = Field(
        None, description="video whose per-frame landmarks (found by the face detector, --detector) drive the "
                          "face: their motion relative to the video's first frame moves the source face's own "
                          "landmarks")
    fps: float = Field(25.0, gt=0, le=240, description="frames per second of the video")
    duration: Optional[float] = Field(
        None, gt=0, le=MAX_DURATION, description="seconds; default 2.0 for expressions, the last keyframe for keyframes, every row or "
                                "frame for sequences (aus_csv path, landmarks, driving_video), which it trims or holds")
    frames: Optional[FrameCount] = Field(None, description="frame count (instead of duration)")
    easing: Easing = Field("ease-in-out", description="easing from the source expression to the target")
    pingpong: bool = Field(False, description="go to the target and back")
    input_first: bool = Field(False, description="frame 0 is the untouched input")

    @model_validator(mode="after")
    def _one_source(self):
        given = [s for s in TARGET_SOURCES if getattr(self, s)]
        expression_like = {"expression", "aus"}
        if not given:
            raise ValueError(f"give a target: one of {', '.join(TARGET_SOURCES)}")
        if len(given) > 1 and not set(given) <= expression_like:
            raise ValueError(f"give one target source, not {' + '.join(given)} (only expression + aus combine)")
        if self.duration is not None and self.frames is not None:
            raise ValueError("give duration or frames, not both")
        if self.duration is not None and self.duration * self.fps > MAX_FRAMES:
            raise ValueError(f"duration x fps is {self.duration * self.fps:g} frames; a video has at most "
                             f"{MAX_FRAMES} frames")
        if isinstance(self.keyframes, list) and self.duration is None and self.frames is None:
            last = max(k.frame if k.frame is not None else k.at * self.fps for k in self.keyframes)
            if last >= MAX_FRAMES:
                raise ValueError(f"the last keyframe is at frame {last:g}; a video has at most {MAX_FRAMES} frames")
        return self

    @property
    def label(self) -> str:
        """The name used in output files: `name`, else derived from the source (a target file's name without its
        extension, `keyframes` for inline keyframes)."""
        if self.name:
            return self.name
        if self.expression:
            return self.expression.replace(":", "-")
        if self.aus:
            return "_".join(f"{k}-{v:g}" for k, v in self.aus.items())
        source = next(s for s in TARGET_SOURCES if getattr(self, s))
        value = getattr(self, source)
        if not isinstance(value, str):
            return source
        stem = posixpath.splitext(posixpath.basename(value.rstrip("/")))[0]
        return re.sub(r"[^A-Za-z0-9_.+-]", "_", stem) or source


class CropSpec(StrictModel):
    """How faces are found: inputs are model-sized crops already (none), or detected and cropped."""

    mode: Literal["none", "detect"] = Field(
        "none", description="none: inputs are face crops (resized to the model's size, centre-cropped to a square "
                            "when not square); detect: find the largest face and crop a square around it")
    backend: Literal[DETECTORS] = Field(
        "auto", description="face detector (also finds the landmarks of driving videos: face-alignment or dlib)")
    margin: float = Field(0.2, ge=0, le=2, description="crop side = (1 + margin) x the face box side")
    pasteback: bool = Field(False, description="blend the animated crop back into the full photo")
    feather: float = Field(0.1, ge=0, le=0.5, description="paste-back border falloff, fraction of the box")

    @model_validator(mode="after")
    def _pasteback_needs_detect(self):
        if self.pasteback and self.mode != "detect":
            raise ValueError("pasteback needs mode: detect")
        return self


# `source_aus: estimate`: each photo's own AUs estimated in the prepare stage instead of read from a file.
ESTIMATE = "estimate"
# executor auto's limit for running a job in this process: past it, Ray's start-up (about 10 s on two cores) is small
# next to the job, and its process-parallel stages and worker retries pay
IN_PROCESS_MAX_FRAMES = 512
REPORT_MIN_ITEMS = 4  # output.report's default: a gallery for batches larger than this


class OutputSpec(StrictModel):
    """Video encoding and frame layout."""

    format: Literal[VIDEO_FORMATS] = Field(
        "mp4", description="video format; png writes a folder of numbered frames (lossless)")
    layout: Literal[OUTPUT_LAYOUTS] = Field(
        "single", description="the animation alone, the input beside it, or also the attention mask")
    crf: Optional[int] = Field(None, ge=0, le=63, description="encoder quality (lower is better)")
    size: Optional[int] = Field(None, ge=16, le=4096, description="output height in pixels (upscaling)")
    preview: bool = Field(False, description="also write preview.gif: the first videos tiled")
    report: Optional[bool] = Field(
        None, description="write index.html, a gallery of every video with its input, target and status; default: "
                          f"on for batches of more than {REPORT_MIN_ITEMS} videos")

    @model_validator(mode="after")
    def _crf_fits_the_format(self):
        from ganbatch.io.video import CRF_RANGE

        if self.crf is not None:
            if self.format not in CRF_RANGE:
                raise ValueError(f"crf applies to mp4 and webm, not {self.format}")
            low, high = CRF_RANGE[self.format]
            if not low <= self.crf <= high:
                raise ValueError(f"crf for {self.format} must be in {low}..{high}")
        return self


class AnimateExecution(Execution):
    """Execution settings of an animate job: the generator actors (`workers`, their GPUs and CPUs), device,
    precision and batching, and how long storage faults are retried."""

    workers: Optional[int] = Field(
        None, ge=1, description="generator actors (one model each); default: one per GPU of the cluster, else 1")
    gpus_per_worker: Optional[float] = Field(
        None, ge=0, description="GPUs per generator actor; default: 1 when the cluster has GPUs, else 0")
    cpus_per_worker: Optional[float] = Field(
        None, gt=0, description="CPUs Ray reserves per generator actor; default: 1 with a GPU, else a share that "
                                "leaves room for the CPU stages (torch threads follow the cores the actor may use)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: cuda when the worker has a GPU")
    runtime: Runtime = Field(
        "auto", description="inference engine of each generator actor; auto: the fastest one here that passes the "
                            "quality gate against fp32, measured once per model and machine and kept in the runtime "
                            "cache (`ganbatch tune`, `ganbatch cache`); precision applies to a named engine "
                            "(onnxruntime/openvino: pip install ganbatch[cpu-fast]; tensorrt: ganbatch[tensorrt])")
    batch_size: int = Field(16, ge=1, le=1024, description="frames per generator call (frames of several clips "
                                                           "are batched together)")
    storage_retry_seconds: float = Field(
        120.0, ge=0, le=3600, description="total seconds an S3 read or write is retried through transient faults "
                                          "(connection lost, 5xx, throttling) before its item fails")
    stall_seconds: float = Field(
        300.0, ge=5, le=86400, description="seconds the stream may go without a finished video while no CPU is free "
                                           "for its prepare and encode tasks (e.g. after a node was lost) before the "
                                           "items left are failed with the reason")
    executor: Literal["auto", "ray", "in-process"] = Field(
        "auto", description="where the stages run: ray (a local Ray started for the command, or the cluster at "
                            "address), or in-process (threads of this command: no Ray to start, no worker retries); "
                            f"auto: in-process for a small local job (at most {IN_PROCESS_MAX_FRAMES} frames, no "
                            "address or worker settings), else ray")

    @model_validator(mode="after")
    def _in_process_takes_no_ray_settings(self):
        ray_only = self.ray_settings()
        if self.executor == "in-process" and ray_only:
            raise ValueError(f"executor in-process runs without Ray, so {', '.join(ray_only)} cannot apply; leave "
                             "them out or use executor ray")
        return self

    def ray_settings(self) -> list[str]:
        """The settings given that only a Ray run uses (the cluster address, the generator actors' sizes)."""
        return [name for name in ("address", "workers", "gpus_per_worker", "cpus_per_worker")
                if getattr(self, name) is not None]


class AnimateJob(StrictModel):
    """Animate every input image along every target; one video per (image, target)."""

    kind: Literal["animate"] = "animate"
    # keys of run_animate's result.outputs, which later pipeline steps can refer to as ${steps.NAME.KEY}
    OUTPUTS: ClassVar[tuple[str, ...]] = ("out", "manifest")
    model: str = Field(description="checkpoint path/URI, or 'demo' for the bundled model")
    trust_pickle: bool = Field(False, description="allow checkpoints whose unpickling runs code (trusted files only)")
    inputs: list[Uri] = Field(min_length=1, description="files, folders, globs, s3:// prefixes or .txt/.jsonl lists")
    recursive: bool = Field(False, description="descend into sub-folders")
    out: Uri = Field(description="output folder or s3:// prefix")
    source_aus: Optional[Uri] = Field(
        None, description="the photos' own AUs, looked up by image name: an OpenFace CSV with a name column, or an "
                          "aus_openface.pkl (GANimation), or 'estimate': each photo's AUs estimated from its face's "
                          "landmarks (no OpenFace, see docs/au_estimator.md); default: neutral (all zeros)")
    targets: list[TargetSpec] = Field(min_length=1)
    crop: CropSpec = Field(default_factory=CropSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)
    execution: AnimateExecution = Field(default_factory=AnimateExecution)
    overwrite: bool = Field(False, description="redo items whose output exists")
    allow_failures: bool = Field(False, description="exit 0 even when some items failed")
    manifest: str = Field("manifest.jsonl", pattern=r"^[^/\\\x00-\x1f]+\.jsonl$",
                          description="manifest file name under out")

    @model_validator(mode="after")
    def _mask_layout_without_pasteback(self):
        if self.crop.pasteback and self.output.layout == "with-mask":
            raise ValueError("layout with-mask shows the crop's attention mask; it cannot be combined with "
                             "crop.pasteback (use single or side-by-side)")
        return self

    @model_validator(mode="after")
    def _unique_target_labels(self):
        labels = [t.label for t in self.targets]
        duplicates = sorted({x for x in labels if labels.count(x) > 1})
        if duplicates:
            raise ValueError(f"targets need distinct names; repeated: {', '.join(duplicates)}")
        return self
