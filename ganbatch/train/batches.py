"""Training batches: which samples each step uses, their augmentation and conditions, and each worker's share.

Every random draw is a function of (seed, position), never of a worker's history, so a run resumed from a checkpoint
sees exactly the batches it would have seen, and a global batch is the same whether one worker builds it or several
build their shards:

- Sample order: global sample position p (step s, critic iteration k, slot i of the global batch B, with K critic
  iterations per step) is p = (s * K + k) * B + i; it takes image perm_e[p mod N] with e = p div N, perm_e a
  permutation of the N images seeded by (seed, e): epochs without replacement.
- Per sample, a generator seeded by (seed, p) draws the flip, the jitter (per image), the target and the
  gradient-penalty mixing weight. Worker r of W builds slots [r * B/W, (r + 1) * B/W) of each global batch.
- GANimation targets: the AUs of a uniformly drawn image / 5, plus U(-au_noise, au_noise) per AU (as the original).
  With paired targets (`paired_fraction` > 0, the objective's lambda_pixel > 0), after those draws a sample whose
  image has same-identity partners is paired with probability paired_fraction: a partner drawn uniformly (the same
  `TrainingData.partners` as GANnotation's pairs) gives the target, its exact AUs / 5 without noise, and the target
  frame, viewed with the sample's own flip and jitter so that the two images stay aligned. Other samples keep the
  random target, with the input as target frame and has_pair 0.
- GANnotation pairs: an image whose identity has other images is paired with one of them, drawn uniformly: the
  target landmarks and target frame are that image's. An image without a partner gets the landmarks of a uniformly
  drawn image and no target frame (has_pair 0): its pixel term becomes self-reconstruction. The third landmark set
  (triple consistency) is that of another uniformly drawn image. All images of a sample share the flip.

Images are decoded once, resized to the network size (bicubic, antialiased) and kept per process: a data set
whose images fit in ARRAY_CACHE_BYTES at the network size (6,000 images at 64 px take 74 MB) goes into one uint8
array filled as images are first drawn, so no step after the first epoch decodes anything; larger sets use an LRU
cache of _DECODED_CACHE images.
Batches hold images as float32 in [-1, 1], the generators' output space (`to_generator_input` maps to a family's
input range).
"""
import functools
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ganbatch.io.images import decode_image
from ganbatch.models.families import ModelFamily
from ganbatch.targets.aus import AU_SCALE
from ganbatch.targets.landmarks import flip_landmarks
from ganbatch.train.data import TrainingData

_DECODED_CACHE = 4096  # images per process (~200 MB at 128 px)
ARRAY_CACHE_BYTES = 1 << 30  # data sets up to this size at the network size are cached whole, in one array


def to_generator_input(family: ModelFamily, images: torch.Tensor) -> torch.Tensor:
    """Images in the output space [-1, 1] -> the family's generator input range [input_low, 1]."""
    return (images + 1) * (0.5 * (1 - family.input_low)) + family.input_low


@dataclass
class Batch:
    """A worker's shard of one global batch; fields not used by the family are None.

    real (B, 3, S, S) in [-1, 1]; alpha (B,) gradient-penalty mixing weights. GANimation: cond_real, cond_target
    (B, 17) AUs / 5, and with paired targets also target and has_pair. GANnotation: heat_real, heat_target,
    heat_third (B, 66, S, S) landmark heatmaps. Both: target (B, 3, S, S) the paired frame (the input itself where
    has_pair is 0); has_pair (B,) 0/1.
    """

    real: torch.Tensor
    alpha: torch.Tensor
    cond_real: torch.Tensor | None = None
    cond_target: torch.Tensor | None = None
    heat_real: torch.Tensor | None = None
    heat_target: torch.Tensor | None = None
    heat_third: torch.Tensor | None = None
    target: torch.Tensor | None = None
    has_pair: torch.Tensor | None = None

    def to(self, device) -> "Batch":
        """The batch with every tensor moved to device."""
        return Batch(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name).to(device)
                        for f in fields(self)})

    def __len__(self) -> int:
        return len(self.real)


def _jitter(image: np.ndarray, points: np.ndarray | None, draws: np.ndarray, amount: float):
    """Shift and scale image (S, S, 3) uint8 by draws (3 uniforms in [-1, 1]) x amount, borders replicated; the
    same mapping applied to points (N, 2) in pixel coordinates."""
    size = image.shape[0]
    scale = 1 + amount * draws[0]
    shift = amount * draws[1:]  # fraction of the size
    theta = torch.tensor([[[1 / scale, 0, -2 * shift[0]], [0, 1 / scale, -2 * shift[1]]]], dtype=torch.float32)
    pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float()
    grid = F.affine_grid(theta, pixels.shape, align_corners=False)
    moved = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="border", align_corners=False)
    image = moved[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    if points is not None:
        normalised = 2 * points / size - 1
        points = ((scale * (normalised + 2 * shift) + 1) * size / 2).astype(np.float32)
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
        self._partners = data.partners()
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

    def _view(self, index: int, flip: bool, jitter_draws: np.ndarray):
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
        jitter_draws = rng.uniform(-1, 1, 3)
        image, points = self._view(index, flip, jitter_draws)
        sample = {"real": image, "alpha": rng.random()}
        partners = self._partners[index]
        if self.data.aus is not None:
            other = int(rng.integers(len(self.data)))
            noise = rng.uniform(-self.au_noise, self.au_noise, self.data.aus.shape[1])
            sample["cond_real"] = self.data.aus[index] / AU_SCALE
            sample["cond_target"] = self.data.aus[other] / AU_SCALE + noise
            if self.paired_fraction > 0:
                paired = len(partners) > 0 and bool(rng.random() < self.paired_fraction)
                sample.update(target=image, has_pair=float(paired))
                if paired:
                    partner = int(partners[rng.integers(len(partners))])
                    sample.update(cond_target=self.data.aus[partner] / AU_SCALE,
                                  target=self._view(partner, flip, jitter_draws)[0])
            return sample
        has_pair = len(partners) > 0
        target_index = int(partners[rng.integers(len(partners))]) if has_pair else int(rng.integers(len(self.data)))
        target_image, target_points = self._view(target_index, flip, rng.uniform(-1, 1, 3))
        _, third_points = self._view(int(rng.integers(len(self.data))), flip, rng.uniform(-1, 1, 3))
        sample.update(points_real=points, points_target=target_points, points_third=third_points,
                      target=target_image if has_pair else image, has_pair=float(has_pair))
        return sample

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

        if self.data.aus is not None:
            paired = self.paired_fraction > 0
            return Batch(real=images("real"), alpha=vectors("alpha"), cond_real=vectors("cond_real"),
                         cond_target=vectors("cond_target"), target=images("target") if paired else None,
                         has_pair=vectors("has_pair") if paired else None)
        return Batch(real=images("real"), alpha=vectors("alpha"), heat_real=heatmaps("points_real"),
                     heat_target=heatmaps("points_target"), heat_third=heatmaps("points_third"),
                     target=images("target"), has_pair=vectors("has_pair"))

    def preview_faces(self, count: int) -> np.ndarray:
        """`count` un-augmented images spread over the data set (uint8 (count, S, S, 3)), for sample grids."""
        indices = np.unique(np.linspace(0, len(self.data) - 1, count).round().astype(int))
        return np.stack([self._load(int(i))[0] for i in indices])

    def preview_landmarks(self, count: int) -> np.ndarray:
        """Landmarks (count, 66, 2) at the network size of `count` images spread over the data set, for sample
        grids (GANnotation)."""
        indices = np.linspace(len(self.data) - 1, 0, count).round().astype(int)
        return np.stack([self._view(int(i), False, np.zeros(3))[1] for i in indices])
