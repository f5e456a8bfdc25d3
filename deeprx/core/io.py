"""The host's file I/O: JSON and CSV written atomically (a crash never leaves a half-written
file), read back, and the Markdown tables of the results pages and reports. Every host module
writes through here; the atomic writer itself is edge/ber.py's (edge/ runs alone on the board,
Python 3.7 and the standard library only, so it holds the one copy and the host imports it)."""

import csv
import json

from edge.ber import atomic_write


def write_json(path, obj):
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2) + "\n"))


def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_table(path, rows, fieldnames):
    """A table of dicts as CSV: the `fieldnames` columns of each row (other keys left out)."""
    def write(f):
        writer = csv.DictWriter(f, fieldnames=fieldnames, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    atomic_write(path, write)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _cell(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None or value == "":
        return "-"
    return str(value).replace("|", "\\|")


def markdown_table(header, rows):
    """A Markdown table of dicts: the `header` keys of each row (floats to 4 digits, None as -)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(row.get(key)) for key in header) + " |" for row in rows]
    return "\n".join(lines)
