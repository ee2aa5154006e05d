"""The model layer (families, networks, checkpoints, runtimes, the renderer, targets) works on local files without the cloud
stack: importing and using it never imports boto3, Ray or ganbatch.io.storage."""
import subprocess
import sys

PROGRAM = r"""
import importlib, pkgutil, sys, tempfile
from pathlib import Path

import ganbatch.families, ganbatch.models, ganbatch.runtimes, ganbatch.targets
for package in (ganbatch.families, ganbatch.models, ganbatch.runtimes, ganbatch.targets):
    for module in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)
import ganbatch.render
from ganbatch.models.checkpoint import save_generator
from ganbatch.runtimes import model_info, open_runtime

runtime = open_runtime("demo", runtime="torch")
assert model_info("demo").family == "ganimation"
with tempfile.TemporaryDirectory() as folder:
    save_generator(runtime.generator, Path(folder) / "copy.pt")
    model_info(str(Path(folder) / "copy.pt"))  # a file not seen here before: its tensors are checked once
    assert model_info(str(Path(folder) / "copy.pt")).read == "header"
print(sorted(name for name in ("boto3", "botocore", "ray", "ganbatch.io.storage") if name in sys.modules))
"""


def test_model_layer_runs_without_the_cloud_stack():
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
