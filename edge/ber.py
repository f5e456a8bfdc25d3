"""BER-vs-SINR bookkeeping: ber.csv rows, Geometric Mean BER, SINR at a target BER.

NumPy and the standard library only (Python 3.7 syntax), so that the device-side
runner can write exactly the bench's ber.csv / summary.json format; with the few lines of
atomic file writing the runner needs (the host's file I/O is deeprx/core/io.py).

Conventions (docs/bench.md "Evaluation"):
- A point with zero errors is a bound, not a value: it enters every figure as its 95% upper
  bound, the rule of three (3 / trials, `point_rate`), and is drawn as a bound.
- Geometric Mean BER (PAPER.md) = mean over the SINR grid of log10(max(BER, GM_BER_FLOOR)),
  a zero-error point at its bound 3 / bits: simulating fewer bits can never make a curve
  look better.
- Each point has a 95% confidence interval from its slots (bits within a slot are not
  independent): the per-slot BERs' mean +- 1.96 standard errors, and at least the rule of
  three (3 / bits) above when there were no errors.
- sinr_at_ber_T: the SINR from which on the curve stays below T for the rest of the grid,
  interpolated in (SINR, log10 BER) between the last point at or above T and the next one.
  Never interpolated toward a bound: when the next point has no errors, None with the bracket
  in `note_T` ("between A and B dB (no errors at B dB)"). None (null), with a note, also when
  there is no such crossing: "floor at X" (the curve ends at or above T: X its lowest BER
  from its last point below T on, or over the whole grid), "below T from the first point",
  "too few errors" when the last point at or above T has fewer than MIN_BIT_ERRORS errors
  (it cannot be told from noise), or "below the grid's resolution" when that point has no
  errors at all but too few trials for its bound to fall below T.
- Coded evaluations add BLER (blocks, block_errors, bler columns; blank when uncoded) and
  sinr_at_bler_T for T in TARGET_BLERS by the same crossing rule (MIN_BLOCK_ERRORS).
"""

import csv
import json
import math
import os
import tempfile

CSV_HEADER = ("receiver", "sinr_db", "ber", "bit_errors", "bits", "slots", "ber_ci_low", "ber_ci_high",
              "blocks", "block_errors", "bler")
TARGET_BERS = (1e-2, 1e-3)
TARGET_BLERS = (1e-1, 1e-2)
GM_BER_FLOOR = 1e-6
MIN_BIT_ERRORS = 100
MIN_BLOCK_ERRORS = 10


def point_rate(errors, trials):
    """The error rate a point enters figures with: errors / trials, or for a point with no
    errors its 95% upper bound, the rule of three: 3 / trials."""
    return (errors if errors else 3.0) / float(trials)


def floored_ber(bit_errors, bits):
    """BER with the Geometric Mean's floor: max(point_rate, GM_BER_FLOOR)."""
    return max(point_rate(bit_errors, bits), GM_BER_FLOOR)


def geometric_mean_ber(points):
    """points: list of (sinr_db, bit_errors, bits). Returns mean log10 BER."""
    return sum(math.log10(floored_ber(e, n)) for _, e, n in points) / len(points)


def slot_interval(slot_errors, bits_per_slot):
    """95% confidence interval (low, high) of the BER from per-slot error counts."""
    n = len(slot_errors)
    total_bits = float(n * bits_per_slot)
    mean = sum(slot_errors) / total_bits
    if n > 1:
        variance = sum((e / float(bits_per_slot) - mean) ** 2 for e in slot_errors) / (n - 1)
        half = 1.96 * math.sqrt(variance / n)
    else:
        half = 0.0
    return max(mean - half, 0.0), max(mean + half, 3.0 / total_bits if mean == 0 else 0.0)


def target_crossing(points, target, min_errors=MIN_BIT_ERRORS):
    """(SINR at which the curve goes below `target` and stays below, or None; a note when None).
    points: (sinr_db, errors, trials) tuples (bits, or blocks). Rules in the module docstring."""
    points = sorted(points)
    rates = [point_rate(e, n) for _, e, n in points]
    above = [i for i, b in enumerate(rates) if b >= target]
    if not above:
        return None, "below %.0e from the first point" % target
    last = above[-1]
    sinr0, e0, n0 = points[last]
    if e0 == 0:
        return None, "below the grid's resolution: no errors in %d at %g dB (bound %.1e)" % (n0, sinr0, rates[last])
    if last == len(points) - 1:
        below = [i for i, b in enumerate(rates) if b < target]
        start = below[-1] if below else 0
        return None, "floor at %.2e" % min(rates[start:])
    if e0 < min_errors:
        return None, "too few errors (%d) at %g dB to place the crossing" % (e0, sinr0)
    sinr1, e1, n1 = points[last + 1]
    if e1 == 0:
        return None, "between %g and %g dB (no errors at %g dB)" % (sinr0, sinr1, sinr1)
    log0, log1, log_target = math.log10(floored_ber(e0, n0)), math.log10(floored_ber(e1, n1)), math.log10(target)
    return round(sinr0 + (log0 - log_target) / (log0 - log1) * (sinr1 - sinr0), 4), None


def sinr_at_ber(points, target):
    """The SINR of target_crossing, or None."""
    return target_crossing(points, target)[0]


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
            entry[target_key(target)], note = target_crossing(points, target)
            if note:
                entry["note_" + target_key(target).rsplit("_", 1)[1]] = note
        entry["sinr_db"] = [p[0] for p in sorted(points)]
        summary[receiver] = entry
    for receiver, entry in summary.items():
        blocks = [(float(r["sinr_db"]), int(r["block_errors"]), int(r["blocks"])) for r in rows
                  if r["receiver"] == receiver and str(r.get("blocks", "")) not in ("", "0")]
        for target in TARGET_BLERS if blocks else ():
            key = "bler_1e%d" % int(round(math.log10(target)))
            entry["sinr_at_" + key], note = target_crossing(blocks, target, MIN_BLOCK_ERRORS)
            if note:
                entry["note_" + key] = note
    return summary


def target_key(target):
    """'sinr_at_ber_1e-2' style key for a target BER."""
    exponent = int(round(math.log10(target)))
    return "sinr_at_ber_1e%d" % exponent


def make_row(receiver, sinr_db, bit_errors, bits, slot_errors=None, block_errors=None, blocks=None):
    """A ber.csv row; with `slot_errors` (the errors of each slot, equal bits per slot) also
    the slot count and the 95% confidence interval; with `blocks`, the BLER."""
    row = {"receiver": receiver, "sinr_db": sinr_db, "ber": bit_errors / float(bits) if bits else float("nan"),
           "bit_errors": int(bit_errors), "bits": int(bits), "slots": "", "ber_ci_low": "", "ber_ci_high": "",
           "blocks": "", "block_errors": "", "bler": ""}
    if blocks:
        row.update(blocks=int(blocks), block_errors=int(block_errors), bler="%.4e" % (block_errors / float(blocks)))
    if slot_errors:
        low, high = slot_interval(slot_errors, bits // len(slot_errors))
        row.update(slots=len(slot_errors), ber_ci_low="%.3e" % low, ber_ci_high="%.3e" % high)
    return row


def _new_file_mode():
    """The permissions open() gives a new file: 0666 less the umask (read once, at import:
    reading it sets it)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


NEW_FILE_MODE = _new_file_mode()


def atomic_write(path, write, binary=False):
    """Calls write(file) on a temporary file beside `path`, then renames it into place,
    so a crash never leaves a half-written `path`, with the permissions open() would give
    it (mkstemp's are the owner's only)."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with (os.fdopen(handle, "wb") if binary else os.fdopen(handle, "w", newline="")) as f:
            write(f)
        os.chmod(tmp, NEW_FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_csv(path, rows):
    """ber.csv: CSV_HEADER columns."""
    write_table(path, [dict(row, ber="%.6e" % row["ber"]) for row in rows], CSV_HEADER)


def write_table(path, rows, fieldnames):
    """Any table of dicts as CSV, written atomically: the `fieldnames` columns of each row
    (other keys are left out)."""
    def write(f):
        writer = csv.DictWriter(f, fieldnames=fieldnames, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    atomic_write(path, write)


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


def write_json(path, obj):
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, sort_keys=False) + "\n"))
