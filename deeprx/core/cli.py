"""Shared command-line plumbing: one-line flag errors, raised before any compute.

CLI modules define their absl flags in a `define_flags()` that `run` calls (never at import),
check them in a `check_flags()` that raises FlagError, and only then import TensorFlow and
start work.
"""

import contextlib
import ctypes
import os
import signal
import sys

from absl import app
from absl import flags
from absl import logging

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class FlagError(Exception):
    """A bad command-line value: printed as `error: --FLAG: MESSAGE`, exit status 2."""

    def __init__(self, flag, message):
        super().__init__("--%s: %s" % (flag, message))
        self.flag = flag


@contextlib.contextmanager
def flag(name):
    """Turns a ValueError raised inside the block into a FlagError naming `name`."""
    try:
        yield
    except ValueError as error:
        raise FlagError(name, str(error)) from None


def _parse(argv):
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        _fail(str(error))


def _fail(message):
    print("error: %s" % message.splitlines()[0], file=sys.stderr)
    sys.exit(2)


def flag_args(names, **overrides):
    """Command-line arguments that give another CLI the flags `names` at their current
    values (or `overrides`); unset (None) flags are left out."""
    return args_from({name: getattr(flags.FLAGS, name) for name in names}, names, **overrides)


def args_from(values, names, **overrides):
    """Command-line arguments for the flags `names` at `values` (a dict; or `overrides`);
    None values are left out. Library code gets `values` from its CLI, never reads FLAGS."""
    args = []
    for name in names:
        value = overrides[name] if name in overrides else values[name]
        if value is None:
            continue
        if isinstance(value, bool):
            args.append("--%s" % name if value else "--no%s" % name)
        else:
            args.append("--%s=%s" % (name, value))
    return args


def run(main, define_flags=None, commands=()):
    """absl's app.run with one-line errors for unparsable flags and FlagError, after
    `define_flags()` defined the command's flags (a CLI module defines none when imported,
    so that any set of modules imports together); with `commands`, exactly one of them must
    come first (main gets it as argv[1])."""
    if define_flags is not None:
        define_flags()

    def wrapped(argv):
        if commands and (len(argv) < 2 or argv[1] not in commands):
            _fail("give a command first: %s (got %s)" % ("|".join(commands), " ".join(argv[1:2]) or "none"))
        if len(argv) > 1 + bool(commands):
            _fail("unexpected arguments %s (all options are --flags)" % " ".join(argv[1 + bool(commands):]))
        logging.set_verbosity(logging.WARNING)  # not TensorFlow's converter INFO lines
        try:
            return main(argv)
        except FlagError as error:
            _fail(str(error))
    app.run(wrapped, flags_parser=_parse)


def die_with_parent():
    """A subprocess preexec_fn: the child gets SIGKILL when its parent process dies, however
    the parent died (Linux prctl PR_SET_PDEATHSIG), so no training outlives its sweep or study."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except OSError:  # not Linux: children of a killed parent finish on their own
        pass
