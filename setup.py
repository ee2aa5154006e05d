"""ganbatch: batch expression videos and training for GAN face-animation models (GANimation, GANnotation)."""
from setuptools import find_namespace_packages, setup

setup(
    name="ganbatch",
    version="0.1.0",
    description="Face photos to expression videos with GANimation/GANnotation, locally or on a Ray cluster",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # namespace packages too, so that the asset folders (no __init__.py) are packages whose files are package data
    # (setuptools warns for every data folder that is not a listed package)
    packages=find_namespace_packages(include=["ganbatch", "ganbatch.*"], exclude=["*.__pycache__"]),
    include_package_data=True,
    package_data={"ganbatch.assets": ["*.pt"], "ganbatch.assets.driving": ["*"], "ganbatch.assets.samples": ["*"]},
    install_requires=[
        # exactly the distributions ganbatch imports (tests/test_dependencies.py checks this list against the code)
        # torch is pinned by scripts/setup.sh before this runs (a bare requirement would pull a CUDA build); the
        # floor is the version the suite is tested with
        "torch>=2.13.0",
        "numpy>=1.24",
        "click>=8.1",
        "pyyaml>=6",
        "pydantic>=2.5",
        "pydantic-core>=2.14",  # imported for PydanticCustomError (pydantic itself pins the exact version)
        "pillow>=10",
        "imageio-ffmpeg>=0.4.9",  # the ffmpeg binary and the frame reader
        "ffmpeg-python>=0.2",  # the encoders' command lines
        "boto3>=1.28",
        "botocore>=1.31",  # imported for its Config and errors; reads AWS_ENDPOINT_URL natively from 1.31
        "ray[train,data]>=2.40",
        "pyarrow>=14",  # Ray Train's storage filesystem for S3 runs
        "platformdirs>=3",  # the runtime cache's folder (the platform's user cache folder)
        "filelock>=3.12",  # the runtime cache's locks
        "psutil>=5.9",  # the start-up breakdown's process age
        "scikit-image>=0.22",
        "scipy>=1.10",
        "tensorboard>=2.14",  # behind torch.utils.tensorboard
        "tqdm>=4.60",
        "psutil>=5.9",  # ganbatch.reaper: a killed command's local Ray processes
    ],
    extras_require={
        "faces": ["face-alignment>=1.4", "dlib-bin>=19.24", "face-recognition-models>=0.3"],
        "test": ["pytest>=7.4", "moto[server]>=5.0", "import-linter>=2.1"],  # import-linter: the import contract
        # inference engines behind `--runtime` and `ganbatch export --format onnx|openvino` (int8 through nncf)
        "cpu-fast": ["onnx>=1.16", "onnxruntime>=1.18", "openvino>=2024.4", "nncf>=2.12"],
        "tensorrt": ["tensorrt>=10.0", "onnx>=1.16"],
    },
    entry_points={"console_scripts": ["ganbatch=ganbatch.cli:main"]},
)
