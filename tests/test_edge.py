"""Edge deployment: int8 export (PTQ, QAT), preflight/compile, vectors and the device runner.

The runner runs in two TensorFlow-free virtualenvs that `make edge-venvs` creates (make test
does): numpy + ai-edge-litert, and numpy < 2 + tflite-runtime 2.14 (the Coral board's family).
"""

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, run_module
from deeprx.export import flatbuffer
from deeprx.export import preflight as preflight_lib
from deeprx.export import quantize as quantize_lib
from edge import runner

SCENARIO = ("--channel=awgn", "--modulation=qpsk", "--sir_db=none")
VENVS = {"ai_edge_litert": os.path.join(REPO, ".venv-edge-litert"),
         "tflite_runtime": os.path.join(REPO, ".venv-edge-tflite-runtime")}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny edge-variant DeepRx exported with PTQ and QAT, and test vectors. QPSK on AWGN:
    120 steps give it confident LLRs, so int8-vs-float sign agreement measures quantization,
    not the coin flips of an untrained model."""
    root = tmp_path_factory.mktemp("edge")
    model_dir = str(root / "student")
    result = run_module("deeprx.train", "--flagfile=smoke.flags", *SCENARIO, "--model_variant=edge", "--steps=120",
                        "--noeval", f"--workdir={model_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    paths = {"model_dir": model_dir, "vectors": str(root / "vectors.npz")}
    result = run_module("deeprx.export_vectors", "--preset=tiny", *SCENARIO, "--slots_per_point=4", f"--out={root}")
    assert result.returncode == 0, result.stderr[-3000:]
    for method in ("ptq", "qat", "float"):
        result = run_module("deeprx.quantize", f"--model={model_dir}", "--preset=tiny", *SCENARIO, f"--method={method}",
                            "--calibration_slots=32", "--qat_steps=5", "--qat_batch_size=4", f"--out={root}")
        assert result.returncode == 0, result.stderr[-3000:]
        paths[method] = str(root / f"student_{quantize_lib.FILE_SUFFIXES[method]}.tflite")
        assert f"Wrote {paths[method]} " in result.stdout
    return paths


@pytest.mark.parametrize("method", ["ptq", "qat"])
def test_export_is_full_integer_with_int8_io(exported, method):
    model = flatbuffer.read(exported[method])
    tensors = model["tensors"].values()
    assert {t["type"] for t in tensors} == {"INT8", "INT32"}
    bias_inputs = {op["inputs"][2] for op in model["operators"]
                   if op["op"] in ("CONV_2D", "DEPTHWISE_CONV_2D") and len(op["inputs"]) > 2}
    for tensor in tensors:
        if tensor["type"] == "INT32":  # only constant biases
            assert tensor["constant"] and tensor["index"] in bias_inputs, tensor["name"]
    (model_input,), (model_output,) = model["inputs"], model["outputs"]
    assert model_input["type"] == model_output["type"] == "INT8"
    assert model_input["shape"] == [1, 14, 24, 10] and model_output["shape"] == [1, 14, 24, 2]
    with open(exported[method].replace(".tflite", ".json")) as f:
        meta = json.load(f)
    assert meta["method"] == method and meta["input"]["scale"] == model_input["scale"]
    assert meta["grid_shape"] == [14, 24] and meta["modulation"] == "qpsk" and meta["flops_per_slot"] > 0
    assert meta["converter"].startswith("tensorflow ")


def test_the_export_graph_has_no_depthwise_conv_of_depth_multiplier_above_1(exported):
    """XNNPACK's int8 depthwise conv is 25x slower with a multiplier of 2 (BUILD_NOTES.md):
    the export tiles the input instead, and the .tflite keeps the trained model's function."""
    model = flatbuffer.read(exported["ptq"])
    ops = [op["op"] for op in model["operators"]]
    depthwise = [op for op in model["operators"] if op["op"] == "DEPTHWISE_CONV_2D"]
    assert depthwise and ops.count("CONCATENATION") == len(depthwise)
    for op in depthwise:  # kernel [1, 3, 3, C] with C = the input's channels: multiplier 1
        assert model["tensors"][op["inputs"][1]]["shape"][3] == model["tensors"][op["inputs"][0]]["shape"][3]


def test_qat_export_has_the_operators_and_ranges_of_the_ptq_export(exported):
    """QAT trains the graph the converter makes of the float model: the BN and ReLU after each
    unit's first 1x1 conv merged into that conv (model.expanded), as PTQ's converter merges
    them, so the quantizers QAT fits are those of the int8 model (unmerged, the edge-cpu
    student's QAT export had 22 operators more, 11 MUL + ADD pairs, each an extra rounding).
    Its activation ranges start from the calibration slots' (quantize.calibrate_ranges), not
    from tfmot's -6..6, which a short fine-tune barely moves: the output's scale is PTQ's."""
    ptq, qat = (flatbuffer.read(exported[method]) for method in ("ptq", "qat"))
    assert "MUL" in [op["op"] for op in ptq["operators"]]
    assert [op["op"] for op in qat["operators"]] == [op["op"] for op in ptq["operators"]]
    (ptq_output,), (qat_output,) = ptq["outputs"], qat["outputs"]
    assert 0.8 < qat_output["scale"] / ptq_output["scale"] < 1.25, (qat_output["scale"], ptq_output["scale"])


@pytest.mark.parametrize("method, agreement", [("ptq", 0.95), ("qat", 0.95), ("float", 0.999)])
def test_llr_signs_of_each_export_agree_with_the_float_model(exported, method, agreement):
    import tf_keras as keras
    vectors = np.load(exported["vectors"])
    inputs = vectors["inputs"].reshape(-1, *vectors["inputs"].shape[2:])
    float_model = keras.models.load_model(os.path.join(exported["model_dir"], "model.keras"), compile=False)
    float_bits = float_model.predict(inputs, verbose=0) > 0
    interpreter, _ = runner.load_interpreter(exported[method])
    exported_model = runner.Model(interpreter)
    assert exported_model.dtype == (np.float32 if method == "float" else np.int8)
    exported_bits = np.stack([exported_model.bit_decisions(slot) for slot in inputs])
    mask = np.broadcast_to(vectors["data_mask"].astype(bool)[None, ..., None], float_bits.shape)
    assert np.mean(float_bits[mask] == exported_bits[mask]) >= agreement


def test_calibration_from_a_sinr_up_narrows_the_input_range_and_is_recorded(exported, tmp_path):
    """The default calibrates from 10 dB (tiny grid: 12 and 20 dB); -100 takes the whole grid."""
    result = run_module("deeprx.quantize", f"--model={exported['model_dir']}", "--preset=tiny", *SCENARIO,
                        "--calibration_slots=32", "--calibration_min_sinr_db=-100", f"--out={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "32 calibration slots over SINR -4..20 dB" in result.stdout
    with open(tmp_path / "student_int8.json") as f:
        whole = json.load(f)
    with open(exported["ptq"].replace(".tflite", ".json")) as f:
        high = json.load(f)
    assert high["calibration_sinr_db"] == [12.0, 20.0] and whole["calibration_sinr_db"] == [-4.0, 20.0]
    # Less noise in the calibration slots: a finer input scale for the same slots' count.
    assert high["input"]["scale"] < 0.8 * whole["input"]["scale"]
    result = run_module("deeprx.quantize", f"--model={exported['model_dir']}", "--preset=tiny", *SCENARIO,
                        "--calibration_min_sinr_db=30", f"--out={tmp_path}")
    assert result.returncode == 2 and "calibration_min_sinr_db 30 is above the whole SINR grid" in result.stderr


def test_qat_fine_tunes_on_the_calibration_sinr_range(monkeypatch):
    """QAT's fine-tune draws its slots' SINR from the calibration grid's range, not the scenario's."""
    from deeprx.network import training
    seen = {}

    class Trainer:
        def __init__(self, model, scenario, train_config, workdir, log):
            seen["config"] = train_config

        def fit(self):
            return None

    monkeypatch.setattr(training, "Trainer", Trainer)
    quantize_lib.fine_tune(None, None, quantize_lib.ExportConfig(method="qat", qat_steps=3), (12.0, 20.0))
    assert seen["config"].sinr_sampling == "sinr" and seen["config"].train_sinr_db == (12.0, 20.0)
    assert seen["config"].steps == 3


def test_vectors_file_format(exported):
    vectors = np.load(exported["vectors"], allow_pickle=False)
    meta = json.loads(str(vectors["meta"]))
    assert vectors["inputs"].shape == (4, 4, 14, 24, 10) and vectors["inputs"].dtype == np.float32
    assert vectors["bits"].shape == (4, 4, 14, 24, 2) and vectors["bits"].dtype == np.uint8
    assert vectors["data_mask"].shape == (14, 24) and list(vectors["sinr_db"]) == [-4, 4, 12, 20]
    assert meta["preset"] == "tiny" and meta["slots_per_point"] == 4 and meta["num_dmrs"] == 1


def _paper_variant_tflite(path):
    """An int8 paper-variant (unequal dilations) DeepRx, untrained: its structure is what counts."""
    from deeprx.core import config as config_lib
    from deeprx.export import int8
    from deeprx.network import model as model_lib
    scenario = config_lib.get_preset("tiny").scenario
    model = model_lib.build(model_lib.DeepRxConfig(width_multiplier=0.125), scenario, batch_size=1)
    rng = np.random.RandomState(0)
    representative = [rng.normal(size=(1, 14, 24, 10)).astype(np.float32) for _ in range(4)]
    with open(path, "wb") as f:
        f.write(int8.convert(model, representative))


def test_preflight_maps_the_edge_variant_and_cuts_the_paper_variant(exported, tmp_path):
    edge = preflight_lib.preflight(exported["ptq"])
    assert edge["cut_at"] is None and edge["cpu"] == 0 and edge["mapped"] == len(edge["operators"])
    paper_path = str(tmp_path / "paper.tflite")
    _paper_variant_tflite(paper_path)
    paper = preflight_lib.preflight(paper_path)
    cut = paper["operators"][paper["cut_at"]]
    assert cut["op"] == "DEPTHWISE_CONV_2D" and "block3" in cut["layer"] and "unequal dilations 2x3" in cut["status"]
    assert all(row["status"] == preflight_lib.AFTER_CUT for row in paper["operators"][paper["cut_at"] + 1:])
    assert 0 < paper["mapped"] < len(paper["operators"])
    named = {row["layer"].split("/")[1] for row in paper["would_not_map"]}
    assert any("block6" in name for name in named) and not any("block1_" in name for name in named)


def test_compile_without_the_compiler_gives_the_preflight(exported):
    if shutil.which("edgetpu_compiler"):
        pytest.skip("edgetpu_compiler is installed here: this test is for machines without it")
    result = run_module("deeprx.compile", f"--model={exported['ptq']}")
    assert result.returncode == 0, result.stderr
    assert "edgetpu_compiler is not on PATH: preflight only" in result.stdout
    assert "Every operator should map: no cut." in result.stdout
    with open(exported["ptq"].replace(".tflite", ".preflight.json")) as f:
        assert json.load(f)["compiler"] is None
    strict = run_module("deeprx.compile", f"--model={exported['ptq']}", "--require_compiler")
    assert strict.returncode == 1 and "--require_compiler" in strict.stderr


COMPILER_LOG = """Edge TPU Compiler version 16.0.384591198
Input: student_int8.tflite
Output: student_int8_edgetpu.tflite

Operator                       Count      Status

CONV_2D                        27         Mapped to Edge TPU
CONV_2D                        1          More than one subgraph is not supported
DEPTHWISE_CONV_2D              22         Mapped to Edge TPU
ADD                            23         Mapped to Edge TPU
"""


def test_compiler_log_is_parsed_and_compared_with_the_prediction():
    from deeprx.export import edgetpu_compiler as compile_lib
    table = compile_lib.parse_compiler_log(COMPILER_LOG)
    assert table["CONV_2D"] == {"count": 28, "mapped": 27, "statuses": {
        "Mapped to Edge TPU": 27, "More than one subgraph is not supported": 1}}
    predicted = {"CONV_2D": {"count": 28, "mapped": 28}, "DEPTHWISE_CONV_2D": {"count": 22, "mapped": 22},
                 "ADD": {"count": 23, "mapped": 23}}
    rows = {row["op"]: row for row in compile_lib.compare(predicted, table)}
    assert not rows["CONV_2D"]["agree"] and rows["DEPTHWISE_CONV_2D"]["agree"] and rows["ADD"]["agree"]


# ------------------------------------------------------------------- the device-side runner

def _bundle(tmp_path):
    """What BUILD_NOTES.md copies to a board: the runner and edge/ber.py, nothing else."""
    bundle = tmp_path / "bundle"
    for name in runner.BUNDLE:
        os.makedirs(bundle / os.path.dirname(name), exist_ok=True)
        shutil.copy(os.path.join(REPO, name), bundle / name)
    return str(bundle)


def _venv_python(backend):
    """The Python of a TensorFlow-free venv; the test is skipped, saying why, without it
    (`make test`, and so CI, builds both first)."""
    python = os.path.join(VENVS[backend], "bin", "python")
    if not os.path.exists(python):
        pytest.skip(f"{VENVS[backend]} is missing: `make edge-venvs` builds it (make test does)")
    return python


def _host_rows(model_path, vectors_path, kernels):
    """BER rows of the .tflite on the vectors with TensorFlow's own interpreter."""
    import tensorflow as tf
    options = {}
    if kernels == "reference":
        options["experimental_op_resolver_type"] = tf.lite.experimental.OpResolverType.BUILTIN_REF
    interpreter = tf.lite.Interpreter(model_path=model_path, **options)
    interpreter.allocate_tensors()
    model = runner.Model(interpreter)
    vectors = runner.load_vectors(vectors_path, model)
    return runner.ber_on_vectors(model, vectors, "x")


# Default kernels match exactly within one runtime family (LiteRT = TensorFlow 2.21's
# interpreter); across versions only the reference kernels do (tflite-runtime 2.14's
# optimized int8 kernels round differently: BUILD_NOTES.md).
@pytest.mark.parametrize("backend, kernels", [("ai_edge_litert", "default"), ("ai_edge_litert", "reference"),
                                              ("tflite_runtime", "reference")])
def test_runner_in_a_tensorflow_free_venv_matches_the_host_evaluation(exported, tmp_path, backend, kernels):
    python = _venv_python(backend)
    no_tf = subprocess.run([python, "-c", "import tensorflow"], capture_output=True, text=True)
    assert no_tf.returncode != 0 and "No module named 'tensorflow'" in no_tf.stderr
    out = tmp_path / "device"
    result = subprocess.run([python, "-m", "edge.runner", f"--model={exported['ptq']}", f"--kernels={kernels}",
                             f"--vectors={exported['vectors']}", "--count=20", "--warmup=2", f"--out={out}",
                             "--energy_source=rated:2.5", "--base_seconds=0.1", "--batches=1,3", "--threads=1"],
                            cwd=_bundle(tmp_path), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(str(out / "runner.json")) as f:
        report = json.load(f)
    assert report["backend"].startswith(backend) and report["kernels"] == kernels and report["timing"]["count"] == 20
    assert 0 < report["timing"]["busy_cores"] < 1.5  # one interpreter thread: at most about one core busy
    throughput = report["throughput"]  # --batches: 3 slots per invoke after 1, about --count slots each
    assert [(row["batch"], row["invokes"]) for row in throughput["by_batch"]] == [(1, 20), (3, 6)]
    for row in throughput["by_batch"]:
        assert row["slots_per_s"] == pytest.approx(row["batch"] * 1e3 / row["ms_per_invoke"], rel=1e-3)
    assert throughput["slots_per_s"] == max(row["slots_per_s"] for row in throughput["by_batch"])
    energy = report["energy"]  # a rated power: estimated, no base, 2.5 W x the 20 invokes' time
    assert energy["source"] == "rated power 2.5 W x measured time (estimated)" and energy["measured"] is False
    assert energy["inferences"] == 20 and energy["base_power_w"] == 0
    assert energy["joules_per_inference"] == pytest.approx(2.5 * energy["run_seconds"] / 20)
    with open(str(out / "ber.csv")) as f:
        device = [line.split(",") for line in f.read().splitlines()[1:]]
    host = _host_rows(exported["ptq"], exported["vectors"], kernels)
    assert [(float(d[1]), int(d[3]), int(d[4])) for d in device] == \
        [(h["sinr_db"], h["bit_errors"], h["bits"]) for h in host]
    assert any(h["bit_errors"] for h in host)


def test_runner_measures_energy_from_a_live_hwmon_sensor(exported, tmp_path):
    """A sysfs-like hwmon tree standing for the board's INA226: a test thread sets its power
    from the runner's CPU use (1 W idle, +3 W per busy core, from /proc/PID/stat over the last
    100 ms). The runner samples it through its quiet base windows and its run: the base comes
    back as about 1 W and the relative power as about 3 W x the run's busy cores. The follower
    lags the runner by its window (more when the machine is busy), so the run is long (3,000
    invokes, about 2 s) for that lag to be a small part of it."""
    import threading
    tree = tmp_path / "hwmon2"
    tree.mkdir()
    power_file = tree / "power1_input"

    def set_watts(watts):
        with open(str(power_file) + ".tmp", "w") as f:
            f.write("%d\n" % round(watts * 1e6))
        os.replace(str(power_file) + ".tmp", str(power_file))

    set_watts(1.0)
    out = tmp_path / "device"
    process = subprocess.Popen([_venv_python("ai_edge_litert"), "-m", "edge.runner", f"--model={exported['ptq']}",
                                "--count=3000", "--warmup=2", "--threads=1", f"--energy_source=hwmon:{tree}@200",
                                "--base_seconds=1", f"--out={out}"], cwd=_bundle(tmp_path), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    tick = os.sysconf("SC_CLK_TCK")

    def follow_cpu():
        history = []
        while process.poll() is None:
            try:
                with open(f"/proc/{process.pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                break
            history = (history + [(time.time(), (int(fields[11]) + int(fields[12])) / tick)])[-6:]
            if len(history) > 1:
                (t0, c0), (t1, c1) = history[0], history[-1]
                set_watts(1.0 + 3.0 * (c1 - c0) / (t1 - t0))
            time.sleep(0.02)

    follower = threading.Thread(target=follow_cpu)
    follower.start()
    _, stderr = process.communicate(timeout=300)
    follower.join()
    assert process.returncode == 0, stderr[-3000:]
    with open(str(out / "runner.json")) as f:
        energy = json.load(f)["energy"]
    assert energy["source"] == f"hwmon sensor {power_file}, sampled at 200 Hz (measured)" and energy["measured"]
    assert energy["base_power_w"] == pytest.approx(1.0, abs=0.3)
    assert energy["relative_power_w"] == pytest.approx(3.0 * energy["busy_cores"], rel=0.35), energy
    assert energy["relative_energy_j"] > 0 and "warning" not in energy


def _vermin(*files):
    vermin = os.path.join(os.path.dirname(sys.executable), "vermin")
    return subprocess.run([vermin, "-t=3.7-", "--violations", "--no-tips", *files], capture_output=True, text=True)


def test_runner_needs_no_python_newer_than_3_7(tmp_path):
    result = _vermin(*[os.path.join(REPO, name) for name in runner.BUNDLE])
    assert result.returncode == 0 and "Minimum required versions: 3." in result.stdout, result.stdout + result.stderr
    newer = tmp_path / "walrus.py"
    newer.write_text("import math\nif (n := math.prod([2, 3])):\n    print(n)\n")
    assert _vermin(str(newer)).returncode != 0  # the check does catch 3.8 code


def _runner_error(tmp_path, *args, backend="ai_edge_litert"):
    result = subprocess.run([_venv_python(backend), "-m", "edge.runner", *args],
                            cwd=_bundle(tmp_path), capture_output=True, text=True, timeout=120)
    # The interpreter itself may log "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("INFO: ")]
    assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("backend", sorted(VENVS))
def test_a_damaged_model_is_one_line_and_exit_1_in_every_runtime(exported, tmp_path, backend):
    """tflite-runtime 2.14 segfaults on a truncated model if it ever sees one (issue 16)."""
    with open(exported["ptq"], "rb") as f:
        data = f.read()
    rng = np.random.RandomState(0)
    damaged = {"head": data[:5000], "third": data[: len(data) // 3],
               "noise": data[:8] + rng.randint(0, 256, len(data) - 8).astype(np.uint8).tobytes()}
    for name, content in damaged.items():
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(content)
        assert "is not a whole TFLite model" in _runner_error(tmp_path, f"--model={path}", backend=backend), name


def test_runner_errors_are_one_line(exported, tmp_path):
    wrong_grid = str(tmp_path / "wrong.npz")
    vectors = dict(np.load(exported["vectors"]))
    vectors["inputs"] = vectors["inputs"][:, :, :, :12]
    np.savez(wrong_grid, **vectors)
    assert "the model takes" in _runner_error(tmp_path, f"--model={exported['ptq']}", f"--vectors={wrong_grid}")
    compiled = str(tmp_path / "student_int8_edgetpu.tflite")
    shutil.copy(exported["ptq"], compiled)
    assert "no Edge TPU was found" in _runner_error(tmp_path, f"--model={compiled}")
    assert "unknown power source 'joulemeter'" in _runner_error(tmp_path, f"--model={exported['ptq']}",
                                                                "--energy_source=joulemeter")
    malformed = tmp_path / "meter.csv"
    malformed.write_text("timestamp,watts\n1700000000,2.0\n1700000001,lots\n")
    assert "line 3: expected `timestamp,watts`" in _runner_error(tmp_path, f"--model={exported['ptq']}",
                                                                 f"--energy_source=meter:{malformed}")


def test_the_bench_evaluates_an_int8_tflite_beside_its_float_model(exported, tmp_path):
    out = str(tmp_path / "eval")
    result = run_module("deeprx.evaluate", "--preset=tiny", *SCENARIO,
                        f"--receivers={exported['model_dir']},{exported['ptq']}", f"--out={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    float_gm, int8_gm = summary["student"]["gm_ber"], summary["student_int8"]["gm_ber"]
    assert float_gm < -0.5 and abs(int8_gm - float_gm) < 0.25, (float_gm, int8_gm)


def test_a_model_evaluates_on_another_prb_count_but_not_another_scenario(exported, tmp_path):
    """Fully convolutional: rebuilt on the wider grid with its trained weights."""
    wider = run_module("deeprx.evaluate", "--preset=tiny", *SCENARIO, "--num_prb=3",
                       f"--receivers={exported['model_dir']}", f"--out={tmp_path}/wider")
    assert wider.returncode == 0, wider.stderr[-3000:]
    with open(f"{tmp_path}/wider/summary.json") as f:
        assert json.load(f)["student"]["gm_ber"] < -0.5
    other = run_module("deeprx.evaluate", "--preset=tiny", *SCENARIO, "--num_prb=3", "--num_dmrs=2",
                       f"--receivers={exported['model_dir']}", f"--out={tmp_path}/other")
    assert other.returncode != 0 and "trained on another scenario (dmrs differ)" in other.stderr
