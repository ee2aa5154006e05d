"""Runtimes: the torch runtime's contract, open_runtime on checkpoints, render_clip with a Runtime, the engine
registry, and `auto`: candidates from the machine's capabilities, the tuned choice, the fallback to torch, a model
file selecting its engine, the demo's eval metrics."""
import numpy as np
import pytest
import torch

from ganbatch.models import GANimationGenerator, describe_generator, save_generator
from ganbatch.models.export import MISSING_ENV
from ganbatch.render import render_clip
from ganbatch.runtimes import ModelSource, Runtime, RuntimeUnavailableError, open_runtime
from ganbatch.runtimes.auto import candidates
from ganbatch.runtimes.gate import MIN_PSNR_DB
from ganbatch.runtimes.machine import Machine, cpu_flags
from ganbatch.runtimes.registry import installed_engines
from ganbatch.runtimes.torch_engine import TorchRuntime

SIZE = 32


@pytest.fixture(autouse=True)
def own_runtime_cache(tmp_path, monkeypatch):
    """Each test tunes afresh: a runtime cache of its own (the generators here are seeded alike)."""
    monkeypatch.setenv("GANBATCH_CACHE", str(tmp_path / "runtime-cache"))


@pytest.fixture(scope="module")
def ganimation():
    torch.manual_seed(0)
    generator = GANimationGenerator(conv_dim=8, repeat_num=1).eval()
    return generator, describe_generator(generator, image_size=SIZE)


def test_torch_runtime_matches_the_generator_and_returns_float32_cpu(ganimation):
    generator, info = ganimation
    runtime = TorchRuntime(generator, info, threads=1)
    x = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    cond = torch.rand(2, 17)
    with torch.no_grad():
        expected = generator(x, cond)
    outputs = runtime(x, cond)
    for got, want in zip(outputs, expected):
        assert got.dtype == torch.float32 and got.device.type == "cpu"
        torch.testing.assert_close(got, want)
    assert runtime.describe() == "torch fp32 on cpu, 1 thread"
    assert runtime.info is info and runtime.device == torch.device("cpu")


def test_bf16_runtime_runs_under_autocast(ganimation):
    generator, info = ganimation
    runtime = TorchRuntime(generator, info, precision="bf16")
    x, cond = torch.rand(1, 3, SIZE, SIZE), torch.rand(1, 17)
    image = runtime(x, cond)[0]
    assert image.dtype == torch.float32
    with torch.no_grad():
        reference = generator(x, cond)[0]
    assert 0 < (image - reference).abs().max() < 0.1  # reduced precision: close, not bit-equal


@pytest.mark.parametrize("precision,message", [("fp16", "CUDA"), ("int8", "int8"), ("fp8", "precision")])
def test_torch_runtime_rejects_precisions_it_cannot_run(ganimation, precision, message):
    generator, info = ganimation
    with pytest.raises(ValueError, match=message):
        TorchRuntime(generator, info, precision=precision)


def test_open_runtime_loads_a_checkpoint_and_renders_like_the_generator(ganimation, tmp_path):
    generator, info = ganimation
    save_generator(generator, tmp_path / "g.pt", {"image_size": SIZE})
    runtime = open_runtime(str(tmp_path / "g.pt"), runtime="torch")  # auto may choose int8 here
    assert isinstance(runtime, Runtime) and runtime.info.image_size == SIZE
    face = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    aus = np.random.default_rng(1).uniform(0, 5, (3, 17))
    np.testing.assert_array_equal(render_clip(runtime, runtime.info, face, aus).frames,
                                  render_clip(generator, info, face, aus).frames)


def test_open_runtime_rejects_unknown_runtimes():
    with pytest.raises(ValueError, match="runtime must be one of"):
        open_runtime("demo", runtime="tflite")


# ---- auto: candidates from the machine, probe, fallback ----

AVX512_BF16 = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni"})
AVX2_ONLY = frozenset({"avx2", "fma"})
ALL_RUNTIMES = ("torch", "onnxruntime", "openvino", "tensorrt")


def machine(flags, runtimes=ALL_RUNTIMES, device="cpu"):
    return Machine(torch.device(device), "AVX512" if "avx512f" in flags else "AVX2", flags, runtimes)


VNNI_ONLY = frozenset({"avx2", "avx512f", "avx512_vnni"})


def exported(kind, precision):
    info = describe_generator(GANimationGenerator(conv_dim=8, repeat_num=1), image_size=SIZE,
                              config={"export": {"precision": precision}})
    return ModelSource(kind, None, info)


def test_candidates_follow_the_cpu_bf16_only_where_native_int8_only_with_int8_dot_products(ganimation):
    checkpoint = ModelSource("checkpoint", None, ganimation[1])
    native = candidates(checkpoint, machine(AVX512_BF16))
    assert native == [("openvino", "int8"), ("openvino", "bf16"), ("torch", "bf16"), ("openvino", "fp32"),
                      ("torch", "fp32")]
    vnni = candidates(checkpoint, machine(VNNI_ONLY))
    assert vnni == [("openvino", "int8"), ("openvino", "fp32"), ("torch", "fp32")]
    avx2 = candidates(checkpoint, machine(AVX2_ONLY))
    assert avx2 == [("openvino", "fp32"), ("torch", "fp32")]
    without_openvino = candidates(checkpoint, machine(VNNI_ONLY, runtimes=("torch", "onnxruntime")))
    assert without_openvino == [("onnxruntime", "fp32"), ("torch", "fp32")]
    assert candidates(checkpoint, machine(AVX512_BF16, runtimes=("torch",))) == [("torch", "bf16"), ("torch", "fp32")]
    cuda = candidates(checkpoint, machine(AVX2_ONLY, device="cuda"))
    assert cuda[0] == ("tensorrt", "fp16") and ("torch", "fp16") in cuda and cuda[-1] == ("torch", "fp32")


def test_exported_models_are_candidates_only_for_the_engines_that_read_them():
    assert candidates(exported("openvino", "int8"), machine(AVX512_BF16)) == [("openvino", "int8")]
    onnx_fp32 = candidates(exported("onnx", "fp32"), machine(AVX512_BF16))
    assert onnx_fp32 == [("openvino", "bf16"), ("openvino", "fp32"), ("onnxruntime", "fp32")]
    assert candidates(exported("onnx", "int8"), machine(AVX2_ONLY)) == [("onnxruntime", "int8")]  # ORT's own QDQ
    assert candidates(exported("onnx", "fp32"), machine(AVX2_ONLY, runtimes=("torch",))) == []


def test_cpu_flags_come_from_proc_cpuinfo(tmp_path):
    (tmp_path / "cpuinfo").write_text("processor : 0\nflags\t\t: fpu avx2 avx512_bf16\n")
    assert cpu_flags(str(tmp_path / "cpuinfo")) == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_flags(str(tmp_path / "missing")) == frozenset()


def test_missing_runtimes_seam(monkeypatch):
    monkeypatch.setenv(MISSING_ENV, "onnxruntime, openvino")
    assert "onnxruntime" not in installed_engines() and "openvino" not in installed_engines()
    assert installed_engines(missing=())[0] == "torch"


@pytest.fixture
def checkpoint(ganimation, tmp_path):
    generator, _ = ganimation
    save_generator(generator, tmp_path / "g.pt", {"image_size": SIZE})
    return str(tmp_path / "g.pt")


def test_auto_chooses_the_fastest_candidate_that_passes_the_gate(checkpoint):
    runtime = open_runtime(checkpoint, runtime="auto", threads=1)
    decision = runtime.auto
    assert runtime.name in decision.machine.runtimes and "auto (tuned now) on cpu" in decision.describe()
    assert runtime.describe() == f"{runtime.name} {runtime.precision} on cpu, 1 thread (auto, tuned now)"
    tried = {(row.runtime, row.precision): row for row in decision.candidates}
    chosen = tried[(runtime.name, runtime.precision)]
    assert chosen.passed and chosen.fps == max(row.fps for row in tried.values() if row.passed)
    assert ("torch", "fp32") in tried and tried[("torch", "fp32")].figures is None  # the reference
    if runtime.precision in MIN_PSNR_DB:
        assert chosen.figures.psnr_db >= MIN_PSNR_DB[runtime.precision]
    if not decision.machine.native_bf16:
        assert all(precision != "bf16" for _, precision in tried)


def test_auto_falls_back_to_torch_when_the_extras_are_missing(checkpoint, monkeypatch):
    monkeypatch.setenv(MISSING_ENV, "onnxruntime,openvino,tensorrt")
    runtime = open_runtime(checkpoint, runtime="auto", threads=1)
    assert runtime.name == "torch" and "runtimes torch:" in runtime.auto.describe()
    with pytest.raises(RuntimeUnavailableError, match=r"pip install 'ganbatch\[cpu-fast\]'"):
        open_runtime(checkpoint, runtime="onnxruntime")
    with pytest.raises(RuntimeUnavailableError, match=r"ganbatch\[cpu-fast\]"):
        open_runtime(checkpoint, runtime="openvino")


def test_a_model_file_that_one_engine_reads_selects_it_and_a_wrong_runtime_is_one_line(checkpoint, tmp_path):
    pytest.importorskip("openvino", reason="needs the cpu-fast extra (pip install 'ganbatch[cpu-fast]')")
    from ganbatch.export_job import export

    export(checkpoint, str(tmp_path / "ir"), format="openvino", precision="fp32")
    runtime = open_runtime(str(tmp_path / "ir"), threads=1)  # no runtime named: auto finds the one that reads it
    assert runtime.name == "openvino"
    for wrong in ("torch", "onnxruntime"):
        with pytest.raises(RuntimeUnavailableError, match="OpenVINO|openvino") as caught:
            open_runtime(str(tmp_path / "ir"), runtime=wrong)
        assert "\n" not in str(caught.value)


def test_tensorrt_without_a_gpu_says_what_it_needs(checkpoint):
    with pytest.raises((RuntimeUnavailableError, ValueError), match="tensorrt|CUDA"):
        open_runtime(checkpoint, runtime="tensorrt", device="cpu")


@pytest.mark.slow
def test_demo_eval_metrics_barely_move_with_the_auto_runtime_and_int8(tmp_path):
    pytest.importorskip("openvino", reason="needs the cpu-fast extra (pip install 'ganbatch[cpu-fast]')")
    pytest.importorskip("nncf", reason="needs the cpu-fast extra (pip install 'ganbatch[cpu-fast]')")
    from ganbatch.eval import evaluate_model

    reference = evaluate_model("demo", identities=2, runtime="torch")
    auto = evaluate_model("demo", identities=2, runtime="auto")
    assert "(auto, " in auto["settings"]["runtime"]  # tuned now, or earlier in this test session
    from ganbatch.export_job import export

    export("demo", str(tmp_path / "int8_ir"), format="openvino", precision="int8")
    int8 = evaluate_model(str(tmp_path / "int8_ir"), identities=2)  # no runtime named: the IR folder selects it
    assert int8["settings"]["runtime"].startswith("openvino int8")
    for report in (auto, int8):
        assert abs(report["au_mae"] - reference["au_mae"]) <= 0.03, report["settings"]["runtime"]
        assert abs(report["psnr"] - reference["psnr"]) <= 0.3, report["settings"]["runtime"]
    steps = [report["smoothness"]["model"]["monotone_fraction"] for report in (reference, auto)]
    assert abs(steps[1] - steps[0]) <= 0.02, steps  # auto's choice keeps the video as smooth as fp32
