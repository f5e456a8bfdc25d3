"""Coded evaluation (one 5G LDPC transport block per slot) and LLR calibration, through the
bench's own loop (deeprx.evaluation.bench.simulate) on the real Sionna chain."""

import dataclasses
import re

import numpy as np
import pytest

from conftest import awgn_scenario
from deeprx.core import config
from deeprx.evaluation import bench
from deeprx.evaluation import calibration
from deeprx.simulation import baselines
from deeprx.simulation import data
from deeprx.core import io as io_lib
from edge import ber as ber_lib


def _coded(sinr_db, batch_size=32, target_bit_errors=10**9, max_bits=1):
    """One batch per SINR point (max_bits=1 stops after the first)."""
    return config.EvalConfig(sinr_db=tuple(sinr_db), batch_size=batch_size, target_bit_errors=target_bit_errors,
                             max_bits=max_bits, coded=True, coderate=0.5)


class Scaled:
    """A receiver whose LLRs are another's times `factor` (same decisions, other confidence)."""

    def __init__(self, receiver, factor):
        self.receiver, self.factor, self.name = receiver, factor, f"{receiver.name}_x{factor:g}"

    def __call__(self, batch):
        return self.factor * np.asarray(self.receiver(batch))


@pytest.fixture(scope="module")
def awgn():
    return awgn_scenario()


def test_the_code_fills_the_data_res_and_keeps_the_slot(tiny):
    coded = data.SlotGenerator(tiny, "test", coderate=0.5)
    plain = data.SlotGenerator(tiny, "test")
    a, b = coded(4, 11, sinr_db=10.0), plain(4, 11, sinr_db=10.0)
    np.testing.assert_array_equal(a.h.numpy(), b.h.numpy())  # the same channels, noise power, interferer
    np.testing.assert_array_equal(a.h_interference.numpy(), b.h_interference.numpy())
    described = coded.code.describe()
    mask = a.data_mask.numpy()[..., None] > 0
    assert described["num_coded_bits"] == int(mask[0].sum()) * tiny.bits_per_symbol
    assert 0.45 < described["coderate"] < 0.55 and described["tb_size"] > 100
    assert not np.any(a.bits.numpy()[~np.broadcast_to(mask, a.bits.shape)])
    np.testing.assert_array_equal(coded(4, 11, sinr_db=10.0).bits.numpy(), a.bits.numpy())  # seeded
    sent = a.bits.numpy()
    assert coded.code.decode(20.0 * (2 * sent - 1), 11).all()
    assert not coded.code.decode(np.zeros_like(sent), 11).any()  # zero LLRs: the all-zero block is not a success
    assert not coded.code.decode(20.0 * (2 * sent - 1), 12).any()  # another slot's bits


def test_noiseless_every_block_decodes_and_at_very_low_sinr_almost_none(awgn):
    receiver = baselines.PerfectLmmse(awgn)
    rows, _, code = bench.simulate([receiver], awgn, _coded((-8.0, 60.0), batch_size=64), log=lambda *a, **k: None)
    by_sinr = {row["sinr_db"]: row for row in rows}
    assert code["tb_size"] > 0 and by_sinr[60.0]["blocks"] == 64
    assert by_sinr[60.0]["block_errors"] == 0 and by_sinr[60.0]["bit_errors"] == 0
    assert by_sinr[-8.0]["block_errors"] >= 62


def test_a_coded_point_also_waits_for_its_block_errors(awgn):
    """At -8 dB every block fails (16 a batch): 1 bit error ends an uncoded point after one
    batch, while a coded point needs 40 block errors, so 3 batches."""
    receiver = baselines.PerfectLmmse(awgn)
    quiet = lambda *a, **k: None  # noqa: E731
    coded = dataclasses.replace(_coded((-8.0,), batch_size=16, target_bit_errors=1, max_bits=10**9),
                                target_block_errors=40)
    (row,), _, _ = bench.simulate([receiver], awgn, coded, log=quiet)
    assert row["blocks"] == 48 and row["block_errors"] == 48
    (plain,), _, _ = bench.simulate([receiver], awgn, dataclasses.replace(coded, coded=False), log=quiet)
    assert plain["bits"] == row["bits"] // 3


def test_perfect_lmmse_bler_on_awgn_falls_steeply_at_the_code_threshold(awgn):
    """A 5G LDPC code of rate 1/2, 16-QAM: BLER goes from about 1 to about 0 within 2 dB."""
    receiver = baselines.PerfectLmmse(awgn)
    grid = [float(s) for s in np.arange(2.0, 12.5, 1.0)]
    rows, _, _ = bench.simulate([receiver], awgn, _coded(grid, batch_size=64), log=lambda *a, **k: None)
    bler = {row["sinr_db"]: row["block_errors"] / row["blocks"] for row in rows}
    assert bler[2.0] > 0.9 and bler[12.0] < 0.05
    steep = [s for s in grid if s + 2 in bler and bler[s] >= 0.9 and bler[s + 2] <= 0.1]
    assert steep, bler
    summary = ber_lib.summarize(rows)["perfect_lmmse"]
    if summary["sinr_at_bler_1e-1"] is None:  # no block error right after the crossing: its bracket
        low, high = (float(x) for x in re.match(r"between (\S+) and (\S+) dB", summary["note_bler_1e-1"]).groups())
        assert steep[0] <= low < high <= steep[0] + 2, summary["note_bler_1e-1"]
    else:
        assert steep[0] < summary["sinr_at_bler_1e-1"] <= steep[0] + 2


def test_calibration_tells_calibrated_llrs_from_overconfident_ones(awgn):
    receiver = baselines.PerfectLmmse(awgn)
    evaluation = dataclasses.replace(_coded((2.0, 6.0), batch_size=64), coded=False)
    _, calibrations, _ = bench.simulate([receiver, Scaled(receiver, 4.0), Scaled(receiver, 0.25)], awgn, evaluation,
                                        log=lambda *a, **k: None)
    score = {name: calibration.overconfidence(c.rows(name)) for name, c in calibrations.items()}
    assert abs(score["perfect_lmmse"]) < 0.3  # max-log LLRs on AWGN with the true noise: close to calibrated
    assert score["perfect_lmmse_x4"] > 1.0 and score["perfect_lmmse_x0.25"] < -0.3, score
    rows = calibrations["perfect_lmmse"].rows("perfect_lmmse")
    assert sum(r["bits"] for r in rows) == 2 * 64 * int(data.data_mask(awgn).sum()) * awgn.bits_per_symbol


def test_the_coded_cli_writes_bler_calibration_and_a_two_panel_plot(tmp_path):
    from conftest import run_module
    out = tmp_path / "coded"
    result = run_module("deeprx.evaluate", "--preset=tiny", "--coded", "--coderate=0.4", "--sinr_db=0:16:16",
                        "--receivers=perfect_lmmse,perfect_irc", "--max_bits=4000", f"--out={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = io_lib.read_csv(str(out / "ber.csv"))
    assert all(int(r["blocks"]) >= 1 and 0 <= float(r["bler"]) <= 1 for r in rows)
    summary = io_lib.read_json(str(out / "summary.json"))
    assert {"sinr_at_bler_1e-1", "sinr_at_bler_1e-2", "llr_overconfidence"} <= set(summary["perfect_irc"])
    assert io_lib.read_json(str(out / "config.json"))["code"]["coderate"] == pytest.approx(0.4, abs=0.03)
    assert (out / "calibration.csv").stat().st_size > 0 and "at BLER 1e-1" in result.stdout
    bad = run_module("deeprx.evaluate", "--preset=tiny", "--coded", "--coderate=1.5", f"--out={tmp_path}/bad",
                     timeout=60)
    assert bad.returncode == 2 and "--coderate: coderate must be in (0, 1)" in bad.stderr
