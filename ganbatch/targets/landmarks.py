"""Facial landmark layouts: the 68-point iBUG scheme and GANnotation's 66-point subset."""
import numpy as np

NUM_IBUG = 68
# Index ranges (0-based, end exclusive) of the iBUG 68-point parts.
IBUG_PARTS = {
    "jaw": (0, 17),
    "right_brow": (17, 22),
    "left_brow": (22, 27),
    "nose_bridge": (27, 31),
    "nose_base": (31, 36),
    "right_eye": (36, 42),
    "left_eye": (42, 48),
    "outer_lips": (48, 60),
    "inner_lips": (60, 68),
}
# GANnotation drops the two inner-mouth corners (60 and 64) of the iBUG layout.
GANNOTATION_66_INDICES = np.array([i for i in range(NUM_IBUG) if i not in (60, 64)])
NUM_GANNOTATION = len(GANNOTATION_66_INDICES)
# Point i of a horizontally mirrored face is point IBUG_FLIP[i] of the original.
IBUG_FLIP = np.array(
    list(range(16, -1, -1))
    + list(range(26, 16, -1))
    + [27, 28, 29, 30]
    + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46]
    + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48]
    + [59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60]
    + [67, 66, 65]
)
