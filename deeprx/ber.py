"""BER-vs-SINR bookkeeping: ber.csv rows, Geometric Mean BER, SINR at a target BER.

NumPy and the standard library only (Python 3.7 syntax), so that the device-side
runner can write exactly the bench's ber.csv / summary.json format.

Conventions (README "Evaluation"):
- Geometric Mean BER (PAPER.md) = mean over the SINR grid of log10(BER).
- A point with zero bit errors counts as BER = 1 / bits (fewer than one error in the
  bits simulated), so that log10 stays finite; ber.csv keeps the raw 0.
- sinr_at_ber_T interpolates linearly in (SINR, log10 BER) at the first crossing of T;
  None (null) when the curve does not cross T inside the grid.
"""

import csv
import json
import math
import os
import tempfile

CSV_HEADER = ("receiver", "sinr_db", "ber", "bit_errors", "bits")
TARGET_BERS = (1e-2, 1e-3)


def floored_ber(bit_errors, bits):
    """BER with the zero-error convention above."""
    return max(bit_errors, 1) / float(bits)


def geometric_mean_ber(points):
    """points: list of (sinr_db, bit_errors, bits). Returns mean log10 BER."""
    return sum(math.log10(floored_ber(e, n)) for _, e, n in points) / len(points)


def sinr_at_ber(points, target):
    """First SINR at which the (log-interpolated) BER falls to `target`, or None."""
    points = sorted(points)
    log_target = math.log10(target)
    previous = None
    for sinr, errors, bits in points:
        log_ber = math.log10(floored_ber(errors, bits))
        if log_ber <= log_target:
            if previous is None:
                return None  # already below the target at the first grid point
            sinr0, log_ber0 = previous
            frac = (log_ber0 - log_target) / (log_ber0 - log_ber)
            return round(sinr0 + frac * (sinr - sinr0), 4)
        previous = (sinr, log_ber)
    return None


def summarize(rows):
    """rows: dicts with CSV_HEADER keys. Returns {receiver: {gm_ber, sinr_at_ber_1e-2, ...}}."""
    by_receiver = {}
    for row in rows:
        by_receiver.setdefault(row["receiver"], []).append(
            (float(row["sinr_db"]), int(row["bit_errors"]), int(row["bits"])))
    summary = {}
    for receiver, points in by_receiver.items():
        entry = {"gm_ber": round(geometric_mean_ber(points), 6)}
        for target in TARGET_BERS:
            entry[target_key(target)] = sinr_at_ber(points, target)
        entry["sinr_db"] = [p[0] for p in sorted(points)]
        summary[receiver] = entry
    return summary


def target_key(target):
    """'sinr_at_ber_1e-2' style key for a target BER."""
    exponent = int(round(math.log10(target)))
    return "sinr_at_ber_1e%d" % exponent


def make_row(receiver, sinr_db, bit_errors, bits):
    return {"receiver": receiver, "sinr_db": sinr_db,
            "ber": bit_errors / float(bits) if bits else float("nan"),
            "bit_errors": int(bit_errors), "bits": int(bits)}


def atomic_write(path, write, binary=False):
    """Calls write(file) on a temporary file beside `path`, then renames it into place,
    so a crash never leaves a half-written `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with (os.fdopen(handle, "wb") if binary else os.fdopen(handle, "w", newline="")) as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_csv(path, rows):
    """ber.csv: CSV_HEADER columns."""
    write_table(path, [dict(row, ber="%.6e" % row["ber"]) for row in rows], CSV_HEADER)


def write_table(path, rows, fieldnames):
    """Any table of dicts as CSV, written atomically."""
    def write(f):
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    atomic_write(path, write)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def sinr_gains(entry, reference):
    """{"gain_db_at_1e-2": ..., ...}: the SINR `reference` needs at each target BER minus
    the SINR `entry` needs (summary.json entries; None where either never gets there)."""
    gains = {}
    for target in TARGET_BERS:
        key = target_key(target)
        gain = None if entry[key] is None or reference[key] is None else round(reference[key] - entry[key], 3)
        gains["gain_db_at_" + key.rsplit("_", 1)[1]] = gain
    return gains


def gain_text(gain_db):
    """A sinr_gains value for tables and reports: "+1.23 dB", or "not reached" where one
    receiver or both never get down to the target BER."""
    return "not reached" if gain_db is None else f"{gain_db:+.2f} dB"


def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_json(path, obj):
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, sort_keys=False) + "\n"))
