"""What an animate job will do: its inputs found, crossed with its targets into work items with output names, and
the items whose output already exists marked as done.

Inputs: a folder or `s3://` prefix (its images; with `recursive`, also those in sub-folders), a glob (local), an
image file or object, or a list: a `.txt` file with one input per line (blank lines and `#` comments skipped) or a
`.jsonl` file with one `{"input": ...}` object per line; relative entries are relative to the list's folder.
Listings keep files with an image extension (IMAGE_SUFFIXES, any case); a file named explicitly is taken as it is.

Outputs: `DEST/{stem}__{target}.{ext}`, where `stem` keeps the image's sub-folders below its input folder, prefix or
glob root (so recursive inputs are mirrored); `--format png` writes a folder `DEST/{stem}__{target}/` of frames.
"""
import json
import os
import posixpath
from dataclasses import dataclass
from typing import Optional
from urllib.parse import unquote, urlparse

import numpy as np

from ganbatch import storage

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
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
class WorkItem:
    """One video to make: `input` animated along target number `target` (labelled `label`) into `output`.

    `marker` is the file below the destination whose presence means the output is complete: the video, or the first
    frame of a PNG folder (written last); `source_aus` the image's own AUs (None: neutral); `problem` a reason known
    before rendering why the item cannot be made (it is then reported as failed).
    """

    input: str
    output: str
    marker: str
    target: int
    label: str
    source_aus: Optional[np.ndarray] = None
    problem: Optional[str] = None


def _is_glob(uri: str) -> bool:
    return not storage.is_s3(uri) and any(char in uri for char in _GLOB_CHARS)


def _local(uri: str) -> str:
    """An absolute local path for a plain path or file:// URI (workers need not share the driver's folder)."""
    path = unquote(urlparse(uri).path) if uri.startswith("file://") else uri
    return os.path.abspath(os.path.expanduser(path))


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


def _expand(uri: str, recursive: bool, from_list: Optional[str] = None) -> list[InputImage]:
    """The images one input names."""
    where = f"input {uri}" + (f" (listed in {from_list})" if from_list else "")
    uri = worker_uri(uri)
    lower = uri.lower()
    if lower.endswith(LIST_SUFFIXES):
        if from_list:
            raise PlanError(f"{where}: a list may not name another list")
        images = [image for entry in _list_entries(uri) for image in _expand(entry, recursive, uri)]
        if not images:
            raise PlanError(f"input list {uri} names no images")
        return images
    if lower.endswith(IMAGE_SUFFIXES) and not _is_glob(uri):
        if not storage.is_s3(uri) and not os.path.isfile(uri):
            raise PlanError(f"{where}: no such file")
        return [InputImage(uri, _stem(uri, None))]
    if _is_glob(uri):
        root = _glob_root(uri)
        found = storage.list_uris(uri, recursive=recursive, suffixes=IMAGE_SUFFIXES)
    else:
        if not storage.is_s3(uri) and os.path.isfile(uri):
            return [InputImage(uri, _stem(uri, None))]
        root = uri.rstrip("/") + "/" if storage.is_s3(uri) else uri
        try:
            found = storage.list_uris(uri, recursive=recursive, suffixes=IMAGE_SUFFIXES)
        except storage.StorageError as error:
            raise PlanError(f"{where}: {error.reason}") from None
    if not found:
        raise PlanError(f"{where}: no images ({', '.join(IMAGE_SUFFIXES)}) found"
                        + ("" if recursive else "; sub-folders are searched only with --recursive"))
    return [InputImage(found_uri, _stem(found_uri, root)) for found_uri in found]


def find_inputs(inputs: list[str], recursive: bool) -> list[InputImage]:
    """Every image the job's inputs name, in the order given (listings sorted), each once."""
    images, seen = [], set()
    for uri in inputs:
        for image in _expand(uri, recursive):
            if image.uri not in seen:
                seen.add(image.uri)
                images.append(image)
    return images


FIRST_FRAME = "frame_00000.png"


def output_relative(stem: str, label: str, format: str) -> str:
    """The output's path below the destination: `{stem}__{label}.{format}`, a folder `{stem}__{label}` for png."""
    name = f"{stem}__{label}"
    return name if format == "png" else f"{name}.{format}"


def worker_uri(uri: str) -> str:
    """A URI as workers use it (they need not share the driver's folder): s3:// as it is, local paths absolute."""
    return uri.rstrip("/") if storage.is_s3(uri) else _local(uri)


def plan_items(images: list[InputImage], labels: list[str], out: str, format: str) -> list[WorkItem]:
    """Every (image, target) pair as a WorkItem, image-major; PlanError when two pairs would write one output."""
    items, owners = [], {}
    for image in images:
        for index, label in enumerate(labels):
            relative = output_relative(image.stem, label, format)
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
