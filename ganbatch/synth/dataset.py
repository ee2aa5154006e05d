"""Synthetic data sets on disk: GANimation's layout, an OpenFace CSV, per-image landmarks and a contact sheet.

Layout of `write_dataset(out_dir, ...)`:

    imgs/id0007_003.jpg        face crops (JPEG, quality 95); the name carries the identity
    train_ids.csv, test_ids.csv  one image file name per line; split by identity, never by image
    aus_openface.pkl           ("ganimation") {image stem: float64 (17,) AU intensities 0-5}, as GANimation reads it
    aus_openface.csv           ("openface") the same intensities as an OpenFace CSV with a leading `name` column
    landmarks/id0007_003.txt   ("landmarks") the 68 iBUG points of the image, one row `x1 y1 ... x68 y68`
    identities.json            {identity name: Identity fields}, to re-render ground truth for any expression
    contact_sheet.png          identities x named expressions

Expression sampler (`sample_expression_aus`), per image, one of three kinds drawn by the weights of an
`ExpressionMix` (by default neutral 0.15, prototypes 0.45, sparse 0.40): neutral; a named prototype from
`ganbatch.targets.aus.EXPRESSIONS`, scaled by U(0.3, 1.25) with each AU jittered by U(0.8, 1.2); or sparse, 1-4 AUs
picked uniformly, each at U(0.5, 5). Intensities are rounded to 0.01, OpenFace's precision. Prototype AUs peak at
2-5 and the sparse draws are uniform, so every AU covers its whole 0-5 range while the prototypes keep realistic
combinations. The AUs no prototype uses (AU25) appear only in sparse draws: a larger sparse weight shows each AU
alone more often.
"""
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ganbatch.choices import DATASET_LAYOUTS
from ganbatch.synth.face import render_face
from ganbatch.synth.identity import Identity, sample_identities
from ganbatch.targets.aus import AU_SCALE, EXPRESSIONS, NUM_AUS, expression_aus, write_aus_pkl, write_openface_csv
from ganbatch.targets.landmarks import write_landmarks

PROTOTYPES = tuple(name for name in EXPRESSIONS if name != "neutral")
CONTACT_SHEET_EXPRESSIONS = ("neutral", "happy", "sad", "surprise", "fear", "anger", "disgust", "contempt", "blink")
JPEG_QUALITY = 95


@dataclass(frozen=True)
class ExpressionMix:
    """Relative weights of the sampler's three kinds of expression (non-negative, normalised by their sum)."""

    neutral: float = 0.15
    prototypes: float = 0.45
    sparse: float = 0.40

    def __post_init__(self):
        weights = (self.neutral, self.prototypes, self.sparse)
        if not all(np.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"expression mix: expected non-negative weights with a positive sum, got {weights}")


@dataclass(frozen=True)
class DatasetSummary:
    """What `write_dataset` wrote."""

    out_dir: str
    size: int
    layouts: tuple[str, ...]
    identities: int
    images: int
    train_images: int
    test_images: int
    train_identities: tuple[str, ...]
    test_identities: tuple[str, ...]


def sample_expression_aus(rng, mix: ExpressionMix = ExpressionMix()):
    """One AU vector (float64 (17,), 0-5) drawn from `mix` (see the module docstring)."""
    total = mix.neutral + mix.prototypes + mix.sparse
    draw = rng.random() * total
    if draw < mix.neutral:
        return np.zeros(NUM_AUS)
    if draw < mix.neutral + mix.prototypes:
        name = PROTOTYPES[rng.integers(len(PROTOTYPES))]
        aus = expression_aus(name, rng.uniform(0.3, 1.25)).astype(np.float64)
        aus = np.clip(aus * rng.uniform(0.8, 1.2, NUM_AUS), 0.0, AU_SCALE)
    else:
        aus = np.zeros(NUM_AUS)
        chosen = rng.choice(NUM_AUS, size=rng.integers(1, 5), replace=False)
        aus[chosen] = rng.uniform(0.5, AU_SCALE, len(chosen))
    return np.round(aus, 2)  # so the pickle, the CSV and the rendered face agree exactly


def identity_name(index):
    """The name of the data set's identity `index`, the prefix of its image names."""
    return f"id{index:04d}"


def split_identities(names, test_fraction, rng):
    """(train, test) name tuples with round(test_fraction * len(names)) random test identities.

    A positive `test_fraction` with two or more names always leaves at least one identity on each side.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction: expected a value in [0, 1), got {test_fraction}")
    count = int(round(test_fraction * len(names)))
    if test_fraction > 0 and len(names) >= 2:
        count = min(max(count, 1), len(names) - 1)
    test = set(rng.permutation(len(names))[:count].tolist())
    return (tuple(n for i, n in enumerate(names) if i not in test), tuple(n for i, n in enumerate(names) if i in test))


def render_contact_sheet(identities, size=128, expressions=CONTACT_SHEET_EXPRESSIONS, intensity=1.0):
    """A PIL image with one row per identity and one column per named expression, labelled on top."""
    label_height = 14
    sheet = Image.new("RGB", (size * len(expressions), label_height + size * len(identities)), (255, 255, 255))
    labels = ImageDraw.Draw(sheet)
    for column, name in enumerate(expressions):
        labels.text((column * size + 3, 2), name, fill=(0, 0, 0))
        aus = expression_aus(name, intensity)
        for row, identity in enumerate(identities):
            image, _ = render_face(identity, aus, size)
            sheet.paste(Image.fromarray(image), (column * size, label_height + row * size))
    return sheet


class _DatasetFiles:
    """The one place `write_dataset` puts files: a local directory (swap this class to write elsewhere)."""

    def __init__(self, root):
        self.root = Path(root)

    def path(self, relative):
        """Local path for `relative`, its folder created (for writers that want a path)."""
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def write_bytes(self, relative, data):
        self.path(relative).write_bytes(data)

    def write_text(self, relative, text):
        self.write_bytes(relative, text.encode("utf-8"))


def _encoded(write, *args, text=False):
    """The bytes a `write(file, *args)` function writes."""
    buffer = io.StringIO() if text else io.BytesIO()
    write(buffer, *args)
    value = buffer.getvalue()
    return value.encode("utf-8") if text else value


def _jpeg(image):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def write_dataset(out_dir, identities, per_identity, size=128, seed=0, layouts=DATASET_LAYOUTS, test_fraction=0.2,
                  contact_sheet=True, mix=ExpressionMix()):
    """Render `per_identity` expressions of each identity, drawn from `mix`, into `out_dir` (layout in the module
    docstring).

    `identities` is a list of `Identity` or a count (then `sample_identities(count, seed)`); `seed` also drives the
    expression sampler and the identity split, so the same arguments write the same files.
    """
    unknown = [layout for layout in layouts if layout not in DATASET_LAYOUTS]
    if unknown:
        raise ValueError(f"layouts: unknown {unknown}, expected some of {DATASET_LAYOUTS}")
    if isinstance(identities, int):
        identities = sample_identities(identities, seed)
    if not identities or not all(isinstance(identity, Identity) for identity in identities):
        raise ValueError("identities: expected a positive count or a non-empty list of Identity")
    if per_identity < 1:
        raise ValueError(f"per_identity: expected at least 1 image per identity, got {per_identity}")
    rng = np.random.default_rng(seed)
    files = _DatasetFiles(out_dir)
    names = [identity_name(index) for index in range(len(identities))]
    train, test = split_identities(names, test_fraction, rng)

    image_aus, image_names, image_identities = [], [], []
    for name, identity in zip(names, identities):
        for index in range(per_identity):
            aus = sample_expression_aus(rng, mix)
            image, landmarks = render_face(identity, aus, size)
            stem = f"{name}_{index:03d}"
            files.write_bytes(f"imgs/{stem}.jpg", _jpeg(image))
            if "landmarks" in layouts:
                write_landmarks(files.path(f"landmarks/{stem}.txt"), landmarks)
            image_aus.append(aus)
            image_names.append(stem)
            image_identities.append(name)

    for split_name, members in (("train_ids.csv", set(train)), ("test_ids.csv", set(test))):
        lines = [f"{stem}.jpg\n" for stem, name in zip(image_names, image_identities) if name in members]
        files.write_text(split_name, "".join(lines))
    if "ganimation" in layouts:
        files.write_bytes("aus_openface.pkl", _encoded(write_aus_pkl, dict(zip(image_names, image_aus))))
    if "openface" in layouts:
        files.write_bytes("aus_openface.csv", _encoded(write_openface_csv, image_names, np.array(image_aus),
                                                       text=True))
    files.write_text("identities.json", json.dumps({n: asdict(i) for n, i in zip(names, identities)}, indent=1))
    if contact_sheet:
        buffer = io.BytesIO()
        render_contact_sheet(identities[:6], size).save(buffer, format="PNG")
        files.write_bytes("contact_sheet.png", buffer.getvalue())
    return DatasetSummary(out_dir=str(out_dir), size=size, layouts=tuple(layouts), identities=len(identities),
                          images=len(image_names), train_images=len(train) * per_identity,
                          test_images=len(test) * per_identity, train_identities=train, test_identities=test)


def read_identities(path):
    """{identity name: Identity} from a data set's identities.json."""
    with open(path, encoding="utf-8") as file:
        data = json.load(file)
    return {name: Identity.from_dict(fields, where=f"{path}: {name}") for name, fields in data.items()}
