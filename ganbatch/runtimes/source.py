"""A model URI opened before choosing how to run it: what it is (read from its header, not its weights), its
identity on this machine, and its generator or exported file when an engine needs them.

Integrity without reading the weights every time: an own checkpoint records its tensors' SHA-256, which loading
checks (`models.checkpoint`). The first time a file is opened on a machine its tensors are loaded and checked once,
and the runtime cache notes that this file (by its own SHA-256, a fast read of its bytes) holds those tensors;
later opens of the same bytes hash the file and read only its header. A changed or corrupt file is a new file: it is
loaded and checked again, and fails with CheckpointIntegrityError before anything runs.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ganbatch.io.uris import StorageError, is_s3
from ganbatch.models.checkpoint import GeneratorInfo, load_generator, read_header_info
from ganbatch.models.export import IR_CONFIG, IR_MODEL, IR_WEIGHTS, exported_kind, read_exported_info
from ganbatch.models.locate import ModelNotFoundError, local_model_file, resolve_model_uri
from ganbatch.models.networks import AttentionGenerator
from ganbatch.runtimes.cache import RuntimeCache

_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


@dataclasses.dataclass
class ModelSource:
    """A model opened from its URI: kind ("checkpoint", "onnx" or "openvino"), the local path of its file or IR
    folder, and its info. A checkpoint's info is read from its header when it has one (digest as recorded); its
    generator is loaded, and the recorded digest checked, the first time `generator` is asked for."""

    kind: str
    path: Path
    info: GeneratorInfo
    uri: str = ""
    trust_pickle: bool = False
    _generator: AttentionGenerator | None = None

    @property
    def generator(self) -> AttentionGenerator | None:
        """The checkpoint's generator in eval mode (loaded once; None for exported models)."""
        if self.kind != "checkpoint":
            return None
        if self._generator is None:
            self._generator, info = load_generator(self.path, trust_pickle=self.trust_pickle)
            self.info = dataclasses.replace(info, source=self.info.source)
        return self._generator

    @property
    def exported_precision(self) -> str | None:
        """The precision an exported model was written at (None for a checkpoint)."""
        return self.info.config["export"]["precision"] if self.kind != "checkpoint" else None

    @functools.cached_property
    def identity(self) -> str:
        """What the model is, for the runtime cache: the tensor digest its header records, else a SHA-256 of its
        file(s) (published layouts and exported models record none)."""
        if self.kind == "checkpoint" and self.info.digest:
            return f"tensors:{self.info.digest}"
        files = [self.path] if self.path.is_file() else [self.path / IR_MODEL, self.path / IR_WEIGHTS]
        return f"file:{_sha256(*files)}"


def _sha256(*files: Path) -> str:
    digest = hashlib.sha256()
    for file in files:
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _checked(source: ModelSource, cache: RuntimeCache) -> None:
    """Load source's generator once to check its tensors against its recorded digest, unless the cache notes that
    these very bytes were checked here before (see the module doc)."""
    file_digest = _sha256(source.path)
    if not cache.checked(file_digest, source.info.digest):
        source.generator  # noqa: B018 - loads it: CheckpointIntegrityError when the tensors do not match
        cache.note_checked(file_digest, source.info.digest)


def _exported_kind(location: str) -> str | None:
    if location.lower().endswith(".onnx"):
        return "onnx"
    if location.lower().endswith(".xml"):
        return "openvino"
    if location.lower().endswith(_CHECKPOINT_SUFFIXES):
        return None
    if is_s3(location):
        from ganbatch.io import storage  # the cloud stack only for s3:// models, as in locate.local_model_file

        return "openvino" if storage.exists(storage.join(location, IR_MODEL)) else None
    return exported_kind(location.removeprefix("file://"))


@contextlib.contextmanager
def _local_copy(location: str, kind: str | None) -> Iterator[Path]:
    """A local path holding the model at location: itself when local, a temporary download for S3."""
    if kind != "openvino" or not is_s3(location):
        with local_model_file(location) as path:
            yield path
        return
    from ganbatch.io import storage

    folder = location.rsplit("/", 1)[0] if location.lower().endswith(".xml") else location
    with tempfile.TemporaryDirectory(prefix="ganbatch-ir-") as tmp:
        for name in (IR_MODEL, IR_WEIGHTS, IR_CONFIG):
            storage.download_file(storage.join(folder, name), Path(tmp) / name)
        yield Path(tmp)


@contextlib.contextmanager
def open_source(model_uri: str, *, trust_pickle: bool = False, cache: RuntimeCache | None = None
                ) -> Iterator[ModelSource]:
    """The model model_uri names (`demo`, a checkpoint, an .onnx file or OpenVINO IR folder; local or s3://), open
    for the duration of the block (S3 downloads are removed after it). Own checkpoints are read header first, their
    tensors checked once per file and machine (see the module doc); published layouts are loaded to be known.
    Raises ModelNotFoundError for a missing model and the CheckpointError subclasses for unreadable or corrupt
    ones."""
    location = resolve_model_uri(model_uri)
    try:
        kind = _exported_kind(location)
        with _local_copy(location, kind) as path:
            if kind is not None:
                yield ModelSource(kind, path, read_exported_info(path, source=location), model_uri)
                return
            if not path.is_file():
                raise ModelNotFoundError(f"{model_uri}: not a checkpoint file")
            info = read_header_info(path)
            source = ModelSource("checkpoint", path, info, model_uri, trust_pickle)
            if info is None:  # a published layout: only loading it tells what it is
                source.info = GeneratorInfo(family="", variant="", hparams={}, source=location)
                source.generator  # noqa: B018 - loads it and fills in the info
            elif info.digest:
                _checked(source, cache or RuntimeCache())
            source.info = dataclasses.replace(source.info, source=location)
            yield source
    except StorageError as error:
        raise ModelNotFoundError(f"model {model_uri}: {error.reason}") from error


def model_info(model_uri: str, *, trust_pickle: bool = False) -> GeneratorInfo:
    """The GeneratorInfo of any model URI open_runtime takes, read from its header where it has one (own
    checkpoints, exported models): the weights are loaded only to check a file not seen on this machine before."""
    with open_source(model_uri, trust_pickle=trust_pickle) as source:
        return source.info
