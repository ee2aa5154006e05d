"""What the speed scripts share: the clips (synthetic faces along one expression), the full-size GANimation generator
(seeded random weights, or the bundled demo's trained weights widened to full size), the reference loop (the original tools' approach), a row printer and the GPU's utilisation sampler.
Imports no Ray and no job schema, so scripts/gpu_check.py (run where neither is installed) can use it too."""
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganbatch.families import get_family
from ganbatch.models import GANimationGenerator, describe_generator
from ganbatch.targets import expression_aus, expression_schedule

EXPRESSION = "happy"


def make_faces(count: int, size: int) -> list[np.ndarray]:
    """`count` synthetic neutral faces (uint8 size x size)."""
    from ganbatch.synth import render_face, sample_identity

    return [render_face(sample_identity(seed), np.zeros(17), size=size)[0] for seed in range(count)]


def clip_targets(frames: int) -> np.ndarray:
    """The per-frame AU targets of one clip: neutral to EXPRESSION over `frames` frames."""
    return expression_schedule(np.zeros(17, np.float32), expression_aus(EXPRESSION), frames=frames).targets()


def reference_fps(generator, info, faces, targets, *, device: str, folder: Path) -> float:
    """Frames/s of the original tools' approach: per frame, the face and that frame's target are converted, go
    through the generator alone (batch 1, fp32), and the result is saved as a PNG with PIL."""
    family = get_family(info.family)
    side = faces[0].shape[0]
    generator = generator.to(device)

    def one_frame(face, target, path):
        image, _, _ = generator(family.face_to_input(face).to(device),
                                family.targets_to_cond(target[None], side).to(device))
        Image.fromarray(family.to_pixels(image)[0]).save(path)

    with torch.inference_mode():
        one_frame(faces[0], targets[0], folder / "warm-up.png")
        start = time.perf_counter()
        for clip, face in enumerate(faces):
            for frame, target in enumerate(targets):
                one_frame(face, target, folder / f"clip{clip}_{frame:05d}.png")
        return len(faces) * len(targets) / (time.perf_counter() - start)


class GpuSampler:
    """Samples the GPU's utilisation (%) with nvidia-smi every half second while running (empty without it)."""

    def __init__(self):
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "GpuSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5).stdout
                self.samples.append(float(out.split()[0]))
            except (OSError, subprocess.SubprocessError, ValueError, IndexError):
                return


def report(label: str, fps: float, reference: float | None = None, generator: float | None = None) -> None:
    """Print one result row: frames/s, then the ratios to the reference and to the plain generator, when given."""
    ratios = ""
    if reference is not None:
        ratios += f"  {fps / reference:6.2f} x reference"
    if generator is not None:
        ratios += f"  {fps / generator:6.2f} x generator"
    print(f"{label:44s} {fps:8.2f} frames/s{ratios}", flush=True)


FULL_SIZE = {"conv_dim": 64, "repeat_num": 6}
WEIGHTS = ("random", "demo")


def widened_demo() -> GANimationGenerator:
    """The full-size GANimation generator computing the bundled demo's function: a trained stand-in for published
    full-size weights, which cannot be downloaded here. Speed does not depend on the weights, but auto's choice
    does (its quality gate), and random weights have nothing of a trained network's structure.

    Function-preserving widening (Net2WiderNet, Chen et al. 2016): every layer's channels are duplicated and each
    consuming weight halved across the two copies, so the sums, instance norms and heads are unchanged; the two
    residual blocks the demo lacks get their second norm's scale and shift at 0, which makes them the identity.
    """
    from ganbatch.models.checkpoint import load_generator
    from ganbatch.models.locate import DEMO_MODEL

    demo, _ = load_generator(DEMO_MODEL)
    wide = GANimationGenerator(**FULL_SIZE).eval()
    small = demo.state_dict()
    transposed = {name for name, module in wide.named_modules() if isinstance(module, torch.nn.ConvTranspose2d)}
    widened = {}
    for key, tensor in wide.state_dict().items():
        if key not in small:  # an extra residual block: identity through a zero-scaled second norm
            widened[key] = torch.zeros_like(tensor) if ".norm2." in key else tensor
            continue
        value = small[key]
        input_axis = (0 if key.rsplit(".", 1)[0] in transposed else 1) if value.dim() == 4 else None
        for axis in range(value.dim()):
            if value.shape[axis] != tensor.shape[axis]:
                copies = tensor.shape[axis] // value.shape[axis]
                value = torch.cat([value] * copies, dim=axis) / (copies if axis == input_axis else 1)
        widened[key] = value
    wide.load_state_dict(widened)
    return wide


def bench_setup(args):
    """The benchmarks' material: torch threads set, the full-size GANimation generator (--weights: seeded random, or
    the widened demo) and its info,
    --clips synthetic faces at --size, and the happy clip's --frames per-frame targets."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    generator = widened_demo() if getattr(args, "weights", "random") == "demo" else \
        GANimationGenerator(**FULL_SIZE).eval()
    info = describe_generator(generator, image_size=args.size)
    faces = make_faces(args.clips, args.size)
    targets = clip_targets(args.frames)
    return generator, info, faces, targets
