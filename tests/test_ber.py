import math
import os

import pytest

from deeprx.core import io as io_lib
from edge import ber


def test_geometric_mean_ber_is_mean_log10_with_a_zero_error_point_at_its_bound():
    points = [(0.0, 100, 1000), (5.0, 10, 1000), (10.0, 1, 10_000_000)]
    expected = (math.log10(0.1) + math.log10(0.01) + math.log10(ber.GM_BER_FLOOR)) / 3
    assert ber.geometric_mean_ber(points) == pytest.approx(expected)  # 1e-7 counts as the floor
    # No errors in 1,000 bits: no better than a measured 3e-3 (the rule of three), not 1e-6.
    zero = points[:2] + [(10.0, 0, 1000)]
    assert ber.geometric_mean_ber(zero) == pytest.approx(ber.geometric_mean_ber(points[:2] + [(10.0, 3, 1000)]))
    assert ber.geometric_mean_ber(zero) == pytest.approx((-1 - 2 + math.log10(3e-3)) / 3)


def test_no_crossing_is_ever_placed_against_a_zero_error_bound():
    # 1e-2 is crossed between 4 dB (1.2e-1) and 8 dB, where there were no errors in 1,000 bits
    # (bound 3e-3): the bracket, not a number interpolated toward the bound.
    points = [(0.0, 200, 1000), (4.0, 120, 1000), (8.0, 0, 1000)]
    assert ber.target_crossing(points, 1e-2) == (None, "between 4 and 8 dB (no errors at 8 dB)")
    # At 1e-3 the bound 3e-3 is not below the target: the grid cannot resolve it.
    assert ber.target_crossing(points, 1e-3) == (
        None, "below the grid's resolution: no errors in 1000 at 8 dB (bound 3.0e-03)")
    # Enough bits for the bound to clear 1e-3 still gives the bracket only.
    assert ber.target_crossing(points[:2] + [(8.0, 0, 10_000)], 1e-3)[1] == "between 4 and 8 dB (no errors at 8 dB)"


def test_sinr_at_ber_interpolates_in_log_ber():
    points = [(0.0, 100, 1000), (10.0, 1, 1000)]            # 1e-1 at 0 dB, 1e-3 at 10 dB
    assert ber.sinr_at_ber(points, 1e-2) == pytest.approx(5.0)
    assert ber.sinr_at_ber(points, 1e-3) is None             # ends at the target: not below it
    assert ber.target_crossing([(0.0, 1, 10_000)], 1e-2) == (None, "below 1e-02 from the first point")


def test_a_floor_and_a_curve_that_comes_back_give_no_sinr_but_say_so():
    floor = [(10.0, 300, 10_000), (14.0, 130, 10_000), (18.0, 110, 10_000), (22.0, 105, 10_000)]
    assert ber.target_crossing(floor, 1e-2) == (None, "floor at 1.05e-02")
    # Below 1e-2 at 18 dB, back above at 22 dB and to the end: the first crossing would
    # have said 17 dB, but the curve does not stay below.
    back = [(14.0, 200, 10_000), (18.0, 90, 10_000), (22.0, 120, 10_000), (26.0, 110, 10_000)]
    assert ber.target_crossing(back, 1e-2) == (None, "floor at 9.00e-03")
    # Back above at 22 dB, then below for good: the crossing after 22 dB counts.
    again = back[:3] + [(26.0, 10, 10_000)]
    assert ber.target_crossing(again, 1e-2)[0] == pytest.approx(22.0 + 4.0 * math.log10(1.2) / math.log10(12))
    # The last point at or above the target with too few errors cannot place the crossing.
    noisy = [(0.0, 50, 1000), (4.0, 12, 1000), (8.0, 0, 1000)]
    assert ber.target_crossing(noisy, 1e-2) == (None, "too few errors (12) at 4 dB to place the crossing")


def test_slot_confidence_interval():
    low, high = ber.slot_interval([10, 30, 20, 20], 1000)
    standard_error = math.sqrt(sum((x - 0.02) ** 2 for x in (0.01, 0.03, 0.02, 0.02)) / 3 / 4)
    assert (low, high) == pytest.approx((0.02 - 1.96 * standard_error, 0.02 + 1.96 * standard_error))
    assert ber.slot_interval([0, 0, 0], 1000) == (0.0, pytest.approx(1e-3))  # rule of three
    row = ber.make_row("rx", 0.0, 80, 4000, [10, 30, 20, 20])
    assert row["slots"] == 4 and float(row["ber_ci_low"]) == pytest.approx(low, rel=1e-3)


def test_summarize_keys_and_csv_round_trip(tmp_path):
    rows = [ber.make_row("rx", 0.0, 200, 1000), ber.make_row("rx", 4.0, 120, 1000),
            ber.make_row("rx", 8.0, 0, 1000)]
    path = os.path.join(tmp_path, "ber.csv")
    ber.write_csv(path, rows)
    read = io_lib.read_csv(path)
    assert list(read[0]) == list(ber.CSV_HEADER)
    summary = ber.summarize(read)
    assert set(summary["rx"]) == {"gm_ber", "sinr_at_ber_1e-2", "sinr_at_ber_1e-3", "sinr_db", "note_1e-2", "note_1e-3"}
    assert ber.summarize(rows[:2])["rx"]["note_1e-2"] == "floor at 1.20e-01"
    assert summary == ber.summarize(rows)
    assert summary["rx"]["sinr_at_ber_1e-2"] is None and summary["rx"]["note_1e-2"].startswith("between 4 and 8 dB")


def test_atomic_write_leaves_nothing_when_the_writer_fails(tmp_path):
    path = os.path.join(tmp_path, "out.json")

    def explode(f):
        f.write("partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        ber.atomic_write(path, explode)
    assert os.listdir(tmp_path) == []


def test_an_atomic_write_gives_the_file_the_permissions_open_would(tmp_path):
    """Not mkstemp's owner-only 0600: a result another user (or a cluster job as them) reads.
    The host writes through the same function."""
    assert io_lib.atomic_write is ber.atomic_write
    with open(tmp_path / "plain", "w"):
        pass
    ber.atomic_write(str(tmp_path / "atomic"), lambda f: f.write("x"))
    assert os.stat(tmp_path / "atomic").st_mode & 0o777 == os.stat(tmp_path / "plain").st_mode & 0o777


def test_bler_columns_give_sinr_at_bler_with_their_own_error_minimum():
    rows = [ber.make_row("rx", 0.0, 500, 10_000, block_errors=64, blocks=64),
            ber.make_row("rx", 4.0, 200, 10_000, block_errors=32, blocks=64),
            ber.make_row("rx", 8.0, 20, 10_000, block_errors=2, blocks=64),
            ber.make_row("plain", 0.0, 500, 10_000), ber.make_row("plain", 8.0, 20, 10_000)]
    assert rows[1]["bler"] == "5.0000e-01" and rows[3]["blocks"] == "" and rows[3]["bler"] == ""
    summary = ber.summarize(rows)
    # 0.5 at 4 dB, then 2/64 at 8 dB: log-interpolated crossing of 1e-1 (blocks, not bits).
    assert summary["rx"]["sinr_at_bler_1e-1"] == pytest.approx(4 + 4 * math.log10(5) / math.log10(16), abs=1e-3)
    # With no block errors at 8 dB the 64 blocks bound the BLER by 3/64: only the bracket.
    rows[2] = ber.make_row("rx", 8.0, 20, 10_000, block_errors=0, blocks=64)
    assert ber.summarize(rows)["rx"]["note_bler_1e-1"] == "between 4 and 8 dB (no errors at 8 dB)"
    assert "sinr_at_bler_1e-1" not in summary["plain"]  # uncoded rows: BER only, as before
    few = [ber.make_row("rx", 0.0, 500, 10_000, block_errors=5, blocks=8),
           ber.make_row("rx", 8.0, 20, 10_000, block_errors=1, blocks=64)]
    assert ber.summarize(few)["rx"]["note_bler_1e-1"].startswith("too few errors (5)")
    # No errors in 8 blocks: the bound 3/8 is no evidence of a BLER below 1e-1.
    few[1] = ber.make_row("rx", 8.0, 20, 10_000, block_errors=0, blocks=8)
    assert ber.summarize(few)["rx"]["note_bler_1e-1"].startswith("below the grid's resolution")
