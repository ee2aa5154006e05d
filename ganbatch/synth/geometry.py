"""Face geometry of the synthetic world: identity + action units -> 68 iBUG landmarks and a few shading scalars.

Each AU is a linear blend shape on the landmarks (displacement per intensity unit, FACS-faithful in direction),
followed by two non-linear steps: the blink (AU45) slides the upper lids onto the lower ones, and upper/lower lids
and lips are kept from crossing. Wrinkles and bulges that have no landmark (cheek raise, nose wrinkle, dimples...)
are the `Shading` scalars, each a clipped linear function of the AUs.
"""
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np

from ganbatch.targets.aus import AU_IDS, AU_SCALE, NUM_AUS, check_aus
from ganbatch.targets.landmarks import IBUG_FLIP, NUM_IBUG

# Canonical units map to the image (spanning [-1, 1], y down) at this zoom, with the origin (the jaw-top centre)
# at this height, before each identity's own head pose.
FRAME_ZOOM = 1.07
FRAME_CENTER_Y = -0.11

# Landmark pairs that must not cross.
UPPER_LID = {37: 41, 38: 40, 43: 47, 44: 46}  # upper-lid point -> lower-lid point under it
UPPER_INNER_LIP = {61: 67, 62: 66, 63: 65}  # upper inner-lip point -> lower inner-lip point under it


@dataclass(frozen=True)
class Shading:
    """Intensity (0-1) of the face details that the landmarks do not carry."""

    forehead_lines: float = 0.0  # horizontal forehead wrinkles (AU1, AU2)
    brow_furrow: float = 0.0  # vertical creases between the brows (AU4)
    eye_wrinkles: float = 0.0  # crow's feet at the outer eye corners (AU6)
    cheek_raise: float = 0.0  # raised, rounded cheeks and the bulge under the lower lids (AU6, AU12)
    nose_wrinkle: float = 0.0  # wrinkles across the nose bridge (AU9)
    nasolabial: float = 0.0  # depth of the folds from the nose wings to the mouth corners (AU9, AU10, AU12)
    dimple: float = 0.0  # dimples beside the mouth corners (AU14)
    chin_raise: float = 0.0  # wrinkled chin boss and the furrow under the lower lip (AU17)


SHADING_FIELDS = tuple(f.name for f in fields(Shading))
# Shading value = clip(sum_au weight * intensity / AU_SCALE, 0, 1).
_SHADING_WEIGHTS = {
    "forehead_lines": {1: 0.6, 2: 0.5},
    "brow_furrow": {4: 1.0},
    "eye_wrinkles": {6: 1.0},
    "cheek_raise": {6: 1.0, 12: 0.5},
    "nose_wrinkle": {9: 1.0},
    "nasolabial": {9: 0.6, 10: 0.7, 12: 0.8},
    "dimple": {14: 1.0},
    "chin_raise": {17: 1.0},
}


@dataclass(frozen=True)
class FaceGeometry:
    """What the renderer draws from: 68 iBUG landmarks in image pixels (pixel centres at integers) and shading."""

    landmarks: np.ndarray  # float32 (68, 2), x right, y down
    shading: Shading


def _shading_matrix():
    matrix = np.zeros((len(SHADING_FIELDS), NUM_AUS))
    for row, name in enumerate(SHADING_FIELDS):
        for au, weight in _SHADING_WEIGHTS[name].items():
            matrix[row, AU_IDS.index(au)] = weight
    return matrix


def _au_displacements():
    """(NUM_AUS, 68, 2) landmark displacement per intensity unit, in canonical units.

    The table below lists each AU's displacement at full intensity (AU_SCALE).
    """
    basis = np.zeros((NUM_AUS, NUM_IBUG, 2))

    def move(au, points, outward, down):
        """Move image-left or midline `points` (and their mirrors) away from the midline and down."""
        count = len(points)
        for point, out, dy in zip(points, np.broadcast_to(outward, count), np.broadcast_to(down, count)):
            mirror = IBUG_FLIP[point]
            out = 0.0 if mirror == point else out
            basis[AU_IDS.index(au), point] += (-out, dy)
            if mirror != point:
                basis[AU_IDS.index(au), mirror] += (out, dy)

    brow = [17, 18, 19, 20, 21]  # outer -> inner
    move(1, brow, [0, 0, -0.004, -0.008, -0.012], [-0.007, -0.035, -0.075, -0.115, -0.135])
    move(2, brow, 0.0, [-0.125, -0.11, -0.075, -0.04, -0.015])
    move(4, brow, [-0.01, -0.02, -0.03, -0.04, -0.05], [0.03, 0.04, 0.05, 0.06, 0.065])

    upper_lid, lower_lid = [37, 38], [41, 40]
    move(5, upper_lid, 0.0, -0.045)
    move(6, lower_lid, 0.0, -0.035)
    move(6, [36], 0.0, -0.012)
    move(7, lower_lid, 0.0, -0.03)
    move(7, upper_lid, 0.0, 0.02)

    move(9, [31, 32, 33], [0.015, 0.006, 0.0], [-0.035, -0.038, -0.035])
    move(9, [28, 29, 30], 0.0, [-0.01, -0.015, -0.015])
    move(9, [49, 50, 51, 61, 62], 0.0, [-0.02, -0.022, -0.022, -0.012, -0.012])

    move(10, [48, 49, 50, 51], 0.0, [-0.012, -0.045, -0.055, -0.052])
    move(10, [60, 61, 62], 0.0, [-0.01, -0.038, -0.04])
    move(10, [31, 32, 33], 0.0, -0.012)

    move(12, [48, 60], [0.06, 0.055], [-0.09, -0.085])
    move(12, [49, 61, 59, 67], [0.03, 0.025, 0.03, 0.025], [-0.035, -0.022, -0.03, -0.02])
    move(12, [50, 58], 0.01, [-0.006, -0.006])
    move(12, [57], 0.0, 0.006)

    move(14, [48, 60], 0.025, -0.012)
    move(14, [49, 50, 51], 0.0, 0.008)
    move(14, [59, 58, 57], 0.0, -0.008)

    move(15, [48, 60], -0.005, [0.065, 0.06])
    move(15, [49, 61, 59, 67], 0.0, [0.025, 0.022, 0.03, 0.028])
    move(15, [57, 66], 0.0, -0.006)

    move(17, [57, 58, 59, 66, 67], 0.0, [-0.025, -0.022, -0.015, -0.022, -0.018])
    move(17, [61, 62, 50, 51], 0.0, [-0.015, -0.016, -0.008, -0.008])
    move(17, [48, 60], 0.0, 0.012)
    move(17, [5, 6, 7, 8], 0.0, [-0.008, -0.02, -0.032, -0.035])

    move(20, [48, 60], [0.075, 0.07], 0.012)
    move(20, [49, 59, 61, 67], [0.04, 0.04, 0.035, 0.035], 0.006)
    move(20, [50, 58], 0.015, 0.0)
    move(20, [49, 50, 51], 0.0, 0.008)
    move(20, [59, 58, 57], 0.0, -0.01)

    move(23, [48, 60], -0.022, 0.0)
    move(23, [49, 50, 51], [-0.01, -0.004, 0.0], [0.02, 0.024, 0.022])
    move(23, [59, 58, 57], [-0.01, -0.004, 0.0], [-0.025, -0.03, -0.03])

    move(25, [49, 50, 51, 61, 62], 0.0, [-0.006, -0.008, -0.008, -0.012, -0.014])
    move(25, [59, 58, 57, 67, 66], 0.0, [0.04, 0.05, 0.052, 0.05, 0.058])

    drop = 0.15
    jaw_weights = [0.0, 0.02, 0.08, 0.2, 0.36, 0.56, 0.76, 0.92, 1.0]
    move(26, list(range(9)), [-0.02 * w for w in jaw_weights], [drop * w for w in jaw_weights])
    move(26, [59, 58, 57, 67, 66], 0.0, drop * 0.82)
    move(26, [48, 60], -0.03, drop * 0.28)
    return basis / AU_SCALE


_SHADING_MATRIX = _shading_matrix()
_AU_DISPLACEMENTS = _au_displacements()
_AU45 = AU_IDS.index(45)


@lru_cache(maxsize=1024)
def neutral_landmarks(identity):
    """The identity's expressionless 68 landmarks in canonical units (read-only array)."""
    points = np.zeros((NUM_IBUG, 2))
    width, squareness = identity.face_width, identity.jaw_squareness
    angle = np.linspace(0, np.pi, 17)
    cos, sin = np.cos(angle), np.sin(angle)
    points[0:17, 0] = -width * np.sign(cos) * np.abs(cos) ** (2 / squareness)
    points[0:17, 1] = identity.chin_drop * np.abs(sin) ** (2 / squareness)
    points[0:17, 0] *= 1 - 0.18 * (points[0:17, 1] / identity.chin_drop) ** 2  # narrower towards the chin
    points[8, 0] = 0.0

    eye_y = -0.08
    inner_x, outer_x = -0.075, -(identity.eye_spacing + identity.eye_size * 1.3)
    arch = np.array([0.25, 0.8, 1.0, 0.85, 0.55])
    points[17:22, 0] = np.linspace(outer_x, inner_x, 5)
    points[17:22, 1] = identity.brow_height - identity.brow_arch * arch + [0.03, 0.008, 0, 0, 0.004]

    center_x, half = -identity.eye_spacing, identity.eye_size
    upper, lower = 0.062, 0.046
    points[36] = (center_x - half, eye_y - identity.eye_tilt)
    points[37] = (center_x - 0.38 * half, eye_y - upper)
    points[38] = (center_x + 0.36 * half, eye_y - upper * 0.96)
    points[39] = (center_x + half, eye_y + 0.005)
    points[40] = (center_x + 0.36 * half, eye_y + lower)
    points[41] = (center_x - 0.38 * half, eye_y + lower * 1.02)

    tip_y = eye_y + identity.nose_length
    points[27:31, 1] = np.linspace(eye_y - 0.01, tip_y, 4)
    wing = identity.nose_width
    points[31] = (-0.085 * wing, tip_y + 0.035)
    points[32] = (-0.045 * wing, tip_y + 0.05)
    points[33] = (0.0, tip_y + 0.055)

    mouth_y, mouth_half = identity.mouth_height, identity.mouth_width
    up, low = identity.upper_lip, identity.lower_lip
    points[48] = (-mouth_half, mouth_y)
    points[49] = (-0.6 * mouth_half, mouth_y - 0.8 * up)
    points[50] = (-0.22 * mouth_half, mouth_y - 1.08 * up)
    points[51] = (0.0, mouth_y - 0.92 * up)
    points[59] = (-0.62 * mouth_half, mouth_y + 0.72 * low)
    points[58] = (-0.3 * mouth_half, mouth_y + 0.97 * low)
    points[57] = (0.0, mouth_y + low)
    points[60] = (-0.9 * mouth_half, mouth_y)
    points[61] = points[67] = (-0.42 * mouth_half, mouth_y - 0.004)
    points[62] = points[66] = (0.0, mouth_y - 0.004)

    left_half = [*range(0, 8), *range(17, 22), 31, 32, *range(36, 42), *range(48, 51), 58, 59, 60, 61, 67]
    for point in left_half:
        points[IBUG_FLIP[point]] = (-points[point, 0], points[point, 1])
    points.flags.writeable = False
    return points


def expression_landmarks(identity, aus):
    """Canonical-unit landmarks of `identity` showing `aus` (17 intensities 0-5 in AU_IDS order; AUError if not)."""
    aus = check_aus(aus, "aus").astype(np.float64)
    points = neutral_landmarks(identity) + np.tensordot(aus, _AU_DISPLACEMENTS, axes=1)
    closure = aus[_AU45] / AU_SCALE
    for upper, lower in UPPER_LID.items():
        points[lower, 1] -= 0.012 * closure  # the lower lid rises a little as the eye closes
        points[upper] += (points[lower] - (0.0, 0.004) - points[upper]) * closure
    for pairs in (UPPER_LID, UPPER_INNER_LIP):
        for upper, lower in pairs.items():
            points[upper, 1] = min(points[upper, 1], points[lower, 1])
    return points


def canonical_to_image(points, identity, size):
    """Canonical units -> image pixels (pixel centres at integers) through the identity's head pose."""
    angle = np.deg2rad(identity.roll_degrees)
    # counter-clockwise on screen, where y points down
    rotation = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    normalized = (points * (identity.scale * FRAME_ZOOM)) @ rotation.T
    normalized = normalized + (identity.shift_x, identity.shift_y + FRAME_CENTER_Y)
    return (normalized + 1.0) * (size / 2.0) - 0.5


def expression_shading(aus):
    """The `Shading` that goes with 17 AU intensities."""
    values = np.clip(_SHADING_MATRIX @ (check_aus(aus, "aus") / AU_SCALE), 0.0, 1.0)
    return Shading(*(float(v) for v in values))


def face_geometry(identity, aus, size=128):
    """Landmarks (image pixels of a `size` x `size` render) and shading of `identity` showing `aus`."""
    landmarks = canonical_to_image(expression_landmarks(identity, aus), identity, size)
    return FaceGeometry(landmarks.astype(np.float32), expression_shading(aus))


def face_landmarks(identity, aus, size=128):
    """The 68 iBUG landmarks (float32, image pixels) of `identity` showing `aus`, without drawing."""
    return face_geometry(identity, aus, size).landmarks
