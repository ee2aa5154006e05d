"""Face detection backends (face-alignment, dlib, scikit-image LBP) behind one interface.

Every backend takes an RGB ``uint8`` image of shape ``(H, W, 3)`` and returns a list of :class:`Face`.
Landmarks follow the 68-point iBUG layout (``ganbatch.targets.landmarks.IBUG_PARTS``) in pixel-centre
coordinates: ``(x, y)`` = ``(column, row)`` of a pixel's centre.

Backends, in the order ``"auto"`` tries them:

- ``face-alignment``: S3FD detector + 2D-FAN landmarks (best quality, torch; runs on ``device``). Its weights must
  already be in the torch hub cache, this package never downloads them.
- ``dlib``: dlib's HOG frontal detector (the one the original GANimation used, via ``face_recognition``) +
  the 68-point shape predictor shipped by ``face-recognition-models``. CPU only.
- ``lbp``: scikit-image's bundled LBP frontal-face cascade. Boxes only, no landmarks, no score. CPU only.

Detectors are built once per process and cached (see :func:`get_detector`), which suits long-lived workers.
"""
from __future__ import annotations

import abc
import functools
import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

INSTALL_HINT = "pip install ganbatch[faces]"


class BackendUnavailable(RuntimeError):
    """A face detection backend cannot be used here (missing package or missing weights)."""


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face.

    box: ``(x0, y0, x1, y1)`` in pixels (edges, ``x1``/``y1`` exclusive).
    score: detector confidence on the backend's own scale; ``None`` when the backend gives none.
    landmarks: ``(68, 2)`` float array of iBUG points ``(x, y)``, or ``None`` for box-only backends.
    """

    box: tuple[float, float, float, float]
    score: float | None = None
    landmarks: np.ndarray | None = None

    @property
    def area(self) -> float:
        """Area of the box in square pixels."""
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def largest_face(faces: list[Face]) -> Face | None:
    """The face with the largest box (GANimation's choice for multi-face photos), or ``None`` for no faces."""
    return max(faces, key=lambda face: face.area, default=None)


def check_rgb_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Return ``image`` as a C-contiguous array after checking it is ``uint8`` RGB ``(H, W, 3)``."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name}: expected a uint8 RGB array of shape (H, W, 3), got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


class FaceDetector(abc.ABC):
    """A face detection backend: ``detect(image) -> list[Face]``."""

    name: str
    uses_device: bool = False  # True when the backend runs on the torch device given to get_detector

    def detect(self, image: np.ndarray) -> list[Face]:
        """Detect the faces in an RGB ``uint8`` image ``(H, W, 3)``."""
        return self._detect(check_rgb_image(image))

    @abc.abstractmethod
    def _detect(self, image: np.ndarray) -> list[Face]:
        """Backend-specific detection on a validated, contiguous image."""

    @classmethod
    @abc.abstractmethod
    def probe(cls) -> None:
        """Raise :class:`BackendUnavailable` (saying why) unless this backend can be built; cheap, loads nothing."""


def _require_package(module: str, backend: str) -> None:
    """Raise :class:`BackendUnavailable` if ``module`` is not importable, naming the extra that provides it."""
    if importlib.util.find_spec(module) is None:
        raise BackendUnavailable(
            f"face backend {backend!r} needs the Python package {module!r}, which is not installed: {INSTALL_HINT}"
        )


class FaceAlignmentDetector(FaceDetector):
    """``face_alignment`` (S3FD boxes + 2D-FAN 68 landmarks); weights must be in the torch hub cache."""

    name = "face-alignment"
    uses_device = True
    # The files face_alignment 1.5 fetches into <torch hub dir>/checkpoints (basenames of its download URLs).
    DETECTOR_WEIGHTS = "s3fd-619a316812.pth"
    LANDMARK_WEIGHTS = "2DFAN4-11f355bf06.pth.tar"

    @staticmethod
    def weights_dir() -> Path:
        """The torch hub checkpoint directory face_alignment loads from (follows ``$TORCH_HOME``)."""
        import torch.hub  # here, not at the top: the other backends run without torch

        return Path(torch.hub.get_dir()) / "checkpoints"

    @classmethod
    def probe(cls) -> None:
        """Check that ``face_alignment`` is installed and both weight files are already cached."""
        _require_package("face_alignment", cls.name)
        folder = cls.weights_dir()
        missing = [f for f in (cls.DETECTOR_WEIGHTS, cls.LANDMARK_WEIGHTS) if not (folder / f).is_file()]
        if missing:
            raise BackendUnavailable(
                f"face backend {cls.name!r} needs its weights in {folder} (torch hub cache, set by $TORCH_HOME) "
                f"and will not download them; missing: {', '.join(missing)}"
            )

    def __init__(self, device: str = "cpu"):
        self.probe()
        import face_alignment

        self.device = str(device)
        # compile=False: face_alignment 1.5 defaults to torch.compile, which costs minutes on first use.
        # flip_input=False: averaging with a mirrored pass doubles the landmark cost for gains a crop box never sees.
        self._model = face_alignment.FaceAlignment(
            face_alignment.LandmarksType.TWO_D,
            device=self.device,
            face_detector="sfd",
            face_detector_kwargs={"path_to_detector": str(self.weights_dir() / self.DETECTOR_WEIGHTS)},
            flip_input=False,
            compile=False,
        )

    def _detect(self, image: np.ndarray) -> list[Face]:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No faces were detected")
            landmarks, _, boxes = self._model.get_landmarks_from_image(image, return_bboxes=True)
        if landmarks is None:
            return []
        return [
            Face(box=tuple(float(v) for v in box[:4]), score=float(box[4]), landmarks=np.asarray(points[:, :2], float))
            for points, box in zip(landmarks, boxes)
        ]


class DlibDetector(FaceDetector):
    """dlib HOG frontal detector + 68-point shape predictor from ``face-recognition-models``.

    upsample: times the image is upsampled before detection; HOG finds faces down to about 80 px at 0 and
    about 40 px at 1 (the default, as in GANimation's ``face_recognition.face_locations``), each step ~4x slower.
    """

    name = "dlib"
    PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"

    @classmethod
    def predictor_path(cls) -> Path:
        """Path of the 68-point predictor inside ``face_recognition_models`` (located without importing it:
        its ``__init__`` needs ``pkg_resources``, absent from recent setuptools)."""
        _require_package("face_recognition_models", cls.name)
        package_dir = importlib.util.find_spec("face_recognition_models").submodule_search_locations[0]
        return Path(package_dir) / "models" / cls.PREDICTOR_FILE

    @classmethod
    def probe(cls) -> None:
        """Check that ``dlib`` and the predictor file of ``face_recognition_models`` are present."""
        _require_package("dlib", cls.name)
        path = cls.predictor_path()
        if not path.is_file():
            raise BackendUnavailable(f"face backend {cls.name!r}: predictor file {path} is missing: {INSTALL_HINT}")

    def __init__(self, upsample: int = 1):
        self.probe()
        import dlib

        self.upsample = upsample
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(self.predictor_path()))

    def _detect(self, image: np.ndarray) -> list[Face]:
        rects, scores, _ = self._detector.run(image, self.upsample)
        faces = []
        for rect, score in zip(rects, scores):
            shape = self._predictor(image, rect)
            points = np.array([(p.x, p.y) for p in shape.parts()], dtype=float)
            # dlib rectangles are inclusive pixel indices; Face boxes are exclusive edges.
            box = (float(rect.left()), float(rect.top()), float(rect.right() + 1), float(rect.bottom() + 1))
            faces.append(Face(box=box, score=float(score), landmarks=points))
        return faces


class LbpDetector(FaceDetector):
    """scikit-image's bundled LBP frontal-face cascade: boxes only, no landmarks, no score.

    min_face: smallest face side searched, in pixels; scale_factor: window growth per scale step.
    """

    name = "lbp"

    @classmethod
    def probe(cls) -> None:
        """Check that scikit-image is installed (the cascade file ships with it)."""
        _require_package("skimage", cls.name)

    def __init__(self, min_face: int = 40, scale_factor: float = 1.2):
        self.probe()
        from skimage.data import lbp_frontal_face_cascade_filename
        from skimage.feature import Cascade

        self.min_face = min_face
        self.scale_factor = scale_factor
        self._cascade = Cascade(lbp_frontal_face_cascade_filename())

    def _detect(self, image: np.ndarray) -> list[Face]:
        height, width = image.shape[:2]
        hits = self._cascade.detect_multi_scale(
            img=image,
            scale_factor=self.scale_factor,
            step_ratio=1,
            min_size=(self.min_face, self.min_face),
            max_size=(height, width),
        )
        return [
            Face(box=(float(h["c"]), float(h["r"]), float(h["c"] + h["width"]), float(h["r"] + h["height"])))
            for h in hits
        ]


BACKENDS: dict[str, type[FaceDetector]] = {
    backend.name: backend for backend in (FaceAlignmentDetector, DlibDetector, LbpDetector)
}


def available_backends() -> list[str]:
    """Names of the backends usable here, in ``"auto"`` preference order (cheap: loads no model)."""
    available = []
    for name, backend in BACKENDS.items():
        try:
            backend.probe()
        except BackendUnavailable:
            continue
        available.append(name)
    return available


def get_detector(name: str = "auto", device: str = "cpu") -> FaceDetector:
    """The cached detector for backend ``name`` (``"auto"``: the first available of face-alignment, dlib, lbp).

    device: torch device for face-alignment; the other backends run on the CPU and ignore it.
    Raises :class:`BackendUnavailable` when the backend (or, for ``"auto"``, every backend) cannot be used,
    and ``ValueError`` for an unknown name.
    """
    if name == "auto":
        available = available_backends()
        if not available:
            raise BackendUnavailable(f"no face detection backend is available: {INSTALL_HINT}")
        name = available[0]
    if name not in BACKENDS:
        raise ValueError(f"unknown face backend {name!r}; choose from auto, {', '.join(BACKENDS)}")
    return _build_detector(name, str(device) if BACKENDS[name].uses_device else None)


@functools.lru_cache(maxsize=None)
def _build_detector(name: str, device: str | None) -> FaceDetector:
    """Build a backend once per (name, device) and process; ``device`` is None for CPU-only backends."""
    backend = BACKENDS[name]
    return backend(device) if backend.uses_device else backend()
