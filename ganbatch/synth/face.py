"""Procedural face renderer: draws an identity from 68 iBUG landmarks and a few shading scalars.

Everything that moves with expression is drawn from the landmarks, so the same code renders an AU-driven face
(`render_face`) and a face posed by any landmark set (`render_face_from_landmarks`). Things that do not move with
expression (background, hair, ears, neck) hang off a head frame spanned by jaw points 0 and 16. The face is drawn
with PIL at SUPERSAMPLE times the output size and box-filtered down, which anti-aliases every edge.
"""
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from ganbatch.synth.geometry import Shading, face_geometry
from ganbatch.targets.landmarks import NUM_IBUG

SUPERSAMPLE = 4

MOUTH_INTERIOR = (44, 12, 18)
TEETH = (238, 234, 222)
SCLERA = (242, 240, 234)
PUPIL = (16, 12, 12)
EYELINER = (28, 20, 20)


def _color(color, factor=1.0, add=0.0):
    """A colour scaled by `factor` and shifted by `add`, clipped to 0-255."""
    return tuple(int(min(255, max(0, round(c * factor + add)))) for c in color)


def _crease(color, depth):
    """A darker `color` for lines and creases; the absolute drop keeps them visible on dark skin."""
    return _color(color, 1.0 - depth, -40.0 * depth)


def _mix(color_a, color_b, weight_b):
    return tuple(int(round(a * (1 - weight_b) + b * weight_b)) for a, b in zip(color_a, color_b))


@lru_cache(maxsize=None)
def _catmull_rom_weights(count, samples):
    """Matrix mapping `count` control points to a Catmull-Rom curve through them, `samples` points per segment.

    The curve is extended past each end by mirroring the neighbouring control point.
    """
    identity = np.eye(count)
    extended = np.array([2 * identity[0] - identity[1], *identity, 2 * identity[-1] - identity[-2]])
    t = np.linspace(0, 1, samples, endpoint=False)[:, None]
    basis = 0.5 * np.hstack([-t**3 + 2 * t**2 - t, 3 * t**3 - 5 * t**2 + 2, -3 * t**3 + 4 * t**2 + t, t**3 - t**2])
    rows = [basis @ extended[i:i + 4] for i in range(count - 1)]
    return np.vstack(rows + [identity[None, -1]])


def spline(points, samples=6):
    """A smooth open curve (Catmull-Rom) through `points` (N x 2), from the first to the last."""
    points = np.asarray(points, dtype=np.float64)
    return _catmull_rom_weights(len(points), samples) @ points


def _column_clamp(shape, top_curve, bottom_curve):
    """Clip the vertical extent of `shape` (points) to the band between two curves that run left to right."""
    top_curve = top_curve[np.argsort(top_curve[:, 0])]
    bottom_curve = bottom_curve[np.argsort(bottom_curve[:, 0])]
    top = np.interp(shape[:, 0], top_curve[:, 0], top_curve[:, 1])
    bottom = np.maximum(top, np.interp(shape[:, 0], bottom_curve[:, 0], bottom_curve[:, 1]))
    x = np.clip(shape[:, 0], max(top_curve[0, 0], bottom_curve[0, 0]), min(top_curve[-1, 0], bottom_curve[-1, 0]))
    return np.column_stack([x, np.clip(shape[:, 1], top, bottom)])


@lru_cache(maxsize=None)
def _arc(start, stop, samples):
    """Cosines and sines of `samples` angles from `start` to `stop`."""
    angle = np.linspace(start, stop, samples)
    return np.cos(angle), np.sin(angle)


@dataclass(frozen=True)
class HeadFrame:
    """The head's canonical axes in supersampled pixels, spanned by jaw points 0 and 16."""

    center: np.ndarray  # midpoint of jaw points 0 and 16
    across: np.ndarray  # unit vector from point 0 to point 16 (image right for an upright face)
    down: np.ndarray  # unit vector towards the chin
    unit: float  # pixels per canonical unit

    @classmethod
    def from_landmarks(cls, points, face_width):
        """The frame of supersampled landmarks `points` for a face whose jaw top is 2 * face_width wide."""
        span = points[16] - points[0]
        length = float(np.hypot(*span))
        across = span / length
        return cls(center=(points[0] + points[16]) / 2, across=across, down=np.array([-across[1], across[0]]),
                   unit=length / (2 * face_width))

    def at(self, across, down, origin=None):
        """Points `across`/`down` canonical units from `origin` (default: the frame centre)."""
        origin = self.center if origin is None else origin
        across, down = np.asarray(across, dtype=np.float64), np.asarray(down, dtype=np.float64)
        return origin + self.unit * (across[..., None] * self.across + down[..., None] * self.down)

    def ellipse(self, across, down, radius_across, radius_down, start=0.0, stop=2 * np.pi, samples=28, origin=None):
        """Points on an ellipse arc centred `across`/`down` from `origin` (angle 0 points across, pi/2 down)."""
        cos, sin = _arc(start, stop, samples)
        return self.at(across + radius_across * cos, down + radius_down * sin, origin)


class _Painter:
    """PIL drawing in supersampled pixels, with widths in canonical units of a head frame."""

    def __init__(self, image, frame):
        self.opaque = ImageDraw.Draw(image)
        self.blended = ImageDraw.Draw(image, "RGBA")
        self.frame = frame

    def polygon(self, points, color, alpha=255):
        """A filled polygon, blended over the image when `alpha` is below 255."""
        if alpha < 1:
            return
        draw = self.opaque if alpha >= 255 else self.blended
        draw.polygon(np.asarray(points).ravel().tolist(), fill=(*color, int(alpha)) if alpha < 255 else color)

    def line(self, points, color, width, alpha=255):
        """A polyline `width` canonical units wide."""
        if alpha < 1:
            return
        pixels = max(1, int(round(width * self.frame.unit)))
        draw = self.opaque if alpha >= 255 else self.blended
        draw.line(np.asarray(points).ravel().tolist(), fill=(*color, int(alpha)) if alpha < 255 else color,
                  width=pixels)

    def strip(self, curve, thickness, color, alpha=255, direction=None):
        """A band from `curve` towards `direction` (default: up the face), `thickness` canonical units per point."""
        direction = -self.frame.down if direction is None else direction
        offset = curve + self.frame.unit * np.asarray(thickness)[:, None] * direction
        self.polygon(np.vstack([curve, offset[::-1]]), color, alpha)


def _background(identity, side):
    """Vertical gradient between the identity's two background colours, `side` pixels square."""
    t = np.linspace(0.0, 1.0, side)[:, None, None]
    tilt = np.linspace(-0.15, 0.15, side)[None, :, None]
    weight = np.clip(t + tilt * (identity.roll_degrees / 6.0), 0, 1)
    rows = np.array(identity.background_top) * (1 - weight) + np.array(identity.background_bottom) * weight
    return Image.fromarray(np.broadcast_to(rows, (side, side, 3)).astype(np.uint8))


@lru_cache(maxsize=32)
def _static_layer(identity, side, frame_key):
    """Background, clothes, neck, ears and back hair: everything drawn before (behind) the face."""
    center, across, unit = np.array(frame_key[:2]), np.array(frame_key[2:4]), frame_key[4]
    frame = HeadFrame(center, across, np.array([-across[1], across[0]]), unit)
    image = _background(identity, side)
    painter = _Painter(image, frame)
    width = identity.face_width
    painter.polygon(frame.at([-0.4, -0.9, -1.5, -1.5, 1.5, 1.5, 0.9, 0.4], [0.9, 1.02, 1.3, 3, 3, 1.3, 1.02, 0.9]),
                    identity.clothes)
    neck = frame.at([-0.3, 0.3, 0.33, -0.33], [0.2, 0.2, 2.0, 2.0])
    painter.polygon(neck, _color(identity.skin, 0.8))
    if identity.hair_style == "long":
        top = identity.forehead_height * width + 0.14
        outline = frame.at([width + 0.2, width + 0.22, width + 0.12, 0, -width - 0.12, -width - 0.22, -width - 0.2],
                           [1.4, 0.5, -0.5, -top, -0.5, 0.5, 1.4])
        painter.polygon(spline(outline, 8), _color(identity.hair, 0.85))
    for side_sign in (-1, 1):
        ear_x = side_sign * (width + 0.015)
        painter.polygon(frame.ellipse(ear_x, 0.06, 0.065, 0.13), _color(identity.skin, 0.9))
        painter.polygon(frame.ellipse(ear_x + side_sign * 0.008, 0.07, 0.035, 0.085), _color(identity.skin, 0.75))
    return image


def _face_outline(points, frame, identity):
    """Closed outline of the face: the jaw spline plus the skull arc over the forehead."""
    jaw = spline(points[0:17], 5)
    height = identity.forehead_height * identity.face_width
    skull = frame.ellipse(0.0, 0.0, identity.face_width, height, start=-0.02, stop=-np.pi + 0.02, samples=40)
    return np.vstack([jaw, skull])


def _draw_skin(painter, outline, frame, identity):
    """Face fill, darker towards the edges (concentric outlines shrunk towards the nose)."""
    focus = frame.at(0.0, 0.15)
    for shrink, factor in ((1.0, 0.84), (0.95, 0.9), (0.88, 0.96), (0.75, 1.0)):
        painter.polygon(focus + (outline - focus) * shrink, _color(identity.skin, factor))


def _draw_forehead_and_brows(painter, points, frame, identity, shading):
    dark = _crease(identity.skin, 0.45)
    if shading.forehead_lines > 0:  # wavy wrinkles that follow the brows up, the higher ones shorter
        brow_line = np.array([points[19], points[20], (points[21] + points[22]) / 2, points[23], points[24]])
        wave = np.array([0.0, 0.01, -0.012, 0.01, 0.0])
        for step in range(3):
            curve = spline(frame.at(np.zeros(5), wave - (0.075 + 0.05 * step), brow_line), 6)
            painter.line(curve[3 * step:len(curve) - 3 * step], dark, 0.012, 160 * shading.forehead_lines)
    if shading.brow_furrow > 0:
        between = (points[21] + points[22]) / 2
        for offset in (-0.022, 0.022):
            line = frame.at([offset * 1.3, offset], [-0.02, 0.06], between)
            painter.line(line, dark, 0.013, 190 * shading.brow_furrow)
        painter.line(frame.at([-0.03, 0.03], [0.075, 0.075], between), dark, 0.01, 90 * shading.brow_furrow)
    brow_color = _color(identity.hair, 0.8) if np.mean(identity.hair) > 90 else identity.hair
    thickness = identity.brow_thickness * np.array([0.45, 0.8, 1.0, 1.0, 0.95])
    for brow in (points[17:22], points[26:21:-1]):  # outer -> inner
        curve = spline(brow, 4)
        profile = np.interp(np.linspace(0, 4, len(curve)), np.arange(5), thickness)
        painter.strip(curve, profile, brow_color, 235, direction=frame.down)  # landmarks on the upper edge


def _draw_eye(painter, eye, brow, frame, identity, shading, outer_sign):
    """One eye from its six landmarks; `outer_sign` is -1 when the outer corner is on the image left."""
    upper, lower = spline(eye[[0, 1, 2, 3]], 6), spline(eye[[0, 5, 4, 3]], 6)  # corner to corner, left to right
    skin_dark = _color(identity.skin, 0.78)
    # socket shadow and lid crease sit between the lid and the brow (both listed left to right)
    brow_curve = spline(brow, 6)
    brow_curve = brow_curve[np.linspace(0, len(brow_curve) - 1, len(upper)).round().astype(int)]
    lid_to_brow = (upper - brow_curve) @ frame.down
    crease = upper - frame.down * (0.3 * lid_to_brow)[:, None]
    painter.polygon(np.vstack([upper, crease[::-1]]), skin_dark, 50)
    painter.line(crease[2:-2], _crease(identity.skin, 0.38), 0.01, 110)

    opening = np.vstack([upper, lower[::-1]])
    center = (eye[0] + eye[3]) / 2 + frame.down * 0.004 * frame.unit
    radius = identity.iris_size * frame.unit
    if np.max(lower[:, 1] - upper[:, 1]) > 0.5:
        painter.polygon(opening, SCLERA)
        circle = np.column_stack(_arc(0.0, 2 * np.pi, 24))
        painter.polygon(_column_clamp(center + radius * circle, upper, lower), identity.eyes)
        painter.polygon(_column_clamp(center + 0.62 * radius * circle, upper, lower), _color(identity.eyes, 0.7))
        painter.polygon(_column_clamp(center + 0.4 * radius * circle, upper, lower), PUPIL)
        glint = center + radius * np.array([-0.35, -0.4]) + 0.2 * radius * circle
        painter.polygon(_column_clamp(glint, upper, lower), (255, 255, 255), 220)
        lid_shadow = np.vstack([upper, (upper + frame.down * 0.018 * frame.unit)[::-1]])
        painter.polygon(_column_clamp(lid_shadow, upper, lower), (60, 40, 40), 90)
    # eyeliner: thick in the middle, flicking out at the outer corner
    along = np.linspace(0, 1, len(upper))
    outer_weight = along if outer_sign > 0 else 1 - along
    painter.strip(upper, 0.008 + 0.016 * np.sin(np.pi * along) ** 0.5 + 0.006 * outer_weight, EYELINER)
    painter.line(lower[1:-1], _crease(identity.skin, 0.4), 0.008, 140)
    if shading.cheek_raise > 0:
        bulge = lower + frame.down * 0.05 * frame.unit
        painter.line(bulge[2:-2], _crease(identity.skin, 0.35), 0.014, 150 * shading.cheek_raise)
    if shading.eye_wrinkles > 0:
        corner = eye[0] if outer_sign < 0 else eye[3]
        for tilt in (-0.035, 0.0, 0.04):
            line = frame.at(outer_sign * np.array([0.03, 0.1]), [tilt * 0.3 - 0.005, tilt * 1.6], corner)
            painter.line(line, _crease(identity.skin, 0.4), 0.01, 170 * shading.eye_wrinkles)


def _draw_cheeks(painter, points, frame, identity, shading):
    """Cheek apples, nasolabial folds, dimples: shading between the eyes and the mouth."""
    fold_alpha = 20 + 170 * shading.nasolabial
    for eye_low, wing, corner, sign in ((points[41], points[31], points[48], -1), (points[46], points[35],
                                                                                    points[54], 1)):
        apple = frame.at(sign * 0.08, -0.04 * shading.cheek_raise, (eye_low + corner) / 2)
        blush = _mix(identity.skin, (236, 96, 96), 0.6)
        for grow in (1.0, 0.7, 0.45):
            painter.polygon(frame.ellipse(0, 0, 0.1 * grow, 0.075 * grow, origin=apple), blush,
                            5 + 25 * shading.cheek_raise)
        if shading.cheek_raise > 0:
            shadow = frame.ellipse(0, 0, 0.11, 0.06, start=0.25 * np.pi, stop=0.75 * np.pi, samples=10, origin=apple)
            painter.line(shadow, _crease(identity.skin, 0.3), 0.016, 110 * shading.cheek_raise)
        fold = np.array([frame.at(sign * 0.02, -0.01, wing), frame.at(sign * 0.06, 0.06, wing),
                         frame.at(sign * 0.05, 0.03, corner), frame.at(sign * 0.035, 0.07, corner)])
        painter.line(spline(fold, 5), _crease(identity.skin, 0.38), 0.016, fold_alpha)
        if shading.dimple > 0:
            dimple = frame.ellipse(sign * 0.045, -0.005, 0.014, 0.03, origin=corner)
            painter.polygon(dimple, _crease(identity.skin, 0.45), 200 * shading.dimple)


def _draw_nose(painter, points, frame, identity, shading):
    shadow = _color(identity.skin, 0.72)
    bridge = np.array([frame.at(-0.035, 0.01, points[27]), frame.at(-0.03, 0.0, points[29]),
                       frame.at(-0.02, -0.02, points[31])])
    painter.line(spline(bridge, 5), shadow, 0.02, 70)
    base = spline(points[31:36], 4)
    painter.strip(base, np.full(len(base), -0.03), shadow, 90)
    for wing, inner in ((points[31], points[32]), (points[35], points[34])):
        arc = np.array([frame.at(0.0, -0.015, wing), wing, frame.at(0.0, 0.01, (wing + inner) / 2), inner])
        painter.line(spline(arc, 4), _crease(identity.skin, 0.5), 0.011, 170)
        nostril = frame.ellipse(0, 0, 0.022, 0.012, origin=wing * 0.35 + inner * 0.65)
        painter.polygon(nostril, _crease(identity.skin, 0.65), 230)
    painter.polygon(frame.ellipse(0.0, -0.01, 0.03, 0.02, origin=points[30]), (255, 255, 255), 45)
    if shading.nose_wrinkle > 0:
        for step in range(3):
            across = np.array([-0.055, -0.02, 0.02, 0.055]) * (1 - 0.1 * step)
            down = np.array([0.008, 0.0, 0.0, 0.008]) + 0.035 * step + 0.01
            painter.line(spline(frame.at(across, down, points[28]), 4), _crease(identity.skin, 0.45), 0.011,
                         180 * shading.nose_wrinkle)


def _draw_mouth(painter, points, frame, identity, shading):
    outer_upper = spline(points[48:55], 4)
    outer_lower = spline(points[[54, 55, 56, 57, 58, 59, 48]], 4)
    inner_upper = spline(points[60:65], 5)
    inner_lower = spline(points[[60, 67, 66, 65, 64]], 5)
    skin_shadow = _color(identity.skin, 0.7)
    # furrow under the lower lip and the chin boss
    sulcus = frame.ellipse(0.0, 0.02, 0.08, 0.025, start=0.15 * np.pi, stop=0.85 * np.pi, samples=9,
                           origin=points[57])
    painter.line(sulcus, skin_shadow, 0.02, 45 + 150 * shading.chin_raise)
    if shading.chin_raise > 0:
        boss = (points[57] + points[8]) / 2
        for dx, dy in ((-0.04, 0.0), (0.035, -0.01), (0.0, 0.03), (-0.02, 0.05), (0.03, 0.045)):
            dot = frame.ellipse(dx, dy, 0.014, 0.011, origin=boss)
            painter.polygon(dot, _crease(identity.skin, 0.38), 190 * shading.chin_raise)
    painter.polygon(np.vstack([outer_upper, inner_upper[::-1]]), _color(identity.lips, 0.86))
    painter.polygon(np.vstack([inner_lower, outer_lower[::-1]]), identity.lips)
    gap = inner_lower[:, 1] - inner_upper[:, 1]
    if np.max(gap) > 0.5:
        painter.polygon(np.vstack([inner_upper, inner_lower[::-1]]), MOUTH_INTERIOR)
        # the teeth fill at most 30% / 15% of the opening, so an open mouth is dark in the middle
        teeth_bottom = inner_upper + frame.down * np.minimum(0.035 * frame.unit, 0.3 * gap)[:, None]
        painter.polygon(np.vstack([inner_upper, teeth_bottom[::-1]]), TEETH)
        lower_teeth = inner_lower - frame.down * np.minimum(0.016 * frame.unit, 0.15 * gap)[:, None]
        painter.polygon(np.vstack([lower_teeth, inner_lower[::-1]]), _color(TEETH, 0.85))
    highlight = spline(points[[58, 57, 56]], 4)
    painter.line(highlight - frame.down * 0.02 * frame.unit, (255, 255, 255), 0.012, 40)
    painter.line(inner_upper, _crease(identity.lips, 0.55), 0.012)


def _draw_front_hair(painter, frame, identity):
    """Hair in front of the forehead and temples, per `identity.hair_style`."""
    width, hairline = identity.face_width, identity.hairline
    top = identity.forehead_height * width
    style = identity.hair_style
    if style == "buzz":
        cap = frame.ellipse(0, 0, width + 0.015, top + 0.02, start=np.pi + 0.35, stop=2 * np.pi - 0.35)
        line = frame.at([width * 0.9, width * 0.6, 0, -width * 0.6, -width * 0.9],
                        [-0.3, hairline - 0.02, hairline - 0.06, hairline - 0.02, -0.3])
        painter.polygon(np.vstack([cap, spline(line, 6)]), _mix(identity.skin, identity.hair, 0.6))
        return
    side_bottom = {"short": -0.05, "long": 0.45, "fringe": 0.1, "curly": 0.05}[style]
    volume = {"short": 0.06, "long": 0.1, "fringe": 0.08, "curly": 0.16}[style]
    outer = np.vstack([frame.at(-width - volume * 0.8, side_bottom),
                       frame.ellipse(0, 0, width + volume, top + volume, start=np.pi, stop=2 * np.pi, samples=32),
                       frame.at(width + volume * 0.8, side_bottom)])
    if style == "fringe":
        inner = frame.at([width * 0.96, width * 0.88, width * 0.45, 0.0, -width * 0.45, -width * 0.88, -width * 0.96],
                         [side_bottom, -0.45, -0.56, -0.53, -0.6, -0.45, side_bottom])
    else:
        inside = {"short": 0.97, "long": 0.93, "curly": 0.97}[style]
        inner = frame.at([width * inside, width * 0.9, width * 0.55, 0.0, -width * 0.55, -width * 0.9,
                          -width * inside], [side_bottom, -0.35, hairline + 0.02, hairline, hairline + 0.02, -0.35,
                                             side_bottom])
    painter.polygon(np.vstack([outer, spline(inner, 6)]), identity.hair)
    if style == "curly":
        for angle in np.linspace(np.pi * 1.02, np.pi * 1.98, 11):
            curl = frame.at((width + volume * 0.7) * np.cos(angle), (top + volume * 0.7) * np.sin(angle))
            painter.polygon(frame.ellipse(0, 0, 0.11, 0.11, origin=curl), identity.hair)
    # a few strands of sheen
    for offset in (-0.25, 0.05, 0.3):
        strand = frame.at([offset - 0.08, offset, offset + 0.1], [-top - volume * 0.5, -top + 0.1, hairline - 0.05])
        painter.line(spline(strand, 5), _color(identity.hair, 1.25, 20), 0.012, 60)


def _check_landmarks(landmarks, size):
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (NUM_IBUG, 2):
        raise ValueError(f"landmarks: expected shape ({NUM_IBUG}, 2), got {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError("landmarks: coordinates must be finite")
    if np.hypot(*(points[16] - points[0])) < 1e-3 * size:
        raise ValueError("landmarks: jaw points 0 and 16 coincide, the head frame is undefined")
    return points


def render_face_from_landmarks(identity, landmarks68, size=128, shading=None):
    """Draw `identity` posed by 68 iBUG landmarks (image pixels of a `size` square); returns uint8 (size, size, 3).

    `shading` (a `Shading`) adds the wrinkles and bulges that landmarks cannot express; None means none.
    """
    if size < 8:
        raise ValueError(f"size: must be at least 8 pixels, got {size}")
    shading = Shading() if shading is None else shading
    side = size * SUPERSAMPLE
    points = (_check_landmarks(landmarks68, size) + 0.5) * SUPERSAMPLE - 0.5
    frame = HeadFrame.from_landmarks(points, identity.face_width)
    frame_key = (*np.round(frame.center, 4), *np.round(frame.across, 6), round(frame.unit, 4))
    image = _static_layer(identity, side, frame_key).copy()
    painter = _Painter(image, frame)
    _draw_skin(painter, _face_outline(points, frame, identity), frame, identity)
    _draw_cheeks(painter, points, frame, identity, shading)
    _draw_forehead_and_brows(painter, points, frame, identity, shading)
    _draw_nose(painter, points, frame, identity, shading)
    _draw_eye(painter, points[36:42], points[17:22], frame, identity, shading, outer_sign=-1)
    _draw_eye(painter, points[42:48], points[22:27], frame, identity, shading, outer_sign=1)
    _draw_mouth(painter, points, frame, identity, shading)
    _draw_front_hair(painter, frame, identity)
    return np.array(image.reduce(SUPERSAMPLE))


def render_face(identity, aus, size=128):
    """Render `identity` showing `aus` (17 intensities 0-5 in AU_IDS order).

    Returns (image uint8 (size, size, 3), landmarks float32 (68, 2) in image pixels, pixel centres at integers).
    """
    geometry = face_geometry(identity, aus, size)
    return render_face_from_landmarks(identity, geometry.landmarks, size, geometry.shading), geometry.landmarks
