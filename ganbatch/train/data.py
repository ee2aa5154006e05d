"""Training data sets: finding the images and their labels in a folder or an S3 prefix, and caching them per node.

Layouts, recognised by their files (paths relative to the data set root):

- GANimation's: `imgs/*.jpg`, `aus_openface.pkl` (image stem -> 17 AU intensities 0-5), `train_ids.csv` (one image
  file name per line; `test_ids.csv` is not used for training).
- Images with an OpenFace CSV: images in `imgs/` (or the root), and either `aus_openface.csv` with a `name` column
  (image stem or file name per row, as `ganbatch synth` writes it) or one OpenFace FaceLandmarkImg CSV per image in
  `processed/<stem>.csv` (OpenFace's default output folder; the most confident face of each file is used).
- GANnotation: images with 68- or 66-point landmark files `landmarks/<stem>.txt` (or `.csv`, `.npy`), one row of
  `x1 y1 x2 y2 ...` in the image's pixel coordinates.

With a `train_ids.csv` the set is the listed images, and each must have an image file and a label; without one it
is every image, and images without labels and labels without images are both errors. Errors name the file and
count what is missing.

Identities (for GANnotation's training pairs) come from image names: the stem without a trailing `_<digits>`
(`id0007_003` -> `id0007`, `video12_000345` -> `video12`); a name without such a suffix is an identity of its own.
"""
import contextlib
import fcntl
import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from ganbatch.io import storage
from ganbatch.io.images import IMAGE_SUFFIXES, ImageDecodeError, probe_image
from ganbatch.families import get_family
from ganbatch.targets.aus import NUM_AUS, AUError, read_aus_pkl, read_openface_csv
from ganbatch.targets.landmarks import LandmarkError, read_landmarks, to_gannotation66

LANDMARK_SUFFIXES = (".txt", ".csv", ".npy")
IDS_FILE = "train_ids.csv"
AUS_PICKLE = "aus_openface.pkl"
AUS_CSV = "aus_openface.csv"
PER_IMAGE_CSV_FOLDER = "processed"
LANDMARK_FOLDER = "landmarks"
IMAGE_FOLDER = "imgs"
_EXAMPLES = 5
_IDENTITY_SUFFIX = re.compile(r"_\d+$")


class DataError(ValueError):
    """A training data set that cannot be used: `where` (a file or folder) and the reason."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason

    def __reduce__(self):  # rebuilt from its fields when it crosses a process boundary (Ray Train workers)
        return type(self), (self.where, self.reason)


@dataclass(frozen=True)
class TrainingData:
    """The samples of a training set: image paths (relative to root) and labels, in one order.

    aus: float32 (N, 17) OpenFace intensities 0-5 (GANimation) or None; landmarks: float32 (N, 66, 2) GANnotation
    points in the image's own pixel coordinates, or None. identities: one name per image (see the module doc).
    """

    root: str
    layout: str
    label_file: str
    names: tuple[str, ...]
    images: tuple[str, ...]
    identities: tuple[str, ...]
    aus: np.ndarray | None = None
    landmarks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.names)

    def partners(self) -> list[np.ndarray]:
        """For each image, the indices of the other images of its identity (empty when it has none)."""
        groups: dict[str, list[int]] = {}
        for index, identity in enumerate(self.identities):
            groups.setdefault(identity, []).append(index)
        return [np.array([j for j in groups[identity] if j != index], dtype=np.int64)
                for index, identity in enumerate(self.identities)]

    def describe(self) -> str:
        """One line: how many images and identities, from which layout."""
        pairs = sum(len(p) > 0 for p in self.partners())
        return (f"{len(self)} images of {len(set(self.identities))} identities ({pairs} with a same-identity "
                f"partner), {self.layout} layout, labels from {self.label_file}")


def identity_of(stem: str) -> str:
    """The identity an image name belongs to: its stem without a trailing `_<digits>`."""
    return _IDENTITY_SUFFIX.sub("", stem) or stem


def _stem(name: str) -> str:
    path = PurePosixPath(name.strip())
    return path.stem if path.suffix.lower() in IMAGE_SUFFIXES else path.name


def _listing(uri: str) -> list[str]:
    """Every file under uri, as '/'-separated paths relative to it."""
    try:
        uris = storage.list_uris(uri, recursive=True)
    except storage.StorageError as error:
        raise DataError(uri, f"cannot list the data set ({error.reason})") from None
    if storage.is_s3(uri):
        prefix = uri.rstrip("/") + "/"
        return [u[len(prefix):] for u in uris]
    return [Path(u).relative_to(uri).as_posix() for u in uris]


def _examples(names) -> str:
    names = sorted(names)
    shown = ", ".join(names[:_EXAMPLES])
    return shown + (f" (+{len(names) - _EXAMPLES} more)" if len(names) > _EXAMPLES else "")


def _find_images(root: str, files: list[str]) -> dict[str, str]:
    """{stem: relative path} of the images in imgs/ (or the root when there is no imgs/ folder)."""
    folder = IMAGE_FOLDER if any(f.startswith(IMAGE_FOLDER + "/") for f in files) else ""
    images: dict[str, str] = {}
    for relative in files:
        path = PurePosixPath(relative)
        if str(path.parent) != (folder or ".") or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.stem in images:
            raise DataError(storage.join(root, folder or "."),
                            f"two images share the name {path.stem!r} ({images[path.stem]}, {relative})")
        images[path.stem] = relative
    if not images:
        raise DataError(storage.join(root, folder) if folder else root,
                        f"no images ({', '.join(IMAGE_SUFFIXES)}) found")
    return images


def _read_ids(uri: str) -> list[str]:
    text = storage.read_bytes(uri).decode("utf-8-sig")
    ids = [_stem(line) for line in text.splitlines() if line.strip()]
    if not ids:
        raise DataError(uri, "lists no images")
    return ids


def _au_table(root: str, files: list[str]) -> tuple[dict[str, np.ndarray], str]:
    """({stem: AU vector}, label file) from the first AU source the data set has."""
    file_set = set(files)
    try:
        if AUS_PICKLE in file_set:
            uri = storage.join(root, AUS_PICKLE)
            return read_aus_pkl(storage.read_bytes(uri)), AUS_PICKLE
        if AUS_CSV in file_set:
            uri = storage.join(root, AUS_CSV)
            table = read_openface_csv(io.StringIO(storage.read_bytes(uri).decode("utf-8-sig")))
            if table.names is None:
                raise DataError(uri, "has no `name` column saying which image each row belongs to")
            return {_stem(name): vector for name, vector in zip(table.names, table.aus)}, AUS_CSV
        per_image = [f for f in files if PurePosixPath(f).parent.as_posix() == PER_IMAGE_CSV_FOLDER
                     and f.lower().endswith(".csv")]
        if per_image:
            table = {}
            for relative in per_image:
                uri = storage.join(root, relative)
                rows = read_openface_csv(io.StringIO(storage.read_bytes(uri).decode("utf-8-sig")))
                if len(rows) == 0:
                    raise DataError(uri, "holds no face")
                best = int(np.argmax(rows.confidence)) if rows.confidence is not None else 0
                table[PurePosixPath(relative).stem] = rows.aus[best]
            return table, f"{PER_IMAGE_CSV_FOLDER}/*.csv"
    except AUError as error:
        raise DataError(uri, str(error).removeprefix("<stream>: ").removeprefix("<bytes>: ")) from None
    raise DataError(root, f"no AU labels: expected {AUS_PICKLE}, {AUS_CSV} (with a name column) or "
                          f"{PER_IMAGE_CSV_FOLDER}/<image>.csv OpenFace files")


def _landmark_table(root: str, files: list[str]) -> tuple[dict[str, np.ndarray], str]:
    """({stem: (66, 2) points}, label folder) from landmarks/<stem>.txt|.csv|.npy."""
    table = {}
    for relative in files:
        path = PurePosixPath(relative)
        if path.parent.as_posix() != LANDMARK_FOLDER or path.suffix.lower() not in LANDMARK_SUFFIXES:
            continue
        uri = storage.join(root, relative)
        try:
            points = read_landmarks(io.BytesIO(storage.read_bytes(uri)))
        except LandmarkError as error:
            raise DataError(uri, str(error).removeprefix("<stream>: ")) from None
        if len(points) != 1:
            raise DataError(uri, f"holds {len(points)} landmark sets; a training image needs exactly one")
        if path.stem in table:
            raise DataError(uri, f"a second landmark file for image {path.stem!r}")
        table[path.stem] = to_gannotation66(points[0])
    if not table:
        raise DataError(root, f"no landmark files: expected {LANDMARK_FOLDER}/<image>.txt (68 or 66 points per "
                              "image, `x1 y1 x2 y2 ...`)")
    return table, f"{LANDMARK_FOLDER}/"


# the label reader of each kind of condition (`ModelFamily.condition`)
_LABEL_TABLES = {"aus": _au_table, "landmarks": _landmark_table}


def _check_coverage(root: str, wanted: list[str], images: dict, labels: dict, ids_uri: str | None,
                    label_file: str) -> None:
    """Errors for wanted names without an image or a label, and (without an ids file) labels without images."""
    problems = []
    source = ids_uri or "the image folder"
    no_image = [n for n in wanted if n not in images]
    if no_image:
        problems.append(f"{len(no_image)} of {len(wanted)} images listed in {source} have no image file: "
                        f"{_examples(no_image)}")
    no_label = [n for n in wanted if n in images and n not in labels]
    if no_label:
        problems.append(f"{len(no_label)} of {len(wanted)} images have no label in {label_file}: "
                        f"{_examples(no_label)}")
    if ids_uri is None:
        unused = [n for n in labels if n not in images]
        if unused:
            problems.append(f"{len(unused)} of {len(labels)} labels in {label_file} name no image: "
                            f"{_examples(unused)}")
    if problems:
        raise DataError(root, "; ".join(problems))


def find_training_data(uri: str, family: str) -> TrainingData:
    """Index the data set at uri (folder or s3:// prefix) for `family`; reads labels, not images.

    Raises DataError naming the file or folder for missing files, unreadable labels, wrong AU columns or landmark
    counts, and images and labels that do not match (with counts and examples).
    """
    uri = storage.absolute(str(uri))
    files = _listing(uri)
    if not files:
        raise DataError(uri, "is empty or does not exist")
    images = _find_images(uri, files)
    condition = get_family(family).condition
    labels, label_file = _LABEL_TABLES[condition](uri, files)
    layout = ("GANimation" if label_file == AUS_PICKLE else "OpenFace CSV") if condition == "aus" else "landmark files"
    ids_uri = storage.join(uri, IDS_FILE) if IDS_FILE in files else None
    wanted = _read_ids(ids_uri) if ids_uri else sorted(images)
    _check_coverage(uri, wanted, images, labels, ids_uri, label_file)
    stacked = np.stack([np.asarray(labels[name], dtype=np.float32) for name in wanted])
    if not np.all(np.isfinite(stacked)):
        bad = [name for name, row in zip(wanted, stacked) if not np.all(np.isfinite(row))]
        raise DataError(storage.join(uri, label_file), f"{len(bad)} labels hold NaN or infinite values: "
                                                       f"{_examples(bad)}")
    if condition == "aus" and stacked.shape[1:] != (NUM_AUS,):
        raise DataError(storage.join(uri, label_file), f"expected {NUM_AUS} AU intensities per image")
    data = TrainingData(
        root=uri, layout=layout, label_file=label_file, names=tuple(wanted),
        images=tuple(images[name] for name in wanted), identities=tuple(identity_of(n) for n in wanted),
        aus=stacked if condition == "aus" else None, landmarks=stacked if condition == "landmarks" else None,
    )
    if not storage.is_s3(uri):
        check_image_headers(data)
    return data


def check_image_headers(data: TrainingData) -> None:
    """DataError listing the images whose headers do not decode as a usable image (not an image, an unsupported
    format, too small, a decompression bomb), so a data set fails before Ray starts rather than inside workers.
    Reads every file (headers only are decoded); meant for local data sets."""
    bad = []
    for relative in data.images:
        uri = storage.join(data.root, relative)
        try:
            probe_image(storage.read_bytes(uri), relative)
        except ImageDecodeError as error:
            bad.append(f"{relative} ({error.reason})")
        except storage.StorageError as error:
            bad.append(f"{relative} ({error.reason})")
    if bad:
        shown = "; ".join(bad[:_EXAMPLES]) + (f" (+{len(bad) - _EXAMPLES} more)" if len(bad) > _EXAMPLES else "")
        raise DataError(data.root, f"{len(bad)} of {len(data.images)} images cannot be used: {shown}")


def cache_root() -> Path:
    """Where S3 data sets are cached on a node: $GANBATCH_CACHE, else ~/.cache/ganbatch."""
    return Path(os.environ.get("GANBATCH_CACHE") or Path.home() / ".cache" / "ganbatch")


@contextlib.contextmanager
def _node_lock(path: Path):
    """An exclusive lock shared by the processes of one node (flock on path)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def local_images_root(data: TrainingData) -> Path:
    """A local folder holding data.images: the data set itself when local; for S3, a per-node cache that the
    first worker of a node fills (downloading only missing files) while the others wait on a file lock."""
    if not storage.is_s3(data.root):
        return Path(data.root)
    folder = cache_root() / "data" / hashlib.sha256(data.root.encode()).hexdigest()[:16]
    with _node_lock(folder.with_suffix(".lock")):
        for relative in data.images:
            target = folder / relative
            if not target.exists():
                storage.download_file(storage.join(data.root, relative), target)
    return folder
