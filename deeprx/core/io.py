"""The host's file I/O: JSON and CSV written atomically (a crash never leaves a half-written
file), read back, and the Markdown tables of the results pages and reports. Every host module writes through here; `edge/` keeps its own few lines of
the same (it runs alone on the board, Python 3.7 and the standard library only)."""

import csv
import json
import os
import tempfile


def _new_file_mode():
    """The permissions open() gives a new file: 0666 less the umask (read once, at import:
    reading it sets it)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


NEW_FILE_MODE = _new_file_mode()


def atomic_write(path, write, binary=False):
    """Calls write(file) on a temporary file beside `path`, then renames it into place, with
    the permissions open() would give it (mkstemp's are the owner's only)."""
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
