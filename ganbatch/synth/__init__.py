"""Synthetic faces with exact ground truth: a procedural renderer driven by the 17 AUs or by 68 iBUG landmarks.

`render_face(identity, aus)` draws an identity showing an expression and returns its landmarks;
`render_face_from_landmarks(identity, landmarks)` draws it posed by any landmark set; `write_dataset` writes
training/test data sets in GANimation's layout with OpenFace CSV and landmark annotations.
"""
from ganbatch.synth.dataset import (
    DatasetSummary,
    ExpressionMix,
    read_identities,
    render_contact_sheet,
    sample_expression_aus,
    write_dataset,
)
from ganbatch.synth.face import render_face, render_face_from_landmarks
from ganbatch.synth.geometry import FaceGeometry, Shading, expression_shading, face_geometry, face_landmarks
from ganbatch.synth.identity import HAIR_STYLES, Identity, sample_identities, sample_identity

__all__ = [
    "DatasetSummary",
    "ExpressionMix",
    "FaceGeometry",
    "HAIR_STYLES",
    "Identity",
    "Shading",
    "expression_shading",
    "face_geometry",
    "face_landmarks",
    "read_identities",
    "render_contact_sheet",
    "render_face",
    "render_face_from_landmarks",
    "sample_expression_aus",
    "sample_identities",
    "sample_identity",
    "write_dataset",
]
