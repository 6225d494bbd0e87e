"""robo firmware: the generated C cross-compiled for Cortex-M4F and run in QEMU (CI runs these)."""

import json
import shutil

import onnx
import pytest
import torch
from test_codegen_attention_ops import TinyAttention, export

from robo.cli import main
from robo.codegen.c_emitter import generate_c, generate_from_file
from robo.codegen.firmware import build, run_qemu
from robo.codegen.verify import check_policy_run
from robo.export.onnx_export import export_onnx
from robo.nets.policy import MLPPolicy, raptor_student
from sim.quadrotor.observation import quadrotor_student_meta

torch.set_num_threads(1)
pytestmark = pytest.mark.qemu


def exported_module(tmp, net):
    torch.manual_seed(0)
    export_onnx(net, quadrotor_student_meta(), tmp / "policy.onnx", steps=50)
    generate_from_file(tmp / "policy.onnx", tmp / "c")
    return tmp / "c"


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    return exported_module(tmp_path_factory.mktemp("student"), raptor_student())


def test_student_on_cortex_m4f_meets_the_targets(student):
    info = build(student, "qemu-mps2-an386", steps=200)
    fp = info["footprint"]
    assert not fp["uses_heap"] and fp["heap_symbols"] == []
    assert fp["flash_bytes"] <= 12 * 1024 and fp["sections"]["rodata"] >= 2068 * 4
    assert fp["ram_bytes"] <= 1024
    result = check_policy_run(student, run_qemu(student), tol=1e-5)
    assert result["exit_code"] == 0 and result["selftest_rc"] == 0
    assert result["max_abs_error_vs_onnxruntime"] <= 1e-5 and result["status_matches"]
    # The calibration loop (known length) agrees with the -icount arithmetic.
    assert result["ticks_per_instruction"] == pytest.approx(result["ticks_per_instruction_nominal"], rel=0.01)
    assert 2 * 1952 < result["instructions_per_step"] <= 8000


def test_mlp_3x64_in_qemu_through_the_cli(tmp_path, capsys):
    module = exported_module(tmp_path, MLPPolicy(22, 4, hidden=(64, 64, 64)))
    assert main(["firmware", "build", str(module), "--steps", "100"]) == 0
    assert main(["firmware", "run", str(module), "--json", str(tmp_path / "run.json")]) == 0
    out = capsys.readouterr().out
    assert "self-test passed" in out and "instructions per step" in out
    saved = json.loads((tmp_path / "run.json").read_text())
    assert saved["max_abs_error_vs_onnxruntime"] <= 1e-5
    assert saved["instructions_per_step"] > 2 * 9856  # at least a load and a MAC per multiply-add


def test_attention_block_on_cortex_m4f(tmp_path):
    """Softmax, LayerNormalization and batched MatMul of two activations on the target."""
    torch.manual_seed(0)
    path, card = export(tmp_path, TinyAttention())
    manifest = generate_c(onnx.load(path), card, tmp_path / "c")
    assert {"Softmax", "LayerNormalization", "MatMul"} <= set(manifest["ops"])
    build(tmp_path / "c", "qemu-mps2-an386", steps=50)
    result = check_policy_run(tmp_path / "c", run_qemu(tmp_path / "c"), tol=1e-5)
    assert result["exit_code"] == 0 and result["selftest_rc"] == 0
    assert result["max_abs_error_vs_onnxruntime"] <= 1e-5 and result["status_matches"]


def test_stm32f405_build_runs_on_the_emulated_f405(student):
    info = build(student, "stm32f405", steps=50)
    assert info["board"] == "stm32f405"
    result = check_policy_run(student, run_qemu(student, "stm32f405"), tol=1e-5)
    assert result["selftest_rc"] == 0


def test_failing_self_test_on_the_target_is_an_error(tmp_path, student, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(student, broken, ignore=shutil.ignore_patterns("build"))
    src = (broken / "policy_selftest.c").read_text()
    head, tail = src.split("GOLDEN_ACT[GOLDEN_STEPS * POLICY_ACT_SIZE] = {\n    ", 1)
    _, rest = tail.split(",", 1)
    (broken / "policy_selftest.c").write_text(
        head + "GOLDEN_ACT[GOLDEN_STEPS * POLICY_ACT_SIZE] = {\n    " + "0.123f" + "," + rest
    )
    assert main(["firmware", "build", str(broken), "--steps", "10"]) == 0
    assert main(["firmware", "run", str(broken)]) == 1
    assert "self-test failed on the target (rc=1" in capsys.readouterr().err


def test_missing_toolchain_says_how_to_install(student, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["firmware", "build", str(student)]) == 1
    assert "bash .ci/setup" in capsys.readouterr().err


def test_flash_dry_run_and_no_probe(student, capsys):
    build(student, "stm32f405", steps=10)
    assert (
        main(["firmware", "flash", str(student), "--board", "stm32f405", "--probe", "openocd", "--dry-run"])
        == 0
    )
    out = capsys.readouterr().out
    assert "openocd -f interface/stlink.cfg -f target/stm32f4x.cfg -c 'program " in out
    assert "build/stm32f405/app.elf verify reset exit'" in out
    assert main(["firmware", "flash", str(student), "--board", "stm32f405", "--probe", "pyocd"]) == 1
    assert "no debug probe found" in capsys.readouterr().err


def test_any_c_module_with_its_own_main_runs_in_qemu(tmp_path, capsys):
    """The path other generated C (e.g. a safety filter) takes: module.json kind "app"."""
    (tmp_path / "filter.c").write_text(
        "float clamp01(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }\n"
    )
    (tmp_path / "driver.c").write_text(
        '#include <stdio.h>\n#include "robo_fw.h"\nfloat clamp01(float x);\n'
        "int main(void) { volatile float v = 2.5f; uint64_t t0; float r; robo_timer_start();\n"
        "  t0 = robo_timer_ticks(); r = clamp01(v); t0 = robo_timer_ticks() - t0;\n"
        '  printf("ROBO result=%g ticks=%lu\\n", (double)r, (unsigned long)t0); return r == 1.0f ? 0 : 5; }\n'
    )
    (tmp_path / "module.json").write_text(
        json.dumps(
            {
                "name": "filter",
                "kind": "app",
                "sources": ["filter.c", "driver.c"],
                "footprint_sources": ["filter.c"],
            }
        )
    )
    info = build(tmp_path, "qemu-mps2-an386")
    assert info["footprint"]["flash_bytes"] > 0 and not info["footprint"]["uses_heap"]
    result = run_qemu(tmp_path)
    assert result["exit_code"] == 0 and result["values"]["result"] == "1"
    assert main(["firmware", "run", str(tmp_path)]) == 0
    assert "ROBO result=1" in capsys.readouterr().out


@pytest.mark.parametrize("opt, steps", [("-O2; touch {tmp}/PWNED #", 10), ("O2", 10), ("-O2", 0)])
def test_shell_text_in_opt_and_zero_steps_are_refused_before_writing(student, tmp_path, opt, steps, capsys):
    before = {p: p.read_bytes() for p in student.rglob("*") if p.is_file()}
    # an absolute path: make runs the recipe's shell in the firmware folder, not here
    opt = opt.format(tmp=tmp_path)
    assert main(["firmware", "build", str(student), f"--opt={opt}", "--steps", str(steps)]) != 0
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert ("--opt" in last) if steps else ("--steps" in last), last
    assert before == {p: p.read_bytes() for p in student.rglob("*") if p.is_file()}
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("manifest, message", [
    ("{not json", "not valid JSON"),
    ('{"name": "policy", "sources": ["policy.c; touch {tmp}/PWNED #"]}', "sources must list C or assembly"),
    ('{"name": "x y", "sources": ["policy.c"]}', "name must be a C identifier"),
    ('{"name": "policy", "sources": []}', "sources lists no file"),
])
def test_a_tampered_module_json_is_one_line_and_builds_nothing(student, tmp_path, manifest, message, capsys):
    module = tmp_path / "module"
    shutil.copytree(student, module, ignore=shutil.ignore_patterns("build"))
    (module / "module.json").write_text(manifest.replace("{tmp}", str(tmp_path)))
    assert main(["firmware", "build", str(module)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (module / "build").exists() and not (tmp_path / "PWNED").exists()
