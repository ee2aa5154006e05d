"""ganbatch: face photos to expression videos with GAN face-animation models, on a laptop or a Ray cluster."""

__version__ = "0.1.0"
