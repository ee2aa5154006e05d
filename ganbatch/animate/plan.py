"""What an animate job will do: its inputs found, crossed with its targets into work items with output names, and
the items whose output already exists marked as done.

Inputs: a folder or `s3://` prefix (its images; with `recursive`, also those in sub-folders), a glob (local), an
image file or object, or a list: a `.txt` file with one input per line (blank lines and `#` comments skipped) or a
`.jsonl` file with one `{"input": ...}` object per line; relative entries are relative to the list's folder.
Listings keep files with an image extension (IMAGE_SUFFIXES, any case); a file named explicitly is taken as it is.
Local listings follow links to folders but enter each real folder once (storage.local_entries: a link loop is listed
once, and a listing is bounded); a photo reached under several names is planned once; nothing below the destination
is ever an input (when --out lies inside an input folder, its outputs are left out, in every format).

Outputs: `DEST/{stem}__{target}.{ext}`, where `stem` keeps the image's sub-folders below its input folder, prefix or
glob root (so recursive inputs are mirrored); `--format png` writes a folder `DEST/{stem}__{target}/` of frames.

Outputs never leave the destination: a stem is normalised (`./` and repeated `/` dropped) and an input whose name
would escape or is not portable (a `..` part, an absolute path, a drive letter, a backslash, a NUL or other control
character, a name that is not valid UTF-8, a name too long for the destination) becomes an item with a `problem`
(one failed row); `plan_items` also proves every local output path, after resolving symlinks, lies below the
destination. Files of an input folder that are not taken (unsupported
extension, broken link, not a regular file) are counted in `InputListing.skipped`.
"""
import json
import os
import posixpath
import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ganbatch.io import storage
from ganbatch.io.images import IMAGE_SUFFIXES

LIST_SUFFIXES = (".txt", ".jsonl")
_GLOB_CHARS = "*?["


class PlanError(ValueError):
    """The job's inputs or outputs cannot be planned: a missing input, an empty listing, colliding output names."""


@dataclass(frozen=True)
class InputImage:
    """An image to animate: its URI (absolute local path or s3://) and its name below its input root, without the
    extension, '/'-separated (e.g. 'party/anna')."""

    uri: str
    stem: str


@dataclass(frozen=True)
class SkippedFile:
    """A file inside an input folder or prefix that is not animated, and why: `unsupported type`, `broken link`
    or `not a regular file`."""

    uri: str
    reason: str


class InputListing(list):
    """The images the inputs name (a list of InputImage, usable wherever a list is), plus `skipped`: the files of
    the input folders and prefixes that were not taken, with the reason."""

    def __init__(self, images=(), skipped=()):
        super().__init__(images)
        self.skipped: list[SkippedFile] = list(skipped)

    def skipped_summary(self) -> str:
        """'3 files skipped: 2 unsupported type, 1 broken link' ('' when none was skipped)."""
        if not self.skipped:
            return ""
        counts = Counter(file.reason for file in self.skipped)
        noun = "file" if len(self.skipped) == 1 else "files"
        return f"{len(self.skipped)} {noun} skipped: " + ", ".join(f"{n} {reason}" for reason, n in counts.items())

    def skipped_lines(self, limit: int = 20) -> list[str]:
        """One line per skipped file (`  skipped: URI (reason)`), at most `limit`, for --dry-run."""
        lines = [f"  skipped: {file.uri} ({file.reason})" for file in self.skipped[:limit]]
        if len(self.skipped) > limit:
            lines.append(f"  ... and {len(self.skipped) - limit} more")
        return lines


@dataclass(frozen=True)
class WorkItem:
    """One video to make: `input` animated along target number `target` (labelled `label`) into `output`.

    `marker` is the file below the destination whose presence means the output is complete: the video, or the first
    frame of a PNG folder (written last); `source_aus` the image's own AUs (None: neutral); `estimate_aus` whether
    the prepare stage estimates them from the face instead (`source_aus: estimate`); `problem` a reason known before
    rendering why the item cannot be made (it is then reported as failed).
    """

    input: str
    output: str
    marker: str
    target: int
    label: str
    source_aus: Optional[np.ndarray] = None
    problem: Optional[str] = None
    estimate_aus: bool = False


def _is_glob(uri: str) -> bool:
    return not storage.is_s3(uri) and any(char in uri for char in _GLOB_CHARS)


def _stem(uri: str, root: Optional[str]) -> str:
    """The name of `uri` below `root` (its own name when root is None), without the extension."""
    relative = uri[len(root):].lstrip("/" + os.sep) if root else posixpath.basename(uri.replace(os.sep, "/"))
    return posixpath.splitext(relative.replace(os.sep, "/"))[0]


def _glob_root(pattern: str) -> str:
    """The folder part of a glob before its first wildcard."""
    head = pattern[: min(pattern.index(char) for char in _GLOB_CHARS if char in pattern)]
    return os.path.dirname(head)


def _list_entries(uri: str) -> list[str]:
    """The inputs a .txt or .jsonl list names, relative ones resolved against the list's folder or prefix."""
    try:
        text = storage.read_bytes(uri).decode("utf-8")
    except (storage.StorageError, UnicodeDecodeError) as error:
        raise PlanError(f"input list {uri}: cannot read it ({error})") from None
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if uri.lower().endswith(".jsonl"):
            try:
                row = json.loads(line)
                entry = row["input"] if isinstance(row, dict) else row
            except (ValueError, KeyError):
                raise PlanError(f"input list {uri}, line {number}: expected {{\"input\": \"...\"}}") from None
            if not isinstance(entry, str):
                raise PlanError(f"input list {uri}, line {number}: 'input' must be a string")
            line = entry
        if "://" not in line and not os.path.isabs(line):
            line = storage.join(posixpath.dirname(uri) if storage.is_s3(uri) else os.path.dirname(uri), line)
        entries.append(line)
    return entries


def _partition(uris: list[str], suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> tuple[list[str], list[SkippedFile]]:
    """Listed files split into images (files with one of `suffixes`) and files of another type."""
    images = [uri for uri in uris if uri.lower().endswith(suffixes)]
    others = [SkippedFile(uri, "unsupported type") for uri in uris if not uri.lower().endswith(suffixes)]
    return images, others


def _odd_entry(path: str) -> Optional[SkippedFile]:
    """A broken symbolic link or a non-regular file (FIFO, socket, device), which listings leave out."""
    if os.path.isdir(path) or os.path.isfile(path):
        return None
    return SkippedFile(path, "broken link" if os.path.islink(path) else "not a regular file")


def _odd_local_entries(uri: str, recursive: bool) -> list[SkippedFile]:
    """Broken links and non-regular files in a local folder or glob (hidden names skipped, as in storage.list_uris)."""
    return [odd for odd in map(_odd_entry, storage.local_entries(uri, recursive=recursive)) if odd is not None]


def _expand(uri: str, recursive: bool, from_list: Optional[str] = None,
            suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> InputListing:
    """The images (files with one of `suffixes`) one input names, and the files of its folder, prefix or glob that
    are not taken."""
    where = f"input {uri}" + (f" (listed in {from_list})" if from_list else "")
    uri = worker_uri(uri)
    lower = uri.lower()
    if lower.endswith(LIST_SUFFIXES):
        if from_list:
            raise PlanError(f"{where}: a list may not name another list")
        listing = InputListing()
        for entry in _list_entries(uri):
            found = _expand(entry, recursive, uri, suffixes)
            listing.extend(found)
            listing.skipped.extend(found.skipped)
        if not listing:
            raise PlanError(f"input list {uri} names no images")
        return listing
    if lower.endswith(suffixes) and not _is_glob(uri):
        if not storage.is_s3(uri) and not os.path.isfile(uri):
            raise PlanError(f"{where}: no such file")
        return InputListing([InputImage(uri, _stem(uri, None))])
    if _is_glob(uri):
        root = _glob_root(uri)
        try:
            found, skipped = _partition(storage.list_uris(uri, recursive=recursive), suffixes)
        except storage.StorageError as error:
            raise PlanError(f"{where}: {error.reason}") from None
        skipped += _odd_local_entries(uri, recursive)
    else:
        if not storage.is_s3(uri) and os.path.isfile(uri):
            return InputListing([InputImage(uri, _stem(uri, None))])
        root = uri.rstrip("/") + "/" if storage.is_s3(uri) else uri
        try:
            found, skipped = _partition(storage.list_uris(uri, recursive=recursive), suffixes)
        except storage.StorageError as error:
            raise PlanError(f"{where}: {error.reason}") from None
        if not storage.is_s3(uri):
            skipped += _odd_local_entries(uri, recursive)
    if not found:
        reasons = f" ({InputListing(skipped=skipped).skipped_summary()})" if skipped else ""
        raise PlanError(f"{where}: no images ({', '.join(suffixes)}) found{reasons}"
                        + ("" if recursive else "; sub-folders are searched only with --recursive"))
    return InputListing([InputImage(found_uri, _stem(found_uri, root)) for found_uri in found], skipped)


def _identity(uri: str) -> str:
    """What makes two URIs one photo: the real path of a local file (links resolved), an S3 URI as it is."""
    return uri if storage.is_s3(uri) else os.path.realpath(uri)


def _inside(uri: str, folder: str) -> bool:
    """Whether `uri` lies below `folder` (local: by real paths)."""
    if storage.is_s3(uri) or storage.is_s3(folder):
        return uri.startswith(folder.rstrip("/") + "/")
    real_folder = os.path.realpath(folder)
    return os.path.commonpath([real_folder, os.path.realpath(uri)]) == real_folder


def find_inputs(inputs: list[str], recursive: bool, destination: Optional[str] = None,
                suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> InputListing:
    """Every image the job's inputs name, in the order given (listings sorted), each photo once: a file reached under
    several names (links, two inputs) is taken under its own name where that was found, else the first, and its
    other names are skipped files; `.skipped` lists the files of input folders, prefixes and globs that are not
    taken (see InputListing). Nothing below `destination` is an input (the job's outputs, when --out lies inside an
    input folder): it is one skipped entry. `suffixes`: the file names listings keep (`ganbatch aus` adds videos')."""
    destination = worker_uri(destination) if destination else None
    found, skipped, outputs_left_out = [], [], False
    for uri in inputs:
        expanded = _expand(uri, recursive, suffixes=suffixes)
        for image in expanded:
            if destination and _inside(image.uri, destination):
                outputs_left_out = True
            else:
                found.append(image)
        skipped += [file for file in expanded.skipped if not (destination and _inside(file.uri, destination))]
    chosen: dict[str, str] = {}  # identity -> the URI taken for it
    for image in found:
        identity = _identity(image.uri)
        if identity not in chosen or (image.uri == identity and chosen[identity] != identity):
            chosen[identity] = image.uri
    listing, seen = InputListing(), set()
    for image in found:
        if image.uri in seen:
            continue
        seen.add(image.uri)
        if chosen[_identity(image.uri)] == image.uri:
            listing.append(image)
        else:
            listing.skipped.append(SkippedFile(image.uri, "same file as another input"))
    for file in skipped:
        if file.uri not in seen:
            seen.add(file.uri)
            listing.skipped.append(file)
    if outputs_left_out:
        listing.skipped.append(SkippedFile(destination, "the destination (--out), never an input"))
    if not listing:
        raise PlanError(f"the inputs name no images outside the destination {destination}")
    return listing


FIRST_FRAME = "frame_00000.png"


class UnsafeNameError(ValueError):
    """An input's name that cannot be used below the destination (it would escape it, or is not portable)."""


_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def printable(text: str) -> str:
    """`text` with control characters (NUL, newlines...) and the bytes of a name that is not valid UTF-8 (which
    Python holds as lone surrogates) escaped, for messages and manifest rows."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda match: match.group(0).encode("unicode_escape").decode("ascii"), text)


def safe_relative(name: str) -> str:
    """`name` as a normalised '/'-separated path that stays below the folder it is joined to ('./' and repeated
    '/' dropped); UnsafeNameError for '..' parts, absolute paths, drive letters, backslashes, control characters
    (NUL included) and names that are empty once normalised."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeNameError("the file name is not valid UTF-8 (rename it)") from None
    if _CONTROL.search(name):
        raise UnsafeNameError("it holds a control character (such as NUL or a newline)")
    if "\\" in name:
        raise UnsafeNameError("it holds a backslash, a folder separator on Windows")
    if name.startswith("/"):
        raise UnsafeNameError("it is an absolute path")
    if _DRIVE.match(name):
        raise UnsafeNameError("it starts with a drive letter")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeNameError("it has a '..' part, which would lead outside the destination")
    if not parts:
        raise UnsafeNameError("it is empty")
    return "/".join(parts)


def output_relative(stem: str, label: str, format: str) -> str:
    """The output's path below the destination: `{stem}__{label}.{format}`, a folder `{stem}__{label}` for png;
    UnsafeNameError when the stem or label would lead outside the destination (see safe_relative)."""
    name = f"{safe_relative(stem)}__{label}"
    if "/" in label:
        raise UnsafeNameError("the target label holds a '/'")
    safe_relative(name)
    return name if format == "png" else f"{name}.{format}"


NAME_MAX = 255  # bytes of one file name on the usual file systems (ext4, xfs, btrfs, APFS, NTFS in UTF-16 units)
S3_KEY_MAX = 1024  # bytes of an S3 key
_TEMPORARY_EXTRA = len(".") + len(".tmp-01234567")  # what atomic_local_path adds to a name while writing it


def check_name_lengths(out: str, relative: str) -> None:
    """UnsafeNameError when an output's path below `out` is too long for the destination: an S3 key over
    S3_KEY_MAX bytes, or a local name (its temporary included) over NAME_MAX."""
    if storage.is_s3(out):
        key = storage.join(out, relative).removeprefix("s3://").split("/", 1)[-1]
        if len(key.encode("utf-8")) > S3_KEY_MAX:
            raise UnsafeNameError(f"its output key would be {len(key.encode('utf-8'))} bytes, over S3's "
                                  f"{S3_KEY_MAX}")
        return
    limit = NAME_MAX - _TEMPORARY_EXTRA
    for part in relative.split("/"):
        if len(part.encode("utf-8")) > limit:
            raise UnsafeNameError(f"its output name {part[:24]!r}... would be {len(part.encode('utf-8'))} bytes, "
                                  f"over the {limit} a name may have here (file systems allow {NAME_MAX}, less "
                                  "the temporary name's suffix); shorten the file name")


def worker_uri(uri: str) -> str:
    """A URI as workers use it (they need not share the driver's folder): s3:// as it is, local paths absolute."""
    return uri.rstrip("/") if storage.is_s3(uri) else storage.absolute(uri)


def check_destination(out: str) -> None:
    """PlanError when a local destination cannot be a folder ganbatch writes to: an existing file, a path through
    a file, or a folder (or its nearest existing parent) this process cannot write to (tried with an empty
    folder, removed at once)."""
    if storage.is_s3(out):
        return
    path = Path(storage.absolute(out))
    if path.exists() and not path.is_dir():
        raise PlanError(f"--out {out}: is an existing file, not a folder")
    existing = next(parent for parent in (path, *path.parents) if parent.exists())
    if not existing.is_dir():
        raise PlanError(f"--out {out}: {existing} is a file, so no folder can be made below it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PlanError(f"--out {out}: cannot write to {existing} (permission denied)")
    try:  # access() says yes to root and knows nothing of read-only mounts: try it (an empty folder, removed)
        os.rmdir(tempfile.mkdtemp(prefix=".ganbatch-probe-", dir=existing))
    except OSError as error:
        raise PlanError(f"--out {out}: cannot write to {existing} ({error.strerror or type(error).__name__})") \
            from None


def inside_destination(out: str, relative: str) -> bool:
    """Whether `out` joined with `relative` lies below `out`: for S3 the normalised key, locally the real path
    (symbolic links resolved, so a linked sub-folder that points elsewhere does not count as inside)."""
    if storage.is_s3(out):
        prefix = out.rstrip("/").removeprefix("s3://")
        key = storage.join(out, relative).removeprefix("s3://")
        return posixpath.normpath(key) == key and key.startswith(prefix + "/")
    base = os.path.realpath(storage.absolute(out))
    target = os.path.realpath(os.path.join(base, relative))
    return target != base and os.path.commonpath([base, target]) == base


def plan_items(images: list[InputImage], labels: list[str], out: str, format: str) -> list[WorkItem]:
    """Every (image, target) pair as a WorkItem, image-major; PlanError when two pairs would write one output or
    the destination cannot be written (check_destination). An image whose output would not lie inside the
    destination gets an item with a `problem` and no output (it fails alone)."""
    check_destination(out)
    items, owners = [], {}
    for image in images:
        for index, label in enumerate(labels):
            try:
                relative = output_relative(image.stem, label, format)
                check_name_lengths(out, relative)
                if not inside_destination(out, relative):
                    raise UnsafeNameError("its output would lie outside the destination (a symbolic link below it "
                                          "points elsewhere)")
            except UnsafeNameError as error:
                problem = (f"{printable(image.uri)}: not animated: its name below the input "
                           f"('{printable(image.stem)}') cannot name an output: {error}")
                items.append(WorkItem(printable(image.uri), "", "", index, label, problem=problem))
                continue
            if relative in owners:
                raise PlanError(f"{owners[relative]} and {image.uri} would both be written to "
                                f"{storage.join(out, relative)}; rename one or animate them in separate jobs")
            owners[relative] = image.uri
            marker = f"{relative}/{FIRST_FRAME}" if format == "png" else relative
            items.append(WorkItem(image.uri, storage.join(out, relative), marker, index, label))
    return items


def existing_outputs(out: str) -> set[str]:
    """The files below `out` ('/'-separated relative paths), from one listing of the destination."""
    try:
        uris = storage.list_uris(out, recursive=True)
    except storage.StorageError:
        if storage.is_s3(out):
            raise
        return set()  # no destination folder yet
    prefix = out.rstrip("/") + "/"
    return {uri[len(prefix):].replace(os.sep, "/") for uri in uris}
