"""Model URIs: the bundled demo model's name, a local checkpoint path or an `s3://` checkpoint, opened as a generator.

`ganbatch animate` and `ganbatch eval` name models this way; workers open the model from its URI themselves, so a
checkpoint is never shipped by value through Ray.
"""
import contextlib
import dataclasses
from pathlib import Path

from ganbatch.io.uris import StorageError, existing_local_path, is_s3
from ganbatch.models.checkpoint import CheckpointError, GeneratorInfo, load_generator
from ganbatch.models.networks import AttentionGenerator

DEMO_NAME = "demo"
DEMO_MODEL = Path(__file__).resolve().parents[1] / "assets" / "demo_ganimation.pt"
DEMO_GANNOTATION_NAME = "demo-gannotation"
DEMO_GANNOTATION_MODEL = DEMO_MODEL.with_name("demo_gannotation.pt")


def _bundled(uri: str) -> Path | None:
    """The bundled file a demo name stands for (read at call time, so tests can point it elsewhere), else None."""
    return {DEMO_NAME: DEMO_MODEL, DEMO_GANNOTATION_NAME: DEMO_GANNOTATION_MODEL}.get(uri)


class ModelNotFoundError(CheckpointError):
    """The model URI names no checkpoint: a missing file or object, or the bundled demo model is not shipped."""


def resolve_model_uri(uri: str) -> str:
    """The checkpoint location `uri` stands for: the bundled file for `demo` (GANimation) and `demo-gannotation`,
    else `uri` itself.

    Raises ModelNotFoundError when a demo name is asked for but this installation has no such bundled model.
    """
    bundled = _bundled(uri)
    if bundled is None:
        return uri
    if not bundled.is_file():
        raise ModelNotFoundError(
            f"--model {uri}: the bundled demo model is missing from this installation (expected {bundled}); "
            "pass a checkpoint path or s3:// URI")
    return str(bundled)


def local_model_file(location: str) -> contextlib.AbstractContextManager[Path]:
    """A context holding a local path with the file at location: the path itself, or for s3:// a temporary
    download (the cloud stack is imported only then); StorageError when it is missing."""
    if not is_s3(location):
        return contextlib.nullcontext(existing_local_path(location))
    from ganbatch.io import storage

    return storage.local_copy(location)


def open_model(uri: str, trust_pickle: bool = False) -> tuple[AttentionGenerator, GeneratorInfo]:
    """Load the generator that `uri` names (`demo`, a local path, `file://` or `s3://`); returns (generator, info).

    S3 checkpoints are downloaded to a temporary file that is removed once loaded; `info.source` is the URI.
    Raises ModelNotFoundError for a missing checkpoint and the CheckpointError subclasses of `load_generator` for
    unreadable ones.
    """
    location = resolve_model_uri(uri)
    try:
        with local_model_file(location) as path:
            if not path.is_file():
                raise ModelNotFoundError(f"{uri}: not a checkpoint file")
            generator, info = load_generator(path, trust_pickle=trust_pickle)
    except StorageError as error:
        raise ModelNotFoundError(f"model {uri}: {error.reason}") from error
    return generator, dataclasses.replace(info, source=location)
