"""The real `python -m deeprx.evaluate` CLI on the tiny preset."""

import json
import math
import os
import shutil

import pytest

from conftest import run_module
from deeprx.core import io as io_lib
from edge import ber

FAST = ["--preset=tiny", "--sinr_db=0:16:8", "--max_bits=5000", "--batch_size=8"]


@pytest.fixture(scope="module")
def classical_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("eval") / "run")
    result = run_module("deeprx.evaluate", *FAST, f"--out={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    return out, result


def test_writes_csv_summary_plot_and_config(classical_run):
    out, result = classical_run
    assert sorted(os.listdir(out)) == ["ber.csv", "ber.png", "calibration.csv", "config.json", "summary.json"]
    rows = io_lib.read_csv(os.path.join(out, "ber.csv"))
    assert list(rows[0]) == ["receiver", "sinr_db", "ber", "bit_errors", "bits", "slots", "ber_ci_low", "ber_ci_high",
                             "blocks", "block_errors", "bler"]
    assert all(r["blocks"] == r["bler"] == "" for r in rows)  # uncoded: no blocks
    # The default receivers: the four classical ones.
    assert [(r["receiver"], float(r["sinr_db"])) for r in rows] == [
        (name, s) for s in (0.0, 8.0, 16.0) for name in ("ls_lmmse", "perfect_lmmse", "ls_irc", "perfect_irc")]
    for row in rows:
        assert int(row["bits"]) >= 5000
        assert float(row["ber"]) == pytest.approx(int(row["bit_errors"]) / int(row["bits"]), rel=1e-5)
    with open(os.path.join(out, "ber.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "[ 3/3] SINR" in result.stdout  # progress per SINR point


def test_summary_equals_what_the_csv_implies(classical_run):
    out, _ = classical_run
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    rows = io_lib.read_csv(os.path.join(out, "ber.csv"))
    assert set(summary) == {"ls_lmmse", "perfect_lmmse", "ls_irc", "perfect_irc"}
    calibration = io_lib.read_csv(os.path.join(out, "calibration.csv"))
    for name, entry in summary.items():  # every data bit of every point is in one |LLR| bin
        assert sum(int(r["bits"]) for r in calibration if r["receiver"] == name) == \
            sum(int(r["bits"]) for r in rows if r["receiver"] == name)
        assert "llr_overconfidence" in entry
    for name, entry in summary.items():
        points = [(float(r["sinr_db"]), int(r["bit_errors"]), int(r["bits"])) for r in rows
                  if r["receiver"] == name]
        logs = [math.log10(max((e or 3) / n, ber.GM_BER_FLOOR)) for _, e, n in points]  # no errors: 3/n
        assert entry["gm_ber"] == pytest.approx(sum(logs) / len(logs), abs=1e-6)
        for key, target in (("sinr_at_ber_1e-2", 1e-2), ("sinr_at_ber_1e-3", 1e-3)):
            # The rule, checked from the points themselves: below the target from the
            # crossing on, at or above it at the last point before; or a note saying why not.
            crossing, note = entry[key], entry.get("note_" + key.rsplit("_", 1)[1])
            bers = [(sinr, (e or 3) / n) for sinr, e, n in points]
            if crossing is not None:
                assert note is None and all(b < target for sinr, b in bers if sinr > crossing)
                assert [b for sinr, b in bers if sinr < crossing][-1] >= target
            elif all(b < target for _, b in bers):
                assert note == f"below {target:.0e} from the first point"
            else:
                assert note.startswith("floor at") == (bers[-1][1] >= target) and note, note
    # Every point has its slot count and a 95% interval around its BER.
    for row in rows:
        assert int(row["slots"]) >= 1 and int(row["bits"]) % int(row["slots"]) == 0
        assert float(row["ber_ci_low"]) <= float(row["ber"]) <= float(row["ber_ci_high"])
        assert float(row["ber_ci_high"]) > 0
    # perfect CSI is never worse than LS estimates on the same slots
    assert summary["perfect_lmmse"]["gm_ber"] < summary["ls_lmmse"]["gm_ber"]


def test_rescore_recomputes_summary_and_plot_from_ber_csv_only(classical_run, tmp_path):
    out, _ = classical_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    with open(os.path.join(out, "summary.json")) as f:
        original = json.load(f)
    # ber.csv edited: perfect_irc has no errors at 16 dB (in too few bits for 1e-3), and a
    # stale summary.json: --rescore recomputes it and keeps the LLR calibration.
    rows = io_lib.read_csv(copy / "ber.csv")
    for row in rows:
        if row["receiver"] == "perfect_irc" and float(row["sinr_db"]) == 16.0:
            row.update(bit_errors=0, ber=0.0, bits=1000)
    io_lib.write_table(copy / "ber.csv", rows, ber.CSV_HEADER)
    io_lib.write_json(copy / "summary.json", {name: dict(entry, gm_ber=0.0) for name, entry in original.items()})
    (copy / "ber.png").unlink()
    result = run_module("deeprx.evaluate", f"--rescore={copy}")
    assert result.returncode == 0, result.stderr[-2000:]
    rescored = io_lib.read_json(copy / "summary.json")
    assert {k: v for k, v in rescored.items() if k != "perfect_irc"} == \
        {k: v for k, v in original.items() if k != "perfect_irc"}
    points = [(float(r["sinr_db"]), int(r["bit_errors"]), int(r["bits"])) for r in rows if r["receiver"] == "perfect_irc"]
    assert rescored["perfect_irc"]["gm_ber"] == pytest.approx(
        sum(math.log10(max((e or 3) / n, 1e-6)) for _, e, n in points) / 3, abs=1e-6)
    assert rescored["perfect_irc"]["llr_overconfidence"] == original["perfect_irc"]["llr_overconfidence"]
    assert rescored["perfect_irc"]["sinr_at_ber_1e-3"] is None  # 3e-3 at 16 dB is no crossing of 1e-3
    assert (copy / "ber.png").stat().st_size > 0
    assert "perfect_irc" in result.stdout
    missing = run_module("deeprx.evaluate", f"--rescore={tmp_path}")
    assert missing.returncode != 0 and "has no ber.csv" in missing.stderr


def test_separate_runs_see_the_same_slots(classical_run, tmp_path):
    out, _ = classical_run
    result = run_module("deeprx.evaluate", *FAST, "--receivers=ls_lmmse", f"--out={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    first = [r for r in io_lib.read_csv(os.path.join(out, "ber.csv")) if r["receiver"] == "ls_lmmse"]
    again = io_lib.read_csv(os.path.join(tmp_path, "ber.csv"))
    assert [(r["bit_errors"], r["bits"]) for r in first] == [(r["bit_errors"], r["bits"]) for r in again]


def _save_model(directory, input_channels, output_bits, grid=(14, 24)):
    import tf_keras as keras
    inputs = keras.Input(shape=(*grid, input_channels))
    outputs = keras.layers.Conv2D(output_bits, 1)(inputs)
    os.makedirs(directory)
    keras.Model(inputs, outputs).save(os.path.join(directory, "model.keras"))


def test_evaluates_a_saved_keras_model_beside_the_classical_receivers(tmp_path):
    model_dir = str(tmp_path / "rand_rx")
    _save_model(model_dir, input_channels=10, output_bits=4)
    out = str(tmp_path / "out")
    result = run_module("deeprx.evaluate", *FAST, f"--receivers=ls_lmmse,{model_dir}", f"--out={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    assert set(summary) == {"ls_lmmse", "rand_rx"}
    # An untrained 1x1 conv guesses: its BER stays far above a real receiver's at 16 dB.
    rows = io_lib.read_csv(os.path.join(out, "ber.csv"))
    at_16 = {r["receiver"]: float(r["ber"]) for r in rows if float(r["sinr_db"]) == 16.0}
    assert at_16["rand_rx"] > 0.1 > at_16["ls_lmmse"]


def test_a_trained_model_leaves_its_training_distribution_only_when_asked(tmp_path):
    from deeprx.core import config as config_lib
    model_dir = str(tmp_path / "trained")
    _save_model(model_dir, input_channels=10, output_bits=4)
    io_lib.write_json(os.path.join(model_dir, "config.json"),
                      {"scenario": config_lib.to_dict(config_lib.get_preset("tiny").scenario)})
    stronger = [*FAST, f"--receivers={model_dir}", "--sir_db=0:5"]
    refused = run_module("deeprx.evaluate", *stronger, f"--out={tmp_path}/a")
    assert refused.returncode == 2 and not os.path.exists(tmp_path / "a")
    assert "interferer differ" in refused.stderr and "add --off_distribution" in refused.stderr
    scored = run_module("deeprx.evaluate", *stronger, "--off_distribution", f"--out={tmp_path}/b")
    assert scored.returncode == 0, scored.stderr[-2000:]
    record = io_lib.read_json(os.path.join(tmp_path, "b", "config.json"))
    assert record["off_distribution"] is True and record["scenario"]["interferer"]["sir_db"] == [0.0, 5.0]
    # What shapes the model's input and output never changes, off the distribution or not.
    other = run_module("deeprx.evaluate", *FAST, f"--receivers={model_dir}", "--modulation=qpsk", "--off_distribution",
                       f"--out={tmp_path}/c")
    assert other.returncode == 2 and "modulation differ" in other.stderr and "add --off_distribution" not in other.stderr


def test_model_of_the_wrong_grid_is_rejected_in_one_line(tmp_path):
    model_dir = str(tmp_path / "wrong")
    _save_model(model_dir, input_channels=6, output_bits=4)
    out = str(tmp_path / "out")
    result = run_module("deeprx.evaluate", *FAST, f"--receivers={model_dir}", f"--out={out}")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: --receivers: model 'wrong' has input shape")
    assert not os.path.exists(out)


@pytest.mark.parametrize("flag, value, needle", [
    ("preset", "huge", "unknown preset"),
    ("receivers", "ls_lmmse,zf", "neither a classical receiver"),
    ("receivers", "/no/such/model_dir", "neither a classical receiver"),
    ("sinr_db", "10:0:2", "inverted"),
    ("sinr_db", "", "expected LO:HI:STEP"),
    ("num_prb", "0", "num_prb"),
    ("modulation", "8psk", "modulation"),
    ("num_dmrs", "3", "num_dmrs"),
    ("num_rx", "3", "num_rx"),
    ("channel", "rayleigh", "channel"),
    ("max_bits", "0", "max_bits"),
    ("num_prb", "two", "num_prb"),
    ("interference_share", "1.5", "must be in (0, 1)"),
])
def test_bad_flags_fail_before_compute_with_one_line(tmp_path, flag, value, needle):
    out = str(tmp_path / "out")
    result = run_module("deeprx.evaluate", "--preset=tiny", f"--{flag}={value}", f"--out={out}", timeout=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and f"--{flag}" in lines[0] and needle in lines[0]
    assert not os.path.exists(out)


def test_an_interference_share_without_an_interferer_is_one_line(tmp_path):
    out = str(tmp_path / "out")
    result = run_module("deeprx.evaluate", "--preset=tiny", "--sir_db=none", "--interference_share=0.9",
                        f"--out={out}", timeout=60)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: --interference_share: needs an interferer: drop --sir_db=none"] and not os.path.exists(out)


def test_out_that_is_a_file_is_rejected(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    result = run_module("deeprx.evaluate", "--preset=tiny", f"--out={path}", timeout=60)
    assert result.returncode != 0 and "--out" in result.stderr and path.read_text() == "x"
