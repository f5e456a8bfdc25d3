"""Energy: per-layer costs, the metrics, the four-step method and its power sources, the
energy CLI end to end, the kernel-level predictor, and one-line errors for bad input."""

import json
import os
import time

import pytest

from conftest import run_module
from deeprx.costs import estimates as costs
from deeprx.network import model as model_lib
from edge import power


# ---------------------------------------------------------------------- costs and metrics

def test_block_flops_match_a_hand_count(tiny):
    config = model_lib.DeepRxConfig(widths=(4, 8), dilations=((1, 1), (2, 3)), stem_width=4, depth_multiplier=2)
    h, w = tiny.grid_shape
    p, c_in, m = h * w, tiny.num_input_channels, tiny.bits_per_symbol
    stem = 2 * p * 9 * c_in * 4 + p * 4
    def unit(cin, cout):  # BN 2 per element, ReLU 1, depthwise 3x3 (multiplier 2, no bias), pointwise + bias
        return 2 * p * cin + p * cin + 2 * p * 9 * 2 * cin + (2 * p * 2 * cin * cout + p * cout)
    block1 = unit(4, 4) + unit(4, 4) + p * 4
    block2 = (2 * p * 4 * 8 + p * 8) + unit(4, 8) + unit(8, 8) + p * 8  # 1x1 projection 4 -> 8 first
    head = 2 * p * 8 + p * 8 + 2 * p * 8 * m + p * m
    blocks = costs.by_block(costs.layer_costs(config, tiny))
    assert [(b["block"], b["flops"]) for b in blocks] == [("stem", stem), ("block1", block1), ("block2", block2),
                                                          ("head", head)]
    assert model_lib.flops_per_slot(config, tiny) == stem + block1 + block2 + head  # the model's own count
    int8 = costs.by_block(costs.layer_costs(config, tiny, "int8"))
    assert int8[0]["activation_bytes"] * 4 == blocks[0]["activation_bytes"] == 4 * p * (c_in + 4)
    assert blocks[0]["macs"] == p * 9 * c_in * 4


def test_metric0_and_metric1_against_hand_arithmetic():
    coral = costs.find_processor(costs.read_processors(), "Coral Edge TPU")
    assert coral.metric0_j(8e9) == pytest.approx(8e9 * 2 / 4e12)  # 4 mJ: 8 GOPs at 0.5 W per TOPS
    # kappa N f^3 D with D = W / (S N f): 1e-27 * 4 * (2e9)^3 * 1e10 / (16 * 4 * 2e9)
    assert costs.metric1_j(1e10, kappa=1e-27, cores=4, clock_hz=2e9, flops_per_clock=16) == pytest.approx(
        1e-27 * 4 * 8e27 * (1e10 / (16 * 4 * 2e9)))
    with pytest.raises(ValueError, match="positive kappa"):
        costs.metric1_j(1e10, kappa=0, cores=4, clock_hz=2e9, flops_per_clock=16)


def test_lahmer_fit_recovers_known_coefficients(tiny):
    rows = costs.layer_costs(model_lib.DeepRxConfig(width_multiplier=0.125), tiny)
    a, b = 3e-9, 2e-11
    energies = [row["macs"] * (a / row["input_features"] + b) if row["kind"] in ("conv", "depthwise") else 1.0
                for row in rows]
    fitted = costs.fit_lahmer(rows, energies)
    assert fitted == pytest.approx((a, b), rel=1e-6)
    assert costs.metric2_j(rows, *fitted) == pytest.approx(sum(e for e, r in zip(energies, rows)
                                                               if r["kind"] in ("conv", "depthwise")))


def test_break_even_is_training_energy_over_inference_energy():
    result = costs.amortization(training_j_per_step=3.0, training_steps=1000, inference_j=0.5e-3, rate_per_s=50.0)
    assert result["training_j"] == 3000.0 and result["break_even_inferences"] == pytest.approx(6e6)
    assert result["break_even_seconds"] == pytest.approx(1.2e5) and result["break_even_days"] == pytest.approx(1.2e5 / 86400)
    for bad in ({"inference_j": 0.0, "rate_per_s": 1.0}, {"inference_j": 1e-3, "rate_per_s": 0.0}):
        with pytest.raises(ValueError, match="positive"):
            costs.amortization(training_j_per_step=1.0, training_steps=1, **bad)
    # The paper's own inputs give 2.5e9 inferences (about 72 days at 400/s), not its claimed 1e5.
    paper = costs.paper_break_even()
    assert paper["break_even_inferences"] / paper["claimed_break_even_inferences"] > 1e4 and paper["break_even_days"] > 60


# ------------------------------------------------------------------ the four steps, sources

class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_four_step_on_a_known_trace_gives_the_exact_relative_energy():
    clock = FakeClock()
    # 10 W at rest; 25 W from t = 1005 (the run) to 1007; 10 W again after.
    trace = [(1000.0, 10.0), (1002.5, 10.0), (1005.0, 25.0), (1006.0, 25.0), (1007.0, 10.0), (1100.0, 10.0)]
    source = power.TraceSource(trace, "synthetic", clock=clock)

    def workload():
        clock.sleep(2.0)
        return "done"
    result, value = power.four_step(source, workload, inferences=100, base_seconds=5.0, windows=5, sleep=clock.sleep)
    assert value == "done"
    assert result["base_power_w"] == 10.0 and result["absolute_power_w"] == 25.0
    assert result["relative_energy_j"] == 30.0 and result["joules_per_inference"] == 0.3
    assert result["source"] == "synthetic (measured)" and result["measured"] is True


def test_rated_power_is_an_estimate_without_a_base():
    result, _ = power.four_step(power.RatedSource(2.0), lambda: sum(range(10000)), inferences=10, base_seconds=1.0)
    assert result["source"] == "rated power 2 W x measured time (estimated)" and result["measured"] is False
    assert result["base_power_w"] == 0 and result["joules_per_inference"] == pytest.approx(
        2.0 * result["run_seconds"] / 10)


def _spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_cpu_time_bills_the_busy_cores_not_the_wall_time():
    """Sleeping costs wall time but no CPU time; spinning costs both (one thread: one core)."""
    source = power.CpuTimeSource(3.0, "a test's power")
    assert source.label() == "process CPU time x 3 W per busy core (a test's power) (estimated)"
    asleep, _ = power.four_step(source, lambda: time.sleep(0.3), inferences=3, base_seconds=0.01)
    busy, _ = power.four_step(source, lambda: _spin(0.3), inferences=3, base_seconds=0.01)
    assert asleep["run_seconds"] >= 0.3 and asleep["busy_cores"] < 0.2 and asleep["joules_per_inference"] < 0.06
    assert busy["busy_cores"] > 0.25 and busy["cpu_seconds"] > 0.075  # even on a machine busy with other work
    # the source reads the process's CPU time inside four_step's own reading: equal but for what other threads
    # of this process (xdist's, TensorFlow's) ran between the two readings
    billed_cpu_seconds = busy["joules_per_inference"] * 3 / 3.0
    assert busy["cpu_seconds"] - 0.01 < billed_cpu_seconds <= busy["cpu_seconds"] + 1e-9
    assert busy["cpu_ms_per_inference"] == pytest.approx(1e3 * busy["cpu_seconds"] / 3)
    assert busy["base_power_w"] == 0 and busy["measured"] is False
    with pytest.raises(power.PowerError, match="cputime:W"):
        power.parse_source("cputime")  # the device has no TDP table


def test_host_cputime_takes_codecarbons_tdp_per_core_and_codecarbon_names_its_tdp():
    from deeprx.costs import power_sources
    _, cpu = power_sources.codecarbon_tracker()
    source = power_sources.parse_source("cputime")
    assert source.watts == pytest.approx(cpu._tdp / cpu._cpu_count)
    assert f"CodeCarbon's TDP {cpu._tdp} W" in source.label()
    assert power_sources.parse_source("cputime:1.5").watts == 1.5
    if cpu._mode != "intel_rapl":
        assert f"TDP {cpu._tdp} W assumed" in power_sources.parse_source("codecarbon").label()


def test_rapl_counters_wrap_around(tmp_path):
    zone = tmp_path / "intel-rapl:0"
    os.makedirs(zone / "intel-rapl:0:0")  # a subzone: not counted twice
    (zone / "max_energy_range_uj").write_text("1000000\n")
    (zone / "energy_uj").write_text("999000\n")
    source = power.RaplSource(str(tmp_path))

    def workload():
        (zone / "energy_uj").write_text("4000\n")  # wrapped: 1001 + 4000 uJ later
    seconds, joules, _ = source.measure(workload)
    assert joules == pytest.approx(5001e-6) and seconds > 0
    with pytest.raises(power.PowerError, match="no RAPL counters"):
        power.RaplSource(str(tmp_path / "none"))


def test_meter_csv_is_integrated_and_bad_traces_fail(tmp_path):
    meter = tmp_path / "meter.csv"
    meter.write_text("timestamp,watts\n100,3.0\n101,5.0\n103,3.0\n")
    assert power.integrate(power.read_meter_csv(str(meter)), 100.5, 102.0) == pytest.approx(0.5 * 3 + 1 * 5)
    with pytest.raises(power.PowerError, match="no sample in the window"):
        power.integrate(power.read_meter_csv(str(meter)), 200.0, 201.0)
    (tmp_path / "empty.csv").write_text("timestamp,watts\n")
    with pytest.raises(power.PowerError, match="empty power trace"):
        power.read_meter_csv(str(tmp_path / "empty.csv"))
    with pytest.raises(power.PowerError, match="unknown power source"):
        power.parse_source("joulemeter")


def _write_atomically(path, text):
    temporary = str(path) + ".tmp"
    with open(temporary, "w") as f:
        f.write(text)
    os.replace(temporary, str(path))


def test_a_hwmon_sensor_sampled_through_the_run_gives_a_known_power_step_as_its_energy(tmp_path):
    """A sysfs-like hwmon tree: 1 W, which a test thread raises to 4 W for 0.4 s of a 0.6 s
    run. Base 1 W (the quiet windows), relative energy 3 W x 0.4 s = 1.2 J, within the
    sampling error (one 5 ms sample at 200 Hz, plus the thread's own timing, at each edge)."""
    import threading
    tree = tmp_path / "hwmon3"
    tree.mkdir()
    (tree / "name").write_text("ina226\n")
    _write_atomically(tree / "power1_input", "1000000\n")  # microwatts
    source = power.parse_source(f"hwmon:{tree}@200")
    assert source.label() == f"hwmon sensor {tree}/power1_input, sampled at 200 Hz (measured)"
    started = threading.Event()

    def step():
        started.wait()
        _write_atomically(tree / "power1_input", "4000000\n")
        time.sleep(0.4)
        _write_atomically(tree / "power1_input", "1000000\n")

    thread = threading.Thread(target=step)
    thread.start()
    result, _ = power.four_step(source, lambda: (started.set(), time.sleep(0.6)), inferences=6, base_seconds=0.2,
                                windows=2)
    thread.join()
    assert result["measured"] is True and result["base_power_w"] == pytest.approx(1.0)
    assert result["relative_energy_j"] == pytest.approx(1.2, abs=0.06)
    assert result["joules_per_inference"] == pytest.approx(0.2, abs=0.01)


def test_a_hwmon_sensor_of_voltage_and_current_and_bad_sensors(tmp_path):
    tree = tmp_path / "hwmon1"
    tree.mkdir()
    (tree / "in1_input").write_text("5000\n")   # millivolts (bus voltage)
    (tree / "curr1_input").write_text("400\n")  # milliamps
    source = power.parse_source(f"hwmon:{tree}")
    assert source.watts() == pytest.approx(2.0) and source.rate_hz == 100
    seconds, joules, _ = source.measure(lambda: time.sleep(0.1))
    assert joules == pytest.approx(2.0 * seconds)
    with pytest.raises(power.PowerError, match="no hwmon power sensor at .*: expected power1_input"):
        power.parse_source(f"hwmon:{tmp_path}")
    with pytest.raises(power.PowerError, match="needs hwmon:PATH"):
        power.parse_source("hwmon")
    with pytest.raises(power.PowerError, match="a sampling rate in Hz was expected after @, got 'fast'"):
        power.parse_source(f"hwmon:{tree}@fast")


# ------------------------------------------------------------------------ the CLIs

def _labelled(node, path=""):
    """Every dict in `node` holding an energy figure, with its path."""
    if isinstance(node, dict):
        if any(k.endswith(("mj_per_inference", "joules_per_inference", "joules_per_step")) for k in node):
            yield path, node
        for key, value in node.items():
            yield from _labelled(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _labelled(value, f"{path}[{index}]")


def test_energy_cli_measures_and_labels_every_figure(smoke_run, tmp_path):
    out = str(tmp_path / "energy")
    start = time.time()
    result = run_module("deeprx.energy", f"--model={smoke_run['workdir']}", "--preset=tiny", f"--out={out}", "--count=20",
                        "--base_seconds=0.5", "--train_steps=1", "--peak_seconds=0.3", "--layer_min_seconds=0.01",
                        "--energy_source=rated:3", timeout=900)
    elapsed = time.time() - start
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(out, "energy.json")) as f:
        report = json.load(f)
    for name in ("blocks.png", "layers.png", "processors.png", "amortization.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    figures = list(_labelled(report))
    assert len(figures) >= 10
    for path, entry in figures:
        assert "estimate" in entry.get("source", "") or "measured" in entry.get("source", ""), (path, entry)
    measured = report["measured"]["float"]
    assert measured["source"] == "rated power 3 W x measured time (estimated)"
    # 20 inferences at the rated 3 W: their energy fits in 3 W x the command's wall time, read by
    # this test's clock (a per-batch or per-second figure mislabelled per inference would not).
    assert 0 < 20 * measured["joules_per_inference"] < 3.0 * elapsed
    assert [p["name"] for p in report["processors"]][-1] == "this machine" and len(report["processors"]) == 7
    assert sum(b["flops"] for b in report["blocks"]) == report["flops_per_slot"]
    assert report["amortization"]["float"]["training_steps"] == 6  # smoke.flags trains 6 steps
    assert report["paper_example"]["break_even_inferences"] == pytest.approx(2.5e9)
    assert "paper example recomputed: 2.5e+09 inferences" in result.stdout


@pytest.mark.parametrize("args, needle", [
    (["--only_processors=Pentium II"], "--only_processors: unknown processor 'Pentium II'"),
    (["--energy_source=meter:{tmp}/bad.csv"], "line 2: expected `timestamp,watts`"),
    (["--energy_source=meter:{tmp}/empty.csv"], "empty power trace"),
    (["--energy_source=nvml"], "--energy_source: NVML is not available"),
    (["--tflite={tmp}/none.tflite"], "--tflite: no file"),
])
def test_energy_cli_bad_input_fails_in_one_line(smoke_run, tmp_path, args, needle):
    (tmp_path / "bad.csv").write_text("timestamp,watts\n1700000000,much\n")
    (tmp_path / "empty.csv").write_text("timestamp,watts\n")
    args = [a.format(tmp=tmp_path) for a in args]
    result = run_module("deeprx.energy", f"--model={smoke_run['workdir']}", "--preset=tiny", f"--out={tmp_path}/o", *args,
                        timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and needle in lines[0], result.stderr


def test_energy_cli_missing_model_fails_in_one_line(tmp_path):
    result = run_module("deeprx.energy", f"--model={tmp_path}/nothing", f"--out={tmp_path}/o", timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "--model: no model.keras" in lines[0], result.stderr


def test_training_step_energy_of_a_run_with_a_learning_curve(tiny):
    """A run trained with --curve_every (the teacher recipe) measures its training step too:
    the curve is the run's bookkeeping, not part of a step."""
    from deeprx.core import config
    from deeprx.costs import measure
    train_config = config.TrainConfig(steps=2, batch_size=2, curve_every=500)
    result = measure.measure_training_step(model_lib.DeepRxConfig(width_multiplier=0.125), tiny, train_config,
                                           steps=2, source=power.CpuTimeSource(1.0, "a test's power"),
                                           base_seconds=0.01)
    assert result["batch_size"] == 2 and result["joules_per_step"] > 0 and result["seconds_per_step"] > 0
