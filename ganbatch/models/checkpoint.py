"""Generator checkpoints: ganbatch's own format and the weights published with the original implementations.

`load_generator` recognises a file by its keys (never its name):

- ganbatch: `{"format": "ganbatch", "version": 1, "config": <JSON>, "state_dict": ...}`, written by
  `save_generator`; the config records `tensor_sha256`, the SHA-256 of the tensors (`tensor_digest`), which loading
  checks (a mismatch is a CheckpointIntegrityError naming the file). Files saved before digests were recorded load
  as "unverified", with the digest computed;
- ganimation_official: albertpumarola/GANimation `net_epoch_<E>_id_G.pth`;
- ganimation_replicate: donydchen/ganimation_replicate `<E>_net_gen.pth`;
- ganimation_vipermu: vipermu/ganimation `<iter>-<epoch>-G.ckpt`;
- gannotation_demo: ESanchezLozano/GANnotation demo weights `{'state_dict': ...}`.

Foreign files may carry `module.` prefixes (DataParallel) and InstanceNorm running statistics (PyTorch 0.3, or
`track_running_stats=True`); both are dropped, and instance statistics are used as the original code does at test
time. Foreign files record no digest, so they cannot be verified (`GeneratorInfo.integrity` says so). Files are read
with `torch.load(weights_only=True)`; one that needs code execution to unpickle is refused (the message names
`--trust-pickle`) unless the caller passes trust_pickle=True.
"""
import dataclasses
import functools
import hashlib
import json
import pickle
import pickletools
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ganbatch.families import get_family
from ganbatch.io.atomic import atomic_local_path
from ganbatch.models.ganimation import GANimationGenerator
from ganbatch.models.gannotation import GANnotationGenerator
from ganbatch.models.networks import SAMPLING_STEPS, AttentionGenerator, TrunkOptions

OWN_FORMAT = "ganbatch"
OWN_VERSION = 1
# Buffers that old or `track_running_stats=True` InstanceNorm layers save; ganbatch always uses instance statistics.
_RUNNING_STATS = (".running_mean", ".running_var", ".num_batches_tracked")
# The encoder's conv/norm/activation triples as positions of one nn.Sequential (GANimation-style files).
_ENCODER_LAYERS = 3 * (1 + SAMPLING_STEPS)
# Positions of a residual block's layers in its nn.Sequential (conv, norm, activation, conv, norm).
_BLOCK_POSITIONS = {"conv1": 0, "norm1": 1, "conv2": 3, "norm2": 4}
_LISTED_KEYS = 8
DIGEST_KEY = "tensor_sha256"  # config entry holding tensor_digest(state_dict) of ganbatch's own files
VERIFIED = "verified"  # integrity of an own file whose tensors match its recorded digest
UNVERIFIED = "unverified"  # an own file saved without a digest: loaded, digest computed, nothing to compare with
NOT_VERIFIABLE = "not verifiable"  # a foreign layout: no digest is recorded in such files
RECORDED = "recorded"  # read from an own file's header: the digest it records, checked when the tensors load


class CheckpointError(Exception):
    """A checkpoint file that cannot be loaded as a generator."""


class UntrustedCheckpointError(CheckpointError):
    """The file can only be unpickled by running code from it, and the caller did not allow that."""


class CheckpointIntegrityError(CheckpointError):
    """A ganbatch checkpoint whose tensors do not match the digest recorded when it was saved."""


class CheckpointFormatError(CheckpointError):
    """The file's content is not a generator ganbatch knows; for unknown layouts, the closest one and its diff."""

    def __init__(self, message: str, *, closest_layout: str | None = None, missing: tuple[str, ...] = (),
                 unexpected: tuple[str, ...] = ()):
        super().__init__(message)
        self.closest_layout = closest_layout
        self.missing = missing
        self.unexpected = unexpected

    def __reduce__(self):  # keyword-only fields survive pickling (errors cross Ray's process boundaries)
        return functools.partial(type(self), closest_layout=self.closest_layout, missing=self.missing,
                                 unexpected=self.unexpected), (str(self),)


@dataclass(frozen=True)
class GeneratorInfo:
    """What a loaded generator is: family, checkpoint layout (variant), hyper-parameters, source and config.

    hparams holds conv_dim, repeat_num, cond_channels and image_size (None when the file does not record it, as
    for the published weights; `get_family(family).default_image_size` is what they were trained at). config is
    the full ganbatch config (training provenance etc.), empty for foreign files. digest is the SHA-256 of the
    tensors (`tensor_digest`) for ganbatch's own format, None for foreign layouts; integrity is VERIFIED (it matches
    the digest recorded in the file), UNVERIFIED (an own file saved without one) or NOT_VERIFIABLE (foreign).
    """

    family: str
    variant: str
    hparams: dict
    source: str = ""
    config: dict = field(default_factory=dict)
    digest: str | None = None
    integrity: str = NOT_VERIFIABLE
    read: str = "loaded"  # "header": read from the file's config without its tensors (read_header_info, exports)

    @property
    def image_size(self) -> int | None:
        """Side of the square face crop the generator expects, when known."""
        return self.hparams.get("image_size")

    @property
    def condition(self) -> str:
        """What the generator follows: "aus" (GANimation) or "landmarks" (GANnotation)."""
        return get_family(self.family).condition

    def describe(self) -> str:
        """`ganimation, 128 px, conditioned on aus`."""
        size = f"{self.image_size} px" if self.image_size else "size not recorded"
        return f"{self.family}, {size}, conditioned on {self.condition}"

    def describe_integrity(self) -> str:
        """One line for --dry-run and logs: the digest and whether it was verified."""
        if self.digest is None:
            return f"model digest: none ({self.variant} is a foreign layout that records no digest; not verifiable)"
        if self.integrity == VERIFIED:
            return f"model digest: sha256:{self.digest} (verified against the digest recorded in the file)"
        return f"model digest: sha256:{self.digest} (unverified: the file was saved without a digest)"


def tensor_digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over a state_dict's tensors: each key (sorted), dtype, shape and raw bytes (CPU, contiguous)."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(f"{key}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def describe_generator(generator: AttentionGenerator, *, image_size: int | None = None, variant: str = OWN_FORMAT,
                       source: str = "", config: dict | None = None) -> GeneratorInfo:
    """A GeneratorInfo for an in-memory generator (e.g. one being trained), for the renderer and the evaluator."""
    return GeneratorInfo(family=generator.family, variant=variant,
                         hparams={**generator.hparams(), "image_size": image_size}, source=source,
                         config=dict(config or {}))


@dataclass(frozen=True)
class ForeignLayout:
    """How one published implementation names the generator's tensors.

    renames maps ganbatch module names (dot-separated components) to the foreign ones. sequential is
    (trunk, block) for files that keep encoder, residual blocks and decoder in one nn.Sequential called trunk,
    each block's layers in an nn.Sequential called block. aliases matches duplicate keys the original also saved.
    """

    name: str
    family: str
    origin: str
    options: TrunkOptions
    renames: dict[str, str]
    sequential: tuple[str, str] | None = None
    aliases: str | None = None

    def foreign_key(self, key: str, num_blocks: int) -> str:
        """The name this layout gives the ganbatch state_dict key `key` (for a trunk with num_blocks blocks)."""
        parts = key.split(".")
        if self.sequential and parts[0] in ("encoder", "bottleneck", "decoder"):
            trunk, block = self.sequential
            index = int(parts[1])
            if parts[0] == "encoder":
                return ".".join([trunk, str(index), *parts[2:]])
            if parts[0] == "bottleneck":
                position = str(_BLOCK_POSITIONS[parts[2]])
                return ".".join([trunk, str(_ENCODER_LAYERS + index), block, position, *parts[3:]])
            return ".".join([trunk, str(_ENCODER_LAYERS + num_blocks + index), *parts[2:]])
        return ".".join(self.renames.get(part, part) for part in parts)

    def count_blocks(self, keys: set[str]) -> int:
        """Number of residual blocks present in keys (consecutive blocks with a first convolution)."""
        count = 0
        while self.foreign_key(f"bottleneck.{count}.conv1.weight", 0) in keys:
            count += 1
        return count


_GANIMATION_HEADS = {"color_head": "img_reg", "attention_head": "attetion_reg"}  # sic: the original's spelling
LAYOUTS = (
    ForeignLayout("ganimation_official", "ganimation", "albertpumarola/GANimation net_epoch_<E>_id_G.pth",
                  GANimationGenerator.default_options, _GANIMATION_HEADS, sequential=("main", "main")),
    ForeignLayout("ganimation_replicate", "ganimation", "donydchen/ganimation_replicate <E>_net_gen.pth",
                  TrunkOptions(conv_bias=True, norm_affine=False, block_conv_bias=True, block_norm_affine=False),
                  {"color_head": "color_top", "attention_head": "au_top"}, sequential=("model", "conv_block")),
    ForeignLayout("ganimation_vipermu", "ganimation", "vipermu/ganimation <iter>-<epoch>-G.ckpt",
                  GANimationGenerator.default_options, {"color_head": "im_reg", "attention_head": "im_att"},
                  sequential=("main", "main"), aliases=r"debug\d+\."),
    ForeignLayout("gannotation_demo", "gannotation", "ESanchezLozano/GANnotation demo weights",
                  GANnotationGenerator.default_options,
                  {"encoder": "down_conv", "decoder": "feature_layer", "color_head": "colour_layer",
                   "attention_head": "mask_layer", "norm1": "bn1", "norm2": "bn2"}),
)


@functools.lru_cache(maxsize=None)
def _generator_keys(family: str, num_blocks: int, options: TrunkOptions) -> tuple[str, ...]:
    """The ganbatch state_dict keys of a generator (built on the meta device: no memory, no computation)."""
    with torch.device("meta"):
        generator = get_family(family).generator_cls(repeat_num=num_blocks, options=options)
    return tuple(generator.state_dict())


@dataclass(frozen=True)
class _LayoutMatch:
    """How a file's keys compare with one layout: foreign -> ganbatch key mapping and the key differences."""

    layout: ForeignLayout
    num_blocks: int
    foreign_to_own: dict[str, str]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]

    @property
    def distance(self) -> int:
        return len(self.missing) + len(self.unexpected)


def _match(layout: ForeignLayout, keys: set[str]) -> _LayoutMatch:
    if layout.aliases:
        keys = {key for key in keys if not re.match(layout.aliases, key)}
    num_blocks = layout.count_blocks(keys)
    expected = {layout.foreign_key(key, num_blocks): key
                for key in _generator_keys(layout.family, num_blocks, layout.options)}
    return _LayoutMatch(layout, num_blocks, expected, tuple(sorted(expected.keys() - keys)),
                        tuple(sorted(keys - expected.keys())))


def _listing(keys: tuple[str, ...]) -> str:
    shown = ", ".join(keys[:_LISTED_KEYS])
    return shown + (f" (+{len(keys) - _LISTED_KEYS} more)" if len(keys) > _LISTED_KEYS else "")


_GLOBAL_IN_MESSAGE = re.compile(r"GLOBAL (\S+)")
_CODE_OPCODES = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "BUILD"}


def _pickle_stream(path: Path) -> bytes | None:
    """The pickle of a checkpoint: data.pkl of a torch zip file, else the file's leading bytes."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [name for name in archive.namelist() if name.endswith("data.pkl")]
            return archive.read(names[0]) if names else None
    with open(path, "rb") as handle:
        return handle.read(1 << 20)


def _names_python_objects(path: Path) -> bool:
    """Whether the file is a well-formed pickle whose loading builds Python objects (opcodes only; runs nothing)."""
    try:
        stream = _pickle_stream(path)
        return stream is not None and any(op.name in _CODE_OPCODES for op, _, _ in pickletools.genops(stream))
    except Exception:  # noqa: BLE001 - not a pickle at all (text, random bytes, a truncated archive)
        return False


def _untrusted(path: Path, what: str) -> UntrustedCheckpointError:
    return UntrustedCheckpointError(
        f"{path}: loading this checkpoint needs the full pickle loader, which can run code from the file ({what}); "
        "pass --trust-pickle (trust_pickle=True) only if you trust where it came from")


def _read(path: Path, trust_pickle: bool, map_location):
    """torch.load with weights_only=True; refuses files that need code execution unless trust_pickle.

    torch's wording for a weights-only refusal changes between versions (2.13: "Unsupported global: GLOBAL x", or
    "Trying to load unsupported GLOBAL x whose module y is blocked", or just "Unsupported operand"), so the refusal
    is decided from the file itself: a well-formed pickle that builds Python objects needs code execution; anything
    else is not a readable checkpoint.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except OSError:
        raise
    except pickle.UnpicklingError as exc:  # the weights-only unpickler refused; with trust_pickle, load fully below
        if not trust_pickle:
            named = _GLOBAL_IN_MESSAGE.search(str(exc))
            if named:
                raise _untrusted(path, f"it names {named.group(1)}") from None
            if _names_python_objects(path):
                raise _untrusted(path, "it builds Python objects") from None
            raise CheckpointFormatError(f"{path}: not a readable PyTorch checkpoint (its data is neither a torch "
                                        "zip archive nor a pickle torch can read)") from None
    except Exception as exc:
        message = " ".join(str(exc).split())[:300]
        raise CheckpointFormatError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {message})") \
            from exc
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise CheckpointFormatError(f"{path}: could not unpickle ({type(exc).__name__}: {exc})") from exc


def _foreign_state_dict(content, path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a foreign file, without `module.` prefixes and InstanceNorm running statistics."""
    if isinstance(content, nn.Module):
        content = content.state_dict()
    if isinstance(content, Mapping) and isinstance(content.get("state_dict"), Mapping):
        content = content["state_dict"]
    if not isinstance(content, Mapping) or not all(isinstance(v, torch.Tensor) for v in content.values()):
        found = sorted(map(str, content)) if isinstance(content, Mapping) else type(content).__name__
        raise CheckpointFormatError(f"{path}: expected a generator state_dict (name -> tensor), found {found}")
    return {key.removeprefix("module."): tensor for key, tensor in content.items()
            if not key.endswith(_RUNNING_STATS)}


def _load_foreign(content, path: Path) -> tuple[AttentionGenerator, GeneratorInfo]:
    state = _foreign_state_dict(content, path)
    matches = [_match(layout, set(state)) for layout in LAYOUTS]
    best = min(matches, key=lambda match: match.distance)
    if best.distance:
        layout = best.layout
        raise CheckpointFormatError(
            f"{path}: unknown generator checkpoint layout; closest is {layout.name} ({layout.origin}): "
            f"missing keys [{_listing(best.missing)}], unexpected keys [{_listing(best.unexpected)}]",
            closest_layout=layout.name, missing=best.missing, unexpected=best.unexpected)
    layout = best.layout
    first_conv = state[layout.foreign_key("encoder.0.weight", best.num_blocks)]
    generator = get_family(layout.family).generator_cls(
        conv_dim=first_conv.shape[0], repeat_num=best.num_blocks, cond_channels=first_conv.shape[1] - 3,
        options=layout.options)
    try:
        generator.load_state_dict({own: state[foreign] for foreign, own in best.foreign_to_own.items()})
    except RuntimeError as exc:
        raise CheckpointFormatError(f"{path}: keys match {layout.name} but tensor shapes do not: {exc}") from exc
    return generator, describe_generator(generator, variant=layout.name, source=str(path))


def _load_own(content: Mapping, path: Path) -> tuple[AttentionGenerator, GeneratorInfo]:
    if content.get("version") != OWN_VERSION:
        raise CheckpointFormatError(f"{path}: ganbatch checkpoint version {content.get('version')!r} is not "
                                    f"supported (expected {OWN_VERSION})")
    try:
        config = json.loads(content["config"])
        digest = tensor_digest(content["state_dict"])
        recorded = config.get(DIGEST_KEY)
        if recorded is not None and recorded != digest:
            raise CheckpointIntegrityError(
                f"{path}: the tensors do not match the SHA-256 recorded when the file was saved (recorded "
                f"{str(recorded)[:16]}..., found {digest[:16]}...): the file is corrupt or was modified; "
                "download or export it again")
        family = get_family(config["family"])
        options = TrunkOptions(**config["options"])
        generator = family.generator_cls(**config["hparams"], options=options)
        generator.load_state_dict(content["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise CheckpointFormatError(f"{path}: invalid ganbatch checkpoint ({type(exc).__name__}: {exc})") from exc
    image_size = config.get("image_size")
    if image_size is not None and (not isinstance(image_size, int) or image_size <= 0):
        raise CheckpointFormatError(f"{path}: config field image_size must be a positive integer, got {image_size!r}")
    info = describe_generator(generator, image_size=image_size, source=str(path), config=config)
    return generator, dataclasses.replace(info, digest=digest, integrity=VERIFIED if recorded else UNVERIFIED)


def read_header_info(path) -> GeneratorInfo | None:
    """The GeneratorInfo an own checkpoint's header records (family, hparams, image size, config and the recorded
    tensor digest), read without loading its tensors: `torch.load(mmap=True, weights_only=True)` unpickles the
    small header while the tensors stay memory-mapped and untouched. None for any other file (foreign layouts,
    exported models, files without a complete config), which must be loaded to be known."""
    try:
        content = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception:  # noqa: BLE001 - not a zip-format torch file, or one weights_only refuses: not ours
        return None
    if not isinstance(content, Mapping) or content.get("format") != OWN_FORMAT:
        return None
    try:
        config = json.loads(content["config"])
        get_family(config["family"])
        hparams = {key: int(config["hparams"][key]) for key in ("conv_dim", "repeat_num", "cond_channels")}
        image_size = config.get("image_size")
    except (KeyError, TypeError, ValueError):
        return None
    return GeneratorInfo(family=config["family"], variant=OWN_FORMAT, hparams={**hparams, "image_size": image_size},
                         source=str(path), config=config, digest=config.get(DIGEST_KEY),
                         integrity=RECORDED if config.get(DIGEST_KEY) else UNVERIFIED, read="header")


def load_generator(path, *, trust_pickle: bool = False, map_location="cpu") -> tuple[AttentionGenerator,
                                                                                      GeneratorInfo]:
    """Load a generator from a local checkpoint of any known layout; returns (generator in eval mode, info).

    Raises UntrustedCheckpointError for files that need code execution (unless trust_pickle) and
    CheckpointFormatError for unreadable or unrecognised files (naming the closest layout and its key diff).
    """
    path = Path(path)
    content = _read(path, trust_pickle, map_location)
    if isinstance(content, Mapping) and content.get("format") == OWN_FORMAT:
        generator, info = _load_own(content, path)
    else:
        generator, info = _load_foreign(content, path)
    return generator.to(map_location).eval(), info


def generator_config(generator: AttentionGenerator, config: dict | None = None) -> dict:
    """config (image_size, training provenance...) with what the generator and its family fix: family, hparams,
    trunk options and the condition layout, which override same-named entries."""
    family = get_family(generator.family)
    return {
        **(config or {}),
        "family": generator.family,
        "hparams": generator.hparams(),
        "options": generator.options.to_dict(),
        "condition": {"kind": family.condition, **family.condition_layout},
    }


def save_generator(generator: AttentionGenerator, path, config: dict | None = None) -> None:
    """Write generator to path in ganbatch's format, atomically (temporary file in the same folder, then rename).

    config adds anything useful (image_size, training provenance...); family, hparams, trunk options, the
    condition layout (`generator_config`) and the tensors' digest (DIGEST_KEY, checked by load_generator) override
    same-named entries.
    """
    path = Path(path)
    state_dict = {key: tensor.detach().cpu() for key, tensor in generator.state_dict().items()}
    full_config = {**generator_config(generator, config), DIGEST_KEY: tensor_digest(state_dict)}
    content = {
        "format": OWN_FORMAT,
        "version": OWN_VERSION,
        "config": json.dumps(full_config),
        "state_dict": state_dict,
    }
    with atomic_local_path(path) as tmp:
        torch.save(content, tmp)
