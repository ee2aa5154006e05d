"""The import contract (.importlinter, checked by import-linter): imports point down the layers of
docs/architecture.md, no package has an import cycle, and the pure layers import no Ray, pydantic, click or cloud SDK.

The contract is checked on this checkout, and on copies with one bad import each, which it must refuse."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter", reason="needs the test extra (pip install -e '.[test]')")

ROOT = Path(__file__).resolve().parent.parent
LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def lint(root: Path) -> subprocess.CompletedProcess:
    """lint-imports on the ganbatch package under root, with the repository's contract."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", LINT, "--config", str(ROOT / ".importlinter"), "--no-cache"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)


def test_the_code_keeps_the_import_contract():
    done = lint(ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


@pytest.mark.parametrize("module, line, broken", [
    ("targets/aus.py", "from ganbatch.jobs import animate", "Imports point down"),  # an upward import
    ("models/networks.py", "import ganbatch.render", "Imports point down"),
    ("train/checkpoints.py", "import ganbatch.train.state", "No import cycles"),  # state builds on checkpoints
    ("synth/face.py", "import ray", "import no Ray, pydantic or click"),
    ("faces/align.py", "import pydantic", "import no Ray, pydantic or click"),
    ("targets/landmarks.py", "import boto3", "import no cloud SDK"),
])
def test_the_contract_refuses_a_bad_import(tmp_path, module, line, broken):
    shutil.copytree(ROOT / "ganbatch", tmp_path / "ganbatch", ignore=shutil.ignore_patterns("assets", "__pycache__"))
    path = tmp_path / "ganbatch" / module
    path.write_text(path.read_text() + f"\n{line}\n")
    done = lint(tmp_path)
    assert done.returncode != 0
    assert f"{broken}" in done.stdout and "BROKEN" in done.stdout, done.stdout[-4000:]


def test_the_pure_layers_load_without_the_schema_ray_click_or_the_cloud_sdk():
    """What the contract says, seen at run time (the GPU machine has none of them): importing the renderer, the
    families, networks, targets, synthetic faces and face crops loads no pydantic, click, Ray or boto3."""
    code = ("import sys, ganbatch.render, ganbatch.layout, ganbatch.families, ganbatch.models.networks, "
            "ganbatch.targets, ganbatch.synth, ganbatch.faces\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'pydantic', 'click', 'ray', 'boto3', 'botocore'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
