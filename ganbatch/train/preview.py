"""Sample grids: a few input faces, each rendered for a row of target expressions, with their attention masks.

Layout (uint8 RGB): a header row naming the columns (`ModelFamily.column_labels`: input, then each target), then
for every input face two rows: the face then its generated frames, and below them a cell labelled `mask` then the
attention masks in grayscale (white keeps the input pixel).
Rendering goes through `render.render_clip`.
"""
import numpy as np

from ganbatch.layout import preview_strip
from ganbatch.models.checkpoint import describe_generator
from ganbatch.models.networks import AttentionGenerator
from ganbatch.families import get_family
from ganbatch.render import render_clip

PREVIEW_FACES = 3
PREVIEW_COLUMNS = 6  # targets per row (`ModelFamily.preview_targets`: GANimation's six preview expressions)


HEADER_HEIGHT = 16


def _label(cell: np.ndarray, text: str) -> np.ndarray:
    """`cell` (uint8 H x W x 3) with `text` written in white near its top-left corner (PIL's built-in font)."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(cell)
    ImageDraw.Draw(image).text((3, 2), text, fill=(255, 255, 255))
    return np.asarray(image)


def sample_grid(generator: AttentionGenerator, faces: np.ndarray, targets: np.ndarray, device="cpu") -> np.ndarray:
    """The grid (see the module doc) for uint8 faces (K, S, S, 3) and per-column targets in the family's convention
    (GANimation (T, 17) AUs 0-5, GANnotation (T, 66, 2) points at size S)."""
    size = faces.shape[1]
    info = describe_generator(generator, image_size=size)
    columns = len(targets)
    blank = _label(np.zeros((size, size, 3), np.uint8), "mask")
    header = np.concatenate([_label(np.full((HEADER_HEIGHT, size, 3), 40, np.uint8), text)
                             for text in get_family(info.family).column_labels(columns)], axis=1)
    rows = [header]
    for face in faces:
        clip = render_clip(generator, info, face, targets, device=device, return_maps=True)
        masks = np.repeat(np.round(clip.attention * 255).astype(np.uint8)[..., None], 3, axis=3)
        rows.append(np.concatenate([face, preview_strip(clip.frames, columns)], axis=1))
        rows.append(np.concatenate([blank, preview_strip(masks, columns)], axis=1))
    return np.concatenate(rows, axis=0)
