"""The runtime cache (hit, miss, a corrupt entry made again, two writers, the size bound, other keys missing), auto's
decision kept and reused (a run tuning up to the first candidate that passes), the quality gate refusing a candidate that jitters (an engine registered in one line),
`ganbatch tune` / `ganbatch cache`, and the driver reading a model's header only."""
import json
import multiprocessing
import sys
import time

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ganbatch.cli import main
from ganbatch.models import GANimationGenerator, describe_generator, save_generator
from ganbatch.runtimes import RuntimeCache, open_runtime, open_source
from ganbatch.runtimes import auto, build, registry
from ganbatch.runtimes.base import Runtime
from ganbatch.runtimes.gate import GATE_FACES, gate_figures, gate_inputs
from ganbatch.runtimes.machine import Machine
from ganbatch.runtimes.registry import Engine
from ganbatch.runtimes.torch_engine import TorchRuntime

SIZE = 32


def write_bytes(size):
    def build(path):
        path.write_bytes(b"x" * size)
        return path
    return build


def test_an_artifact_is_built_once_then_found(tmp_path):
    cache = RuntimeCache(tmp_path)
    built = []

    def build(path):
        built.append(path)
        return write_bytes(10)(path)

    first = cache.artifact({"model": "a"}, build)
    again = cache.artifact({"model": "a"}, build)
    other = cache.artifact({"model": "b"}, build)
    assert first == again and first.read_bytes() == b"x" * 10 and len(built) == 2 and other != first
    assert [entry.kind for entry in cache.entries()] == ["artifact", "artifact"]


def test_a_corrupt_entry_is_made_again(tmp_path):
    cache = RuntimeCache(tmp_path)
    path = cache.artifact({"model": "a"}, write_bytes(10))
    (path.parent / "entry.json").write_text("{torn")
    built = []
    rebuilt = cache.artifact({"model": "a"}, lambda out: built.append(out) or write_bytes(5)(out))
    assert built and rebuilt.read_bytes() == b"x" * 5
    cache.store_decision({"model": "a"}, {"chosen": ["torch", "fp32"], "candidates": []})
    decision_file = next((tmp_path / "decisions").glob("*.json"))
    decision_file.write_text("not json")
    assert cache.decision({"model": "a"}) is None and not decision_file.exists()


def _slow_writer(root, results):
    cache = RuntimeCache(root)

    def build(path):
        with open(root / "builds.log", "a") as log:
            log.write("built\n")
        time.sleep(1.0)
        return write_bytes(100)(path)

    results.put(str(cache.artifact({"model": "shared"}, build)))


def test_two_writers_build_one_artifact(tmp_path):
    results = multiprocessing.get_context("fork").Queue()
    writers = [multiprocessing.get_context("fork").Process(target=_slow_writer, args=(tmp_path, results))
               for _ in range(2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
    paths = {results.get(timeout=5) for _ in writers}
    assert len(paths) == 1 and (tmp_path / "builds.log").read_text() == "built\n"
    assert not [path for path in (tmp_path / "artifacts").iterdir() if path.name.startswith(".")]  # no leftovers


def test_the_least_recently_used_artifacts_go_past_the_size_bound(tmp_path):
    cache = RuntimeCache(tmp_path, max_bytes=2500)
    (cache.compiled_folder("openvino") / "blob").write_bytes(b"x" * 600)
    first = cache.artifact({"model": 1}, write_bytes(1000))
    cache.artifact({"model": 2}, write_bytes(1000))
    time.sleep(0.05)
    cache.artifact({"model": 1}, write_bytes(1000))  # used again: now the most recent
    time.sleep(0.05)
    cache.artifact({"model": 3}, write_bytes(1000))
    kept = {entry.key["model"] for entry in cache.entries()}
    assert kept == {1, 3} and first.exists() and not (tmp_path / "compiled").exists()
    assert sum(entry.size for entry in cache.entries()) <= 2500


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    generator = GANimationGenerator(conv_dim=8, repeat_num=1).eval()
    path = tmp_path_factory.mktemp("model") / "g.pt"
    save_generator(generator, path, {"image_size": SIZE})
    return str(path)


def test_another_model_machine_or_gate_misses(checkpoint, tmp_path, monkeypatch):
    torch.manual_seed(1)
    other = tmp_path / "other.pt"
    save_generator(GANimationGenerator(conv_dim=8, repeat_num=1), other, {"image_size": SIZE})
    cpu = Machine(torch.device("cpu"), "AVX512", frozenset({"avx512f", "avx512_vnni"}), ("torch",))
    avx2 = Machine(torch.device("cpu"), "AVX2", frozenset({"avx2"}), ("torch",))
    with open_source(checkpoint) as source, open_source(str(other)) as second:
        keys = [auto.decision_key(source, cpu, batch_size=16), auto.decision_key(second, cpu, batch_size=16),
                auto.decision_key(source, avx2, batch_size=16), auto.decision_key(source, cpu, batch_size=64)]
        exported = build.artifact_key(source, "openvino", "int8")
        monkeypatch.setattr(auto, "GATE_VERSION", auto.GATE_VERSION - 1)  # a decision of an earlier gate
        monkeypatch.setattr(build, "EXPORT_RECIPE", build.EXPORT_RECIPE - 1)  # an export of an earlier recipe
        keys.append(auto.decision_key(source, cpu, batch_size=16))
        earlier_export = build.artifact_key(source, "openvino", "int8")
    cache = RuntimeCache(tmp_path / "cache")
    cache.store_decision(keys[0], {"chosen": ["torch", "fp32"], "candidates": []})
    assert cache.decision(keys[0]) is not None
    assert [cache.decision(key) for key in keys[1:]] == [None, None, None, None]
    assert cache.artifact(exported, write_bytes(3)) != cache.artifact(earlier_export, write_bytes(3))


def test_auto_tunes_once_then_opens_the_cached_choice(checkpoint, tmp_path, monkeypatch):
    cache = RuntimeCache(tmp_path)
    first = open_runtime(checkpoint, threads=1, cache=cache)
    assert "(auto, tuned now)" in first.describe() and not first.auto.cached

    def no_tuning(*args, **kwargs):
        raise AssertionError("a cached decision must not tune again")

    monkeypatch.setattr(auto, "tune", no_tuning)
    second = open_runtime(checkpoint, threads=1, cache=cache)
    assert "(auto, from the runtime cache)" in second.describe() and second.auto.cached
    assert (second.name, second.precision) == (first.name, first.precision)
    x, cond = gate_inputs(first.info, faces=1, frames=2)
    torch.testing.assert_close(second(x, cond)[0], first(x, cond)[0])
    monkeypatch.undo()
    for path in (tmp_path / "decisions").glob("*.json"):
        path.write_text('{"key": 1}')  # unreadable: tuned again
    assert "(auto, tuned now)" in open_runtime(checkpoint, threads=1, cache=cache).describe()


def test_a_damaged_export_behind_a_cached_decision_is_built_again(checkpoint, tmp_path):
    pytest.importorskip("openvino", reason="needs the cpu-fast extra (pip install 'ganbatch[cpu-fast]')")
    from ganbatch.runtimes.build import build_runtime
    from ganbatch.runtimes.machine import detect_machine

    cache = RuntimeCache(tmp_path)
    with open_source(checkpoint, cache=cache) as source:
        build_runtime(source, "openvino", device=torch.device("cpu"), precision="fp32", cache=cache)
        key = auto.decision_key(source, detect_machine("cpu"), batch_size=16)
    cache.store_decision(key, {"chosen": ["openvino", "fp32"], "candidates": []})
    (xml,) = (tmp_path / "artifacts").rglob("model.xml")
    xml.write_text("<net> torn")
    runtime = open_runtime(checkpoint, threads=1, cache=cache)
    assert "(auto, tuned now)" in runtime.describe()  # the decision was dropped and made again
    exports = list((tmp_path / "artifacts").rglob("model.xml"))
    assert exports and all("<net> torn" not in export.read_text() for export in exports)


# ---- the gate refuses a candidate that jitters: a test-only engine, registered in one line ----

class JitteryRuntime(Runtime):
    """torch fp32 plus a few grey levels of noise that alternate in sign from frame to frame: the images stay
    close (PSNR well above 35 dB) while the small steps of an eased path flip direction."""

    name = "jittery"

    def __init__(self, generator, info, *, device="cpu", precision="int8", threads=None):
        super().__init__(info, device, precision, threads)
        self.torch = TorchRuntime(generator, info)

    def _run(self, x, cond):
        image, color, attention = self.torch._run(x, cond)
        signs = torch.tensor([(-1.0) ** index for index in range(len(x))]).view(-1, 1, 1, 1)
        return image + 0.012 * signs, color, attention


ENGINE = Engine("jittery", "JitteryRuntime", reads=("checkpoint",), export=None, precisions={"cpu": ("int8",)})


def test_the_gate_refuses_a_candidate_that_jitters_though_its_psnr_passes(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setitem(registry.ENGINES, "jittery", __name__)  # the one line that registers an engine
    monkeypatch.setattr(auto, "candidates", lambda source, machine: [("jittery", "int8"), ("torch", "fp32")])
    runtime = open_runtime(checkpoint, threads=1, cache=RuntimeCache(tmp_path))
    rows = {row.runtime: row for row in runtime.auto.candidates}
    jittery = rows["jittery"]
    assert jittery.error is None and jittery.figures.psnr_db >= 35, jittery.describe()
    assert any("monotone steps" in failure for failure in jittery.failures), jittery.describe()
    assert runtime.name == "torch"


class ExactRuntime(Runtime):
    """torch fp32 under another name and precision: a reduced-precision candidate that passes the gate."""

    name = "exact"
    built: list[str] = []

    def __init__(self, generator, info, *, device="cpu", precision="int8", threads=None):
        super().__init__(info, device, precision, threads)
        self.built.append(precision)
        self.torch = TorchRuntime(generator, info)

    def _run(self, x, cond):
        return self.torch._run(x, cond)


EXACT = Engine("exact", "ExactRuntime", reads=("checkpoint",), export=None, precisions={"cpu": ("int8", "fp32")})


def test_a_run_tunes_up_to_the_first_candidate_that_passes_and_beats_the_reference(checkpoint, tmp_path,
                                                                                    monkeypatch):
    monkeypatch.setitem(registry.ENGINES, "exact", __name__)
    monkeypatch.setattr(sys.modules[__name__], "ENGINE", EXACT)
    monkeypatch.setattr(auto, "candidates", lambda source, machine: [("exact", "int8"), ("exact", "fp32"),
                                                                     ("torch", "fp32")])
    speeds = {"exact": 100.0, "torch": 10.0}
    monkeypatch.setattr(auto, "_measure", lambda runtime, x, cond, batch_size: (runtime(x, cond)[0],
                                                                                speeds[runtime.name]))
    ExactRuntime.built.clear()
    run = open_runtime(checkpoint, threads=1, cache=RuntimeCache(tmp_path / "run"))
    assert (run.name, run.precision) == ("exact", "int8") and ExactRuntime.built == ["int8"]  # fp32 never built
    assert [(row.runtime, row.precision) for row in run.auto.candidates] == [("exact", "int8"), ("torch", "fp32")]
    ExactRuntime.built.clear()
    tuned = open_runtime(checkpoint, threads=1, cache=RuntimeCache(tmp_path / "tune"), retune=True)
    assert ExactRuntime.built == ["int8", "fp32"] and len(tuned.auto.candidates) == 3  # `ganbatch tune`: all
    speeds["exact"] = 1.0  # passing but slower than the reference: a run goes on to the next candidate
    ExactRuntime.built.clear()
    slower = open_runtime(checkpoint, threads=1, cache=RuntimeCache(tmp_path / "slower"))
    assert ExactRuntime.built == ["int8", "fp32"] and slower.name == "torch"


def test_gate_figures_pass_identical_images_and_catch_jitter():
    torch.manual_seed(0)
    generator = GANimationGenerator(conv_dim=8, repeat_num=1).eval()
    info = describe_generator(generator, image_size=SIZE)
    x, cond = gate_inputs(info)
    reference = TorchRuntime(generator, info)(x, cond)[0]
    same = gate_figures(reference.clone(), reference, GATE_FACES)
    assert same.failures("int8") == [] and same.failures("fp32") == []
    noise = torch.from_numpy(np.random.default_rng(0).normal(0, 0.01, reference.shape).astype(np.float32))
    noisy = gate_figures(reference + noise, reference, GATE_FACES)
    assert noisy.psnr_db > 35 and noisy.failures("fp32")  # an fp32 engine must agree to 1e-3


# ---- the commands ----

def test_tune_prints_every_candidate_and_cache_shows_and_clears_it(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("GANBATCH_CACHE", str(tmp_path))
    runner = CliRunner()
    tuned = runner.invoke(main, ["tune", "--model", checkpoint, "--threads", "1"])
    assert tuned.exit_code == 0, tuned.output
    lines = tuned.output.splitlines()
    assert "frames/s" in lines[1] and "chosen:" in lines[-1]
    rows = {line.split()[0] for line in lines[2:-1]}
    assert "torch" in rows and rows <= set(registry.ENGINES) and len(lines[2:-1]) >= 2
    shown = runner.invoke(main, ["cache"])
    assert shown.exit_code == 0 and "decision" in shown.output and str(tmp_path) in shown.output
    cleared = runner.invoke(main, ["cache", "--clear"])
    assert cleared.exit_code == 0 and "cleared" in cleared.output
    assert "0 entries" in runner.invoke(main, ["cache"]).output
    missing = runner.invoke(main, ["tune", "--model", str(tmp_path / "nope.pt")])
    assert missing.exit_code != 0 and "nope.pt" in missing.output and "Traceback" not in missing.output


def test_the_driver_reads_the_model_header_not_its_weights(checkpoint, tmp_path, monkeypatch):
    """After the file's first check on this machine; a changed file is checked again (test_hardening's flipped
    model)."""
    from ganbatch.animate import pipeline
    from ganbatch.jobs.animate import AnimateJob
    from ganbatch.runtimes import source

    (tmp_path / "in").mkdir()
    face = np.zeros((SIZE, SIZE, 3), np.uint8)
    from PIL import Image

    Image.fromarray(face).save(tmp_path / "in" / "a.png")
    job = AnimateJob(model=checkpoint, inputs=[str(tmp_path / "in")], out=str(tmp_path / "out"),
                     targets=[{"expression": "happy"}])

    pipeline._prepare(job)  # the first time this file is seen here its tensors are checked (loaded) once

    def no_weights(*args, **kwargs):
        raise AssertionError("the driver loaded the weights")

    monkeypatch.setattr(source, "load_generator", no_weights)
    work = pipeline._prepare(job)
    assert work.image_size == SIZE and work.model_digest and len(work.todo) == 1
    assert json.loads(json.dumps(work.model_digest)) == work.model_digest
