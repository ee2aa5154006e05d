"""Train the AU regressor that `ganbatch eval` reads generated frames with, and write ganbatch/assets/au_regressor.pt.

Data: synthetic faces rendered in memory, expressions drawn by `ganbatch.synth.sample_expression_aus` (the data sets'
mix of neutral faces, scaled FACS prototypes and sparse random AUs). Training identities come from
`sample_identities(n, 5000)`, validation identities from `sample_identities(n, 5001)`: disjoint from each other and
from the evaluation's identities (seed 10_000 + its --seed, see `ganbatch.eval.benchmark`).

Half the identities are rendered at 64 px and half at 128 px, then brought to the network's 64 px input by the same
antialiased resize `predict_aus` uses, so the regressor serves 64 and 128 px models alike.

Robustness to generated images (blurred, noisy, slightly off in colour):
- when the pool is rendered, 30% of the images go through JPEG at quality 30-90 (blocking and ringing);
- each batch, per image: Gaussian blur with probability 0.5 (sigma 0.3-1.2 px at 64 px), Gaussian noise with
  probability 0.5 (sigma up to 0.03), brightness x U(0.9, 1.1) and contrast x U(0.85, 1.15) about the image mean.

Accuracy (mean absolute error per AU, 0-5 scale) is measured on the validation identities, clean and with the
blur/noise augmentation, next to the trivial predictor (the training set's mean AUs), and stored in the file's
config under `accuracy`.

    .venv/bin/python scripts/train_au_regressor.py            # defaults: ~10 minutes on 2 CPU threads
"""
import argparse
import io
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ganbatch.eval.au_regressor import SHIPPED_REGRESSOR, AURegressor, images_to_input, predict_aus, save_au_regressor
from ganbatch.synth import render_face, sample_expression_aus, sample_identities
from ganbatch.targets.aus import AU_NAMES

TRAIN_IDENTITY_SEED = 5000
VAL_IDENTITY_SEED = 5001
RENDER_SIZES = (64, 128)
JPEG_PROBABILITY = 0.3
BLUR_PROBABILITY = 0.5
NOISE_PROBABILITY = 0.5
BLUR_SIGMA = (0.3, 1.2)
NOISE_MAX_SIGMA = 0.03
BLUR_RADIUS = 3


def _jpeg(image, quality):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    return np.array(Image.open(buffer))


def render_images(identities, per_identity, rng, jpeg_probability):
    """{render size: (uint8 images, float32 AUs)}; identity i is rendered at RENDER_SIZES[i % 2]."""
    by_size = {size: ([], []) for size in RENDER_SIZES}
    for index, identity in enumerate(identities):
        size = RENDER_SIZES[index % len(RENDER_SIZES)]
        images, targets = by_size[size]
        for _ in range(per_identity):
            aus = sample_expression_aus(rng)
            image, _ = render_face(identity, aus, size)
            if rng.random() < jpeg_probability:
                image = _jpeg(image, rng.uniform(30, 90))
            images.append(image)
            targets.append(aus)
    return {size: (np.stack(images), np.array(targets, np.float32)) for size, (images, targets) in by_size.items()}


def training_pool(rendered, input_size):
    """All rendered images at the network's input size (uint8, resized as `predict_aus` does) and their AUs."""
    images, targets = [], []
    for size_images, size_targets in rendered.values():
        for start in range(0, len(size_images), 512):
            x = images_to_input(size_images[start:start + 512], input_size)
            images.append((x * 255).round().to(torch.uint8))
        targets.append(torch.from_numpy(size_targets))
    return torch.cat(images), torch.cat(targets)


def augment(x, generator):
    """Per-image blur, noise, brightness and contrast jitter of a float batch (N, 3, S, S) in [0, 1]."""
    count = len(x)

    def draw(low, high):
        return low + (high - low) * torch.rand(count, generator=generator)

    sigma = draw(*BLUR_SIGMA) * (torch.rand(count, generator=generator) < BLUR_PROBABILITY)
    offsets = torch.arange(-BLUR_RADIUS, BLUR_RADIUS + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets / sigma.clamp(min=1e-3)[:, None]) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(3, 0)  # one 1-D kernel per image channel
    side = x.shape[-1]
    planes = F.pad(x.reshape(1, count * 3, side, side), (BLUR_RADIUS,) * 4, mode="reflect")
    planes = F.conv2d(planes, kernel[:, None, None, :], groups=count * 3)
    planes = F.conv2d(planes, kernel[:, None, :, None], groups=count * 3)
    x = planes.reshape(count, 3, side, side)

    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * draw(0.85, 1.15)[:, None, None, None] + mean
    x = x * draw(0.9, 1.1)[:, None, None, None]
    noise = draw(0, NOISE_MAX_SIGMA) * (torch.rand(count, generator=generator) < NOISE_PROBABILITY)
    x = x + noise[:, None, None, None] * torch.randn(x.shape, generator=generator)
    return x.clamp(0, 1)


def mae_per_au(predicted, target):
    """{AU name: mean absolute error} plus the mean over AUs under "mean"."""
    errors = np.abs(np.asarray(predicted) - np.asarray(target)).mean(0)
    return {**{name: round(float(e), 4) for name, e in zip(AU_NAMES, errors)}, "mean": round(float(errors.mean()), 4)}


def validate(regressor, rendered, train_mean, generator):
    """Accuracy on the validation renders: clean (at their render size), augmented, and the trivial predictor."""
    regressor.eval()
    images_by_size = [images for images, _ in rendered.values()]
    target = np.concatenate([targets for _, targets in rendered.values()])
    clean = np.concatenate([predict_aus(images, regressor) for images in images_by_size])
    with torch.inference_mode():
        augmented = np.concatenate([
            regressor(augment(images_to_input(images, regressor.input_size), generator)).clamp(0, 5).numpy()
            for images in images_by_size])
    return {
        "mae_per_au": mae_per_au(clean, target),
        "mae_per_au_augmented": mae_per_au(augmented, target),
        "trivial_mae_per_au": mae_per_au(np.broadcast_to(train_mean, target.shape), target),
        "images": int(len(target)),
        "images_per_size": {str(size): int(len(images)) for size, (images, _) in rendered.items()},
    }


def train(args):
    """Render, train, validate and save; returns the config written into the file."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    started = time.time()

    train_identities = sample_identities(args.train_identities, TRAIN_IDENTITY_SEED)
    val_identities = sample_identities(args.val_identities, VAL_IDENTITY_SEED)
    regressor = AURegressor(width=args.width)
    images, targets = training_pool(render_images(train_identities, args.per_identity, rng, JPEG_PROBABILITY),
                                    regressor.input_size)
    val_rendered = render_images(val_identities, args.val_per_identity, rng, jpeg_probability=0.0)
    render_seconds = time.time() - started
    print(f"rendered {len(images)} training and {sum(len(t) for _, t in val_rendered.values())} validation images "
          f"in {render_seconds:.0f} s")

    steps_per_epoch = len(images) // args.batch_size
    optimizer = torch.optim.AdamW(regressor.parameters(), lr=args.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch)
    for epoch in range(args.epochs):
        regressor.train()
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for step in range(steps_per_epoch):
            batch = order[step * args.batch_size:(step + 1) * args.batch_size]
            x = augment(images[batch].float() / 255, generator)
            loss = F.smooth_l1_loss(regressor(x), targets[batch], beta=0.5)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item()
        val_mae = mae_per_au(predict_aus(val_rendered[RENDER_SIZES[0]][0], regressor.eval()),
                             val_rendered[RENDER_SIZES[0]][1])["mean"]
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total / steps_per_epoch:.4f}, "
              f"validation MAE ({RENDER_SIZES[0]} px) {val_mae:.3f}, {time.time() - started:.0f} s")

    accuracy = validate(regressor, val_rendered, targets.mean(0).numpy(), generator)
    config = {
        "training": {
            "identity_seeds": {"train": TRAIN_IDENTITY_SEED, "validation": VAL_IDENTITY_SEED},
            "train_identities": args.train_identities, "train_images": int(len(images)),
            "validation_identities": args.val_identities, "render_sizes": list(RENDER_SIZES),
            "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
            "threads": args.threads, "seconds": round(time.time() - started, 1),
            "render_seconds": round(render_seconds, 1),
            "augmentation": {"jpeg_probability": JPEG_PROBABILITY, "jpeg_quality": [30, 90],
                             "blur_probability": BLUR_PROBABILITY, "blur_sigma_px": list(BLUR_SIGMA),
                             "noise_probability": NOISE_PROBABILITY, "noise_max_sigma": NOISE_MAX_SIGMA,
                             "brightness": [0.9, 1.1], "contrast": [0.85, 1.15]},
        },
        "accuracy": accuracy,
    }
    save_au_regressor(regressor.eval(), args.out, config)
    return config


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=SHIPPED_REGRESSOR)
    parser.add_argument("--train-identities", type=int, default=1500)
    parser.add_argument("--per-identity", type=int, default=20)
    parser.add_argument("--val-identities", type=int, default=100)
    parser.add_argument("--val-per-identity", type=int, default=16)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    config = train(parser.parse_args())
    accuracy = config["accuracy"]
    print("AU      " + " ".join(f"{name:>6}" for name in [*AU_NAMES, "mean"]))
    for label, key in (("clean", "mae_per_au"), ("augm.", "mae_per_au_augmented"), ("trivial", "trivial_mae_per_au")):
        print(f"{label:<8}" + " ".join(f"{accuracy[key][name]:6.3f}" for name in [*AU_NAMES, "mean"]))
    print(f"training took {config['training']['seconds']:.0f} s")


if __name__ == "__main__":
    main()
