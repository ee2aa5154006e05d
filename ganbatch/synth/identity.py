"""Synthetic identities: the per-person parameters of the procedural face renderer.

Lengths are in canonical face units: the rendered image spans [-1, 1] on both axes (y points down) before the
identity's own head pose is applied, and the origin is the midpoint between jaw landmarks 0 and 16.
"""
import colorsys
from dataclasses import dataclass, fields

import numpy as np

Color = tuple[int, int, int]

HAIR_STYLES = ("short", "long", "buzz", "fringe", "curly")

# Palettes the samplers interpolate between (light to dark skin; common hair and iris colours).
SKIN_TONES = ((255, 222, 196), (240, 192, 160), (222, 168, 130), (196, 136, 98), (160, 104, 70), (118, 76, 52),
              (86, 56, 40))
HAIR_COLORS = ((28, 24, 24), (58, 40, 30), (100, 66, 42), (140, 72, 40), (196, 160, 100), (150, 150, 150))
EYE_COLORS = ((66, 42, 28), (104, 66, 38), (112, 100, 52), (70, 110, 64), (64, 104, 160), (104, 120, 130))
LIP_TINT = (176, 72, 84)


@dataclass(frozen=True)
class Identity:
    """Everything that makes one synthetic person look like themself, independent of expression."""

    face_width: float  # half width of the face at the jaw top (landmarks 0 and 16)
    chin_drop: float  # distance from the jaw-top line down to the chin (landmark 8)
    jaw_squareness: float  # superellipse exponent of the jaw outline: 2 is round, 3 and more is square
    forehead_height: float  # height of the skull arc above the jaw-top line, as a multiple of face_width
    eye_spacing: float  # distance from the midline to each eye centre
    eye_size: float  # half width of an eye opening
    eye_tilt: float  # how much higher the outer eye corners sit than the inner ones
    iris_size: float  # iris radius
    brow_height: float  # vertical position of the brows' upper edge
    brow_thickness: float
    brow_arch: float
    nose_length: float  # from the eye line to the nose tip
    nose_width: float  # multiplier of the nostril-wing spread
    mouth_height: float  # vertical position of the mouth line
    mouth_width: float  # half width of the mouth
    upper_lip: float  # upper lip thickness
    lower_lip: float  # lower lip thickness
    hair_style: str  # one of HAIR_STYLES
    hairline: float  # vertical position of the hairline above the jaw-top line (negative)
    skin: Color
    hair: Color
    eyes: Color
    lips: Color
    background_top: Color
    background_bottom: Color
    clothes: Color
    shift_x: float  # head translation in image half-widths
    shift_y: float
    scale: float  # head scale factor
    roll_degrees: float  # in-plane head rotation, counter-clockwise on screen

    @classmethod
    def from_dict(cls, data, where="identity"):
        """The identity that `dataclasses.asdict` (e.g. via JSON) turned into `data`; ValueError naming `where`."""
        expected = {field.name: field.type for field in fields(cls)}
        missing, unknown = expected.keys() - data.keys(), data.keys() - expected.keys()
        if missing or unknown:
            raise ValueError(f"{where}: missing fields {sorted(missing)}, unknown fields {sorted(unknown)}")
        values = {}
        for name, kind in expected.items():
            value = data[name]
            if kind is Color:
                if len(value) != 3:
                    raise ValueError(f"{where}.{name}: expected an RGB triple, got {value!r}")
                value = tuple(int(channel) for channel in value)
            elif name == "hair_style":
                if value not in HAIR_STYLES:
                    raise ValueError(f"{where}.{name}: expected one of {HAIR_STYLES}, got {value!r}")
            else:
                value = float(value)
            values[name] = value
        return cls(**values)


def _palette_color(rng, palette, jitter):
    """A colour between two neighbouring palette entries, with a little per-channel jitter."""
    position = rng.uniform(0, len(palette) - 1)
    low = int(position)
    high = min(low + 1, len(palette) - 1)
    mixed = np.array(palette[low]) * (1 - (position - low)) + np.array(palette[high]) * (position - low)
    return _to_color(mixed + rng.normal(0, jitter, 3))


def _to_color(values):
    return tuple(int(v) for v in np.clip(np.round(values), 0, 255))


def _hsv_color(hue, saturation, value):
    return _to_color(np.array(colorsys.hsv_to_rgb(hue % 1.0, saturation, value)) * 255)


def sample_identity(seed):
    """Draw one identity from an int seed or a `numpy.random.Generator` (same seed, same identity)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    skin = _palette_color(rng, SKIN_TONES, 4)
    # dark hair is more common, and much more common on dark skin
    dark_skin = np.mean(skin) < 150
    hair = _palette_color(rng, HAIR_COLORS[:3] if dark_skin or rng.random() < 0.5 else HAIR_COLORS, 6)
    lips = _to_color(np.array(skin) * 0.62 + np.array(LIP_TINT) * 0.38 - rng.uniform(0, 25))
    background_hue = rng.random()
    background_value = rng.uniform(0.45, 0.9)
    return Identity(
        face_width=rng.uniform(0.56, 0.66),
        chin_drop=rng.uniform(0.7, 0.78),
        jaw_squareness=rng.uniform(2.0, 2.8),
        forehead_height=rng.uniform(1.35, 1.55),
        eye_spacing=rng.uniform(0.25, 0.29),
        eye_size=rng.uniform(0.125, 0.145),
        eye_tilt=rng.uniform(-0.01, 0.025),
        iris_size=rng.uniform(0.058, 0.066),
        brow_height=rng.uniform(-0.33, -0.29),
        brow_thickness=rng.uniform(0.035, 0.055),
        brow_arch=rng.uniform(0.015, 0.045),
        nose_length=rng.uniform(0.28, 0.33),
        nose_width=rng.uniform(0.85, 1.2),
        mouth_height=rng.uniform(0.45, 0.5),
        mouth_width=rng.uniform(0.19, 0.23),
        upper_lip=rng.uniform(0.04, 0.055),
        lower_lip=rng.uniform(0.05, 0.07),
        hair_style=HAIR_STYLES[rng.integers(len(HAIR_STYLES))],
        hairline=rng.uniform(-0.68, -0.6),
        skin=skin,
        hair=hair,
        eyes=_palette_color(rng, EYE_COLORS, 5),
        lips=lips,
        background_top=_hsv_color(background_hue, rng.uniform(0.1, 0.45), background_value),
        background_bottom=_hsv_color(background_hue + rng.uniform(-0.08, 0.08), rng.uniform(0.1, 0.45),
                                     background_value * rng.uniform(0.6, 0.9)),
        clothes=_hsv_color(rng.random(), rng.uniform(0.2, 0.7), rng.uniform(0.25, 0.85)),
        shift_x=rng.uniform(-0.04, 0.04),
        shift_y=rng.uniform(-0.025, 0.025),
        scale=rng.uniform(0.96, 1.04),
        roll_degrees=rng.uniform(-6, 6),
    )


def sample_identities(n, seed=0):
    """`n` identities; identity i depends only on (seed, i), so growing n keeps the earlier ones."""
    return [sample_identity(np.random.default_rng([seed, i])) for i in range(n)]
