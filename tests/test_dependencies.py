"""setup.py declares exactly the distributions ganbatch's code imports (install_requires, or an extra for the
optional face backends), so nothing is installed for nothing and nothing imported is missing."""
import ast
import importlib.metadata
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# imports whose distribution is not installed here (an optional extra), or is not named by the import
NOT_INSTALLED = {"dlib": "dlib-bin"}
# engines behind `--runtime` / `export --format`, imported through models.export.require by name, not `import`
SEAMS = {"onnx", "onnxruntime", "openvino", "nncf", "tensorrt", "face-recognition-models"}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~ ]", name, maxsplit=1)[0]).lower()


def _declared() -> tuple[set[str], set[str]]:
    call = next(node for node in ast.walk(ast.parse((ROOT / "setup.py").read_text()))
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup")
    options = {keyword.arg: keyword.value for keyword in call.keywords}
    required = {_normal(name) for name in ast.literal_eval(options["install_requires"])}
    extras = ast.literal_eval(options["extras_require"])
    optional = {_normal(name) for key, names in extras.items() if key != "test" for name in names}
    return required, optional


def _imported() -> set[str]:
    distributions = importlib.metadata.packages_distributions()
    found = set()
    for path in (ROOT / "ganbatch").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if module.startswith("torch.utils.tensorboard"):
                    found.add("tensorboard")
                if top in sys.stdlib_module_names or top == "ganbatch":
                    continue
                names = NOT_INSTALLED.get(top) or distributions.get(top, [top])[0]
                found.add(_normal(names))
    return found


def test_setup_declares_exactly_what_the_code_imports():
    required, optional = _declared()
    imported = _imported()
    assert required - imported == set(), "declared but never imported"
    assert imported - required - optional == set(), "imported but not declared"
    assert optional - imported - SEAMS == set(), "extras that no code imports"


def test_building_the_package_says_no_packaging_warnings_and_ships_the_assets(tmp_path):
    """Set-up printed ~140 `Package 'ganbatch.assets' is absent from the packages configuration` warnings."""
    import shutil
    import subprocess

    root = Path(__file__).resolve().parents[1]
    for name in ("setup.py", "README.md"):
        shutil.copy(root / name, tmp_path / name)
    shutil.copytree(root / "ganbatch", tmp_path / "ganbatch", ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "setup.py", "build_py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "absent from the" not in done.stdout + done.stderr
    built = tmp_path / "build" / "lib" / "ganbatch" / "assets"
    assert (built / "demo_ganimation.pt").is_file() and (built / "driving" / "driver.mp4").is_file()
    assert (built / "samples" / "id0015.png").is_file()
    assert not list((tmp_path / "build").rglob("__pycache__"))
