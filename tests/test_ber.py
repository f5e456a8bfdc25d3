import math
import os

import pytest

from deeprx import ber


def test_geometric_mean_ber_is_mean_log10_with_zero_error_floor():
    points = [(0.0, 100, 1000), (5.0, 10, 1000), (10.0, 0, 1000)]
    expected = (math.log10(0.1) + math.log10(0.01) + math.log10(1 / 1000)) / 3
    assert ber.geometric_mean_ber(points) == pytest.approx(expected)


def test_sinr_at_ber_interpolates_in_log_ber():
    points = [(0.0, 100, 1000), (10.0, 1, 1000)]            # 1e-1 at 0 dB, 1e-3 at 10 dB
    assert ber.sinr_at_ber(points, 1e-2) == pytest.approx(5.0)
    assert ber.sinr_at_ber(points, 1e-3) == pytest.approx(10.0)
    assert ber.sinr_at_ber(points, 1e-4) is None             # never reached
    assert ber.sinr_at_ber([(0.0, 1, 10_000)], 1e-2) is None  # below target from the start


def test_summarize_keys_and_csv_round_trip(tmp_path):
    rows = [ber.make_row("rx", 0.0, 200, 1000), ber.make_row("rx", 4.0, 20, 1000),
            ber.make_row("rx", 8.0, 0, 1000)]
    path = os.path.join(tmp_path, "ber.csv")
    ber.write_csv(path, rows)
    read = ber.read_csv(path)
    assert list(read[0]) == list(ber.CSV_HEADER)
    summary = ber.summarize(read)
    assert set(summary["rx"]) == {"gm_ber", "sinr_at_ber_1e-2", "sinr_at_ber_1e-3", "sinr_db"}
    assert summary == ber.summarize(rows)
    # 1e-2 is crossed between 4 dB (2e-2) and 8 dB (zero errors, floored to 1e-3).
    fraction = (math.log10(0.02) - math.log10(0.01)) / (math.log10(0.02) - math.log10(0.001))
    assert summary["rx"]["sinr_at_ber_1e-2"] == pytest.approx(4.0 + 4.0 * fraction, abs=1e-4)


def test_atomic_write_leaves_nothing_when_the_writer_fails(tmp_path):
    path = os.path.join(tmp_path, "out.json")

    def explode(f):
        f.write("partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        ber.atomic_write(path, explode)
    assert os.listdir(tmp_path) == []
