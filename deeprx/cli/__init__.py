"""Shared command-line plumbing: one-line flag errors, raised before any compute.

CLI modules define their absl flags in a `define_flags()` that `run` calls (never at import),
check them in a `check_flags()` that raises FlagError, and only then import TensorFlow and
start work.
"""

import contextlib
import os
import sys

from absl import app
from absl import flags
from absl import logging

from deeprx.core import workdir as workdir_lib

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


@contextlib.contextmanager
def settings(fallback):
    """Turns a config's SettingError into a FlagError naming its setting (each setting is the
    flag of the same name), any other ValueError into one naming `fallback`."""
    from deeprx.core.config import SettingError
    try:
        yield
    except SettingError as error:
        raise FlagError(error.setting, str(error)) from None
    except ValueError as error:
        raise FlagError(fallback, str(error)) from None


FLAGFILE = "--flagfile="


def expand_flagfiles(args, including=None, seen=()):
    """`args` with each --flagfile=PATH replaced by the flags in that file, recursively. A
    PATH on the command line is relative to the working directory; a --flagfile= line inside
    a flagfile is relative to the directory of the file that includes it, so flagfiles
    nest from any working directory. Lines starting with # or // are comments (as absl's)."""
    expanded = []
    for arg in args:
        if not arg.startswith(FLAGFILE):
            expanded.append(arg)
            continue
        path = arg[len(FLAGFILE):]
        if including is not None:
            path = os.path.join(os.path.dirname(including), path)
        where = " (included by %s; a nested flagfile is relative to the file that includes it)" % including \
            if including else ""
        if not os.path.isfile(path):
            raise FlagError("flagfile", "no file %s%s" % (path, where))
        if os.path.realpath(path) in seen:
            raise FlagError("flagfile", "%s includes itself%s" % (path, where))
        with open(path) as f:
            lines = [line.strip() for line in f]
        lines = [line for line in lines if line and not line.startswith(("#", "//"))]
        expanded += expand_flagfiles(lines, path, seen + (os.path.realpath(path),))
    return expanded


def check_out_dir(value, flag_name="out"):
    """FlagError unless `value` names an output directory (absent, to be created, or a
    directory): --out is a directory in every command."""
    if not value:
        raise FlagError(flag_name, "give the output directory")
    if os.path.exists(value) and not os.path.isdir(value):
        raise FlagError(flag_name, "%r exists and is not a directory (--%s is an output directory)"
                        % (value, flag_name))


def own_flags_text(flag_values=None):
    """The running command's own flags, one `--name=value` line each (the project's flags, not
    absl's or TensorFlow's): a run's record that replays as `--flagfile=`."""
    flag_values = flag_values or flags.FLAGS
    lines = set()
    for module, module_flags in flag_values.flags_by_module_dict().items():
        # absl files the flags of the module run with `python -m` under its path (sys.argv[0])
        if module in ("__main__", sys.argv[0]) or module.split(".")[0] == "deeprx":
            lines.update(flag.serialize() for flag in module_flags)
    return "\n".join(sorted(line for line in lines if line)) + "\n"


def _parse(argv):
    try:
        return flags.FLAGS(argv[:1] + expand_flagfiles(argv[1:]))
    except (FlagError, flags.Error) as error:
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
    """absl's app.run with one-line errors for unparsable flags, FlagError and workdir.Busy
    (every command that holds a directory holds its --workdir), after
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
        except workdir_lib.Busy as error:
            _fail(str(FlagError("workdir", str(error))))
    app.run(wrapped, flags_parser=_parse)
