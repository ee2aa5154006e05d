"""ganbatch: batch expression videos and training for GAN face-animation models (GANimation, GANnotation)."""
from setuptools import find_packages, setup

setup(
    name="ganbatch",
    version="0.1.0",
    description="Face photos to expression videos with GANimation/GANnotation, locally or on a Ray cluster",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["ganbatch", "ganbatch.*"]),
    include_package_data=True,
    package_data={"ganbatch": ["assets/*", "assets/**/*"]},
    install_requires=[
        # torch is pinned by scripts/setup.sh before this runs (a bare requirement would pull a CUDA build)
        "torch>=2.1",
        "numpy>=1.24",
        "click>=8.1",
        "pyyaml>=6",
        "pydantic>=2.5",
        "pillow>=10",
        "imageio>=2.31",
        "imageio-ffmpeg>=0.4.9",
        "ffmpeg-python>=0.2",
        "boto3>=1.28",
        "ray[train,data]>=2.40",
        "scikit-image>=0.22",
        "scipy>=1.10",
        "tensorboard>=2.14",
        "tqdm>=4.60",
    ],
    extras_require={
        "faces": ["face-alignment>=1.4", "dlib-bin>=19.24", "face-recognition-models>=0.3"],
        "test": ["pytest>=7.4", "moto[server]>=5.0"],
        # inference engines behind `--runtime` and `ganbatch export --format onnx|openvino` (int8 through nncf)
        "cpu-fast": ["onnx>=1.16", "onnxruntime>=1.18", "openvino>=2024.4", "nncf>=2.12"],
        "tensorrt": ["tensorrt>=10.0", "onnx>=1.16"],
    },
    entry_points={"console_scripts": ["ganbatch=ganbatch.cli:main"]},
)
