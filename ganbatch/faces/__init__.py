"""Faces in full photos: detection backends, square model-sized crops, and paste-back of animated crops."""
from ganbatch.faces.align import (
    DEFAULT_MARGIN,
    CropTransform,
    crop_face,
    crop_with_transform,
    face_crop_transform,
    fit_to_size,
    paste_back,
)
from ganbatch.faces.detect import (
    BACKENDS,
    BackendUnavailable,
    Face,
    FaceDetector,
    available_backends,
    get_detector,
    largest_face,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_MARGIN",
    "BackendUnavailable",
    "CropTransform",
    "Face",
    "FaceDetector",
    "available_backends",
    "crop_face",
    "crop_with_transform",
    "face_crop_transform",
    "fit_to_size",
    "get_detector",
    "largest_face",
    "paste_back",
]
