"""What the one-clip renderer (ganbatch.render) takes and gives, as plain NumPy data: the animate stages that make
and encode clips (prepare, encode) use these without loading torch, which only the generator needs."""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PreparedClip:
    """The generator's input for one video: the model-sized uint8 face crop, one target per frame (the family's
    convention), and whether frame 0 is the untouched face."""

    face: np.ndarray
    targets: np.ndarray
    input_first: bool = False


@dataclass
class Clip:
    """Rendered frames uint8 (T,H,W,3); with return_maps also attention float32 (T,H,W) in [0, 1] (1 keeps the
    input pixel) and the colour maps uint8 (T,H,W,3)."""

    frames: np.ndarray
    attention: np.ndarray | None = None
    color: np.ndarray | None = None
