"""What a model is, without loading it: family, image size and condition of a checkpoint, for dry runs.

`read_model_config(uri)` opens ganbatch's own checkpoints with `torch.load(mmap=True, weights_only=True)`: the
pickled header (format, version, JSON config) is read while the tensors stay memory-mapped and untouched, so a
500 MB file costs milliseconds. Foreign layouts and exported models (ONNX, OpenVINO) record no config; for those it
falls back to `runtime.model_info`, which reads them the normal way.
"""
import json
from dataclasses import dataclass, field

from ganbatch.io.uris import StorageError


@dataclass(frozen=True)
class ModelHeader:
    """A model's identity: family (ganimation | gannotation), image_size (None when not recorded), condition
    (aus | landmarks), how it was read (`header`: config only; `loaded`: a full read), and the stored config."""

    family: str
    image_size: int | None
    condition: str
    read: str
    config: dict = field(default_factory=dict)

    def describe(self) -> str:
        """`ganimation, 128 px, conditioned on aus`."""
        size = f"{self.image_size} px" if self.image_size else "size not recorded"
        return f"{self.family}, {size}, conditioned on {self.condition}"


def _own_header(path) -> dict | None:
    """The config of a ganbatch checkpoint at a local path, or None for other files."""
    import torch

    try:
        content = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception:  # noqa: BLE001 - not a zip-format torch file, or one weights_only refuses: not ours
        return None
    if not isinstance(content, dict) or content.get("format") != "ganbatch":
        return None
    try:
        return json.loads(content["config"])
    except (KeyError, TypeError, ValueError):
        return None


def read_model_config(uri: str, *, trust_pickle: bool = False) -> ModelHeader:
    """The ModelHeader of the model `uri` names (`demo`, a path, `file://` or `s3://`; see the module doc).
    Raises the same errors as opening the model when it is missing or unreadable."""
    from ganbatch.families import get_family
    from ganbatch.models.locate import ModelNotFoundError, local_model_file, resolve_model_uri

    location = resolve_model_uri(uri)
    try:
        with local_model_file(location) as path:
            config = _own_header(path) if path.is_file() else None
    except StorageError as error:
        raise ModelNotFoundError(f"model {uri}: {error.reason}") from error
    if config is not None and "family" in config:
        family = get_family(config["family"])
        return ModelHeader(config["family"], config.get("image_size"), family.condition, "header", config)
    from ganbatch.models.runtime import model_info

    info = model_info(uri, trust_pickle=trust_pickle)
    return ModelHeader(info.family, info.image_size, get_family(info.family).condition, "loaded",
                       dict(info.config or {}))


# Target sources (TargetSpec fields) each condition can follow.
_SOURCES_FOR = {"aus": ("expression", "aus", "aus_csv", "keyframes", "driving_video"),
                "landmarks": ("landmarks", "driving_video", "keyframes")}


def target_problems(header: ModelHeader, targets) -> list[str]:
    """One line per target (TargetSpec) the model cannot follow: AU targets for a landmark-conditioned model
    (GANnotation) or landmark targets for an AU-conditioned one (GANimation). Inline keyframes are checked by what
    they hold (preset/aus vs landmarks)."""
    problems = []
    allowed = _SOURCES_FOR[header.condition]
    for index, target in enumerate(targets):
        used = [name for name in ("expression", "aus", "aus_csv", "landmarks", "driving_video", "keyframes")
                if getattr(target, name)]
        if isinstance(target.keyframes, list):
            holds_landmarks = any(keyframe.landmarks for keyframe in target.keyframes)
            used = ["landmarks" if holds_landmarks else "aus"]
        wrong = [name for name in used if name not in allowed]
        if wrong:
            wants = "AU targets (expression, aus, aus_csv, driving_video)" if header.condition == "aus" else \
                "landmark targets (landmarks, driving_video)"
            problems.append(f"targets[{index}] ({target.label}): a {header.family} model follows {wants}, not "
                            f"{', '.join(wrong)}")
    return problems
