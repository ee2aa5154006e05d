"""Action units: the 17 OpenFace intensity AUs that GANimation is conditioned on."""

# OpenFace 2 intensity outputs (`AUxx_r`), in the order GANimation's aus_openface.pkl stores them.
AU_IDS = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45)
AU_NAMES = tuple(f"AU{i}" for i in AU_IDS)
NUM_AUS = len(AU_IDS)
# OpenFace intensities run from 0 (absent) to 5 (maximum); the generator sees intensity / AU_SCALE.
AU_SCALE = 5.0

FACS_NAMES = {
    1: "inner brow raiser",
    2: "outer brow raiser",
    4: "brow lowerer",
    5: "upper lid raiser",
    6: "cheek raiser",
    7: "lid tightener",
    9: "nose wrinkler",
    10: "upper lip raiser",
    12: "lip corner puller",
    14: "dimpler",
    15: "lip corner depressor",
    17: "chin raiser",
    20: "lip stretcher",
    23: "lip tightener",
    25: "lips part",
    26: "jaw drop",
    45: "blink",
}
