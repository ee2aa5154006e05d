"""Training batches: which samples each step uses, their augmentation and conditions, and each worker's share.

Every random draw is a function of (seed, position), never of a worker's history, so a run resumed from a checkpoint
sees exactly the batches it would have seen, and a global batch is the same whether one worker builds it or several
build their shards:

- Sample order: global sample position p (step s, critic iteration k, slot i of the global batch B, with K critic
  iterations per step) is p = (s * K + k) * B + i; it takes image perm_e[p mod N] with e = p div N, perm_e a
  permutation of the N images seeded by (seed, e): epochs without replacement.
- Per sample, a generator seeded by (seed, p) draws the flip, the jitter (per image), the target and the
  gradient-penalty mixing weight. Worker r of W builds slots [r * B/W, (r + 1) * B/W) of each global batch.
- The family draws the rest of a sample from the same generator (`ModelFamily.sample_targets`: GANimation's AU
  targets and optional pairs, GANnotation's pairs and third landmarks; see their modules) and turns the samples into
  a `Batch` (`ModelFamily.collate`).

Images are decoded once, resized to the network size (bicubic, antialiased) and kept per process: a data set
whose images fit in ARRAY_CACHE_BYTES at the network size (6,000 images at 64 px take 74 MB) goes into one uint8
array filled as images are first drawn, so no step after the first epoch decodes anything; larger sets use an LRU
cache of _DECODED_CACHE images.
Batches hold images as float32 in [-1, 1], the generators' output space (`ModelFamily.to_generator_input` maps to
a family's input range).
"""
import functools
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganbatch.io.images import decode_image
from ganbatch.families import Batch, ModelFamily
from ganbatch.targets.landmarks import flip_landmarks
from ganbatch.train.data import TrainingData

_DECODED_CACHE = 4096  # images per process (~200 MB at 128 px)
ARRAY_CACHE_BYTES = 1 << 30  # data sets up to this size at the network size are cached whole, in one array


def _jitter(image: np.ndarray, points: np.ndarray | None, draws: np.ndarray, amount: float):
    """Shift image (S, S, 3) uint8 by whole pixels, draws (2 uniforms in [-1, 1]) x amount x S across and down,
    borders replicated; points (N, 2) in pixel coordinates move with it.

    Whole pixels, so that nothing is resampled: a sub-pixel shift is a bilinear blur (it took the Laplacian energy
    of 64 px faces to 0.42x), which the generator then learns to reproduce in its output."""
    size = image.shape[0]
    across, down = np.rint(amount * size * np.asarray(draws)).astype(int)
    pad_x, pad_y = abs(across), abs(down)
    padded = np.pad(image, ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="edge")
    top, left = pad_y - down, pad_x - across
    image = padded[top:top + size, left:left + size]
    if points is not None:
        points = points + np.array([across, down], dtype=np.float32)
    return image, points


class BatchMaker:
    """Builds a worker's shards of the global batches of a training run (see the module doc)."""

    def __init__(self, data: TrainingData, images_root: Path, family: ModelFamily, size: int, *, seed: int,
                 global_batch: int, critic_steps: int, rank: int = 0, world_size: int = 1, flip: bool = True,
                 jitter: float = 0.0, au_noise: float = 0.1, paired_fraction: float = 0.0):
        if global_batch % world_size:
            raise ValueError(f"global batch {global_batch} does not split over {world_size} workers")
        self.data = data
        self.images_root = Path(images_root)
        self.family = family
        self.size = size
        self.seed = seed
        self.global_batch = global_batch
        self.critic_steps = critic_steps
        self.share = global_batch // world_size
        self.first_slot = rank * self.share
        self.flip = flip
        self.jitter = jitter
        self.au_noise = au_noise
        self.paired_fraction = paired_fraction  # GANimation only: GANnotation pairs every image that has a partner
        self.partners = data.partners()
        if len(data) * size * size * 3 <= ARRAY_CACHE_BYTES:
            self._pixels = np.empty((len(data), size, size, 3), np.uint8)  # pages are committed as they are filled
            self._scales = np.zeros((len(data), 2), np.float64)  # 0: not decoded yet
            self._load = self._cached
        else:
            self._load = functools.lru_cache(maxsize=_DECODED_CACHE)(self._decode)
        self._permutation = functools.lru_cache(maxsize=2)(self._shuffle)

    def _decode(self, index: int) -> tuple[np.ndarray, tuple[float, float]]:
        path = self.images_root / self.data.images[index]
        image = decode_image(path.read_bytes(), str(path))
        height, width = image.shape[:2]
        if (height, width) != (self.size, self.size):
            image = np.asarray(Image.fromarray(image).resize((self.size, self.size), Image.Resampling.BICUBIC))
        return image, (self.size / width, self.size / height)

    def _cached(self, index: int) -> tuple[np.ndarray, tuple[float, float]]:
        """Image `index` from the whole-set array, decoded into it on first use."""
        if not self._scales[index, 0]:
            self._pixels[index], self._scales[index] = self._decode(index)
        return self._pixels[index], tuple(self._scales[index])

    def _shuffle(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch, 0x0DE5]).permutation(len(self.data))

    def sample_index(self, position: int) -> int:
        """The image at global sample position `position`."""
        epoch, offset = divmod(position, len(self.data))
        return int(self._permutation(epoch)[offset])

    def view(self, index: int, flip: bool, jitter_draws: np.ndarray):
        """Image `index` at the network size, augmented, with its landmarks (None for AU data) moved along."""
        image, (scale_x, scale_y) = self._load(index)
        points = None
        if self.data.landmarks is not None:
            points = self.data.landmarks[index] * np.array([scale_x, scale_y], dtype=np.float32)
        if flip:
            image = image[:, ::-1]
            points = flip_landmarks(points, self.size) if points is not None else None
        if self.jitter > 0:
            image, points = _jitter(image, points, jitter_draws, self.jitter)
        return image, points

    def _sample(self, position: int) -> dict:
        rng = np.random.default_rng([self.seed, position, 0x5A3E])
        index = self.sample_index(position)
        flip = self.flip and bool(rng.random() < 0.5)
        jitter_draws = rng.uniform(-1, 1, 2)
        image, points = self.view(index, flip, jitter_draws)
        sample = {"real": image, "alpha": rng.random()}
        return self.family.sample_targets(self, sample, rng, index, flip, jitter_draws, points)

    def batch(self, step: int, critic_iteration: int) -> Batch:
        """This worker's shard of the global batch of critic iteration `critic_iteration` of step `step`
        (steps count from 0)."""
        start = (step * self.critic_steps + critic_iteration) * self.global_batch + self.first_slot
        samples = [self._sample(position) for position in range(start, start + self.share)]

        def images(key):
            stacked = torch.from_numpy(np.stack([s[key] for s in samples])).permute(0, 3, 1, 2).float()
            return stacked / 127.5 - 1

        def vectors(key):
            return torch.tensor(np.array([s[key] for s in samples]), dtype=torch.float32)

        def heatmaps(key):
            return self.family.targets_to_cond(np.stack([s[key] for s in samples]), self.size)

        return self.family.collate(self, images, vectors, heatmaps)

    def preview_faces(self, count: int) -> np.ndarray:
        """`count` un-augmented images spread over the data set (uint8 (count, S, S, 3)), for sample grids."""
        indices = np.unique(np.linspace(0, len(self.data) - 1, count).round().astype(int))
        return np.stack([self._load(int(i))[0] for i in indices])

    def preview_landmarks(self, count: int) -> np.ndarray:
        """Landmarks (count, 66, 2) at the network size of `count` images spread over the data set, for sample
        grids (GANnotation)."""
        indices = np.linspace(len(self.data) - 1, 0, count).round().astype(int)
        return np.stack([self.view(int(i), False, np.zeros(2))[1] for i in indices])
