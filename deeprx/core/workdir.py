"""Run directories of python -m deeprx.train: `RunDir` (settings, the model on a grid,
finished or not, its name), whether a workdir can take a run's settings, and `hold`, one
process at a time in a working directory."""

import contextlib
import json
import os

from deeprx import REPO_ROOT
from deeprx.core import config as config_lib
from deeprx.core import kd_config
from deeprx.core import io as io_lib

MODEL_FILENAME = "model.keras"

# Shipped, trained models: `pretrained:NAME` names the directory data/models/NAME.
PRETRAINED_PREFIX = "pretrained:"
MODELS_DIR = os.path.join(REPO_ROOT, "data", "models")

# Settings a resumed run may change: it only trains longer or logs differently.
RESUMABLE_CHANGES = ("steps", "checkpoint_every", "log_every", "curve_every")


def shipped_models():
    """Names of the models shipped in data/models (directories holding a model.keras)."""
    if not os.path.isdir(MODELS_DIR):
        return []
    return sorted(name for name in os.listdir(MODELS_DIR)
                  if os.path.isfile(os.path.join(MODELS_DIR, name, MODEL_FILENAME)))


def resolve(spec):
    """The model directory `spec` names: data/models/NAME for 'pretrained:NAME' (ValueError,
    listing the shipped names, when there is none), any other spec unchanged."""
    if not spec or not spec.startswith(PRETRAINED_PREFIX):
        return spec
    name = spec[len(PRETRAINED_PREFIX):]
    path = os.path.join(MODELS_DIR, name)
    if not os.path.isfile(os.path.join(path, MODEL_FILENAME)):
        raise ValueError(f"no shipped model {name!r}; shipped: {', '.join(shipped_models()) or 'none'} "
                         f"(in {MODELS_DIR})")
    return path


class Busy(RuntimeError):
    """Another live process holds a working directory (`hold`)."""


@contextlib.contextmanager
def hold(directory, what):
    """One `what` (a training, a sweep driver) at a time in `directory` (made if missing): an
    exclusive flock on the directory itself (no file is written), released when the block ends
    or its process dies, however it dies. Busy if another process holds it. Where the file
    system cannot lock (some network file systems), the block runs without the lock."""
    import fcntl
    os.makedirs(directory, exist_ok=True)
    handle = os.open(directory, os.O_RDONLY)  # not inherited by child processes
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"{directory} is in use by another {what} (`pgrep -af {directory}` finds it): wait for "
                       "it to end or stop it, then rerun") from None
        except OSError:
            pass
        yield
    finally:
        os.close(handle)


def run_config_dict(preset_name, scenario, model_config, train_config):
    return {"preset": preset_name, "scenario": config_lib.to_dict(scenario),
            "model": config_lib.to_dict(model_config), "train": config_lib.to_dict(train_config)}


def check_workdir(workdir, run_config):
    """Raises ValueError if `workdir` is a file or holds a run of other settings
    (everything but the step count, checkpoint and log intervals must match).
    run_config: built from config.to_dict entries, as run_config_dict does."""
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ValueError(f"{workdir!r} exists and is not a directory")
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        return
    with open(path) as f:
        saved = json.load(f)
    if _comparable(saved) != _comparable(run_config):
        raise ValueError(f"{workdir!r} holds a run with other settings (see its config.json); "
                         "use another --workdir or the same flags")


def _comparable(run_config):
    # Settings added since a run was saved take their defaults, which are the earlier behaviour.
    train = {**config_lib.to_dict(config_lib.TrainConfig()), **run_config["train"]}
    train = {k: v for k, v in train.items() if k not in RESUMABLE_CHANGES}
    if run_config.get("kd"):
        run_config = {**run_config, "kd": {**config_lib.to_dict(kd_config.KD_DEFAULTS), **run_config["kd"]}}
    return {**run_config, "train": train}


class RunDir:
    """A run directory of python -m deeprx.train, or a shipped model (`pretrained:NAME`):
    what it holds and how to use its model. Reading is lazy: a RunDir of a run that has
    not started yet is fine until its settings are asked for."""

    def __init__(self, spec):
        self.spec = spec
        self.path = resolve(spec)

    @property
    def name(self):
        """Its receiver name in ber.csv and summary.json (deeprx.train names the model after its workdir)."""
        if self.spec.startswith(PRETRAINED_PREFIX):
            return self.spec[len(PRETRAINED_PREFIX):]
        return os.path.basename(os.path.normpath(self.path))

    def file(self, *parts):
        return os.path.join(self.path, *parts)

    def has_model(self):
        return all(os.path.isfile(self.file(name)) for name in (MODEL_FILENAME, "config.json"))

    def eval_file(self, name):
        """A file of its final evaluation: eval/NAME in a run directory, NAME in a shipped model
        (deeprx.ship copies them up beside MODEL.md)."""
        return self.file(name) if os.path.isfile(self.file("MODEL.md")) else self.file("eval", name)

    def finished(self):
        """Trained and evaluated: model.keras, train.json and its evaluation's summary.json are
        there (a shipped model always is)."""
        return all(os.path.isfile(path) for path in (self.file(MODEL_FILENAME), self.file("train.json"),
                                                     self.eval_file("summary.json")))

    @property
    def settings(self):
        """The run settings it saved (config.json)."""
        with open(self.file("config.json")) as f:
            return json.load(f)

    @property
    def num_dmrs(self):
        return self.settings["scenario"]["dmrs"]["num_symbols"]

    def check(self, scenario):
        """ValueError unless it holds a trained model (model.keras + config.json) that runs on
        `scenario` (its training scenario but for the PRB count)."""
        for name in (MODEL_FILENAME, "config.json"):
            if not os.path.isfile(self.file(name)):
                raise ValueError(f"no {name} in {self.path!r}: give a directory of python -m deeprx.train")
        check_grid_change(self.settings["scenario"], scenario)

    def result(self):
        """Its evaluation summary (gm_ber, sinr_at_ber_1e-2, ...) with its parameters, FLOPs per slot
        and the loss shares of its last progress line (kd_share, feature_share: None if not logged)."""
        with open(self.eval_file("summary.json")) as f:
            summary = json.load(f)[self.name]
        with open(self.file("train.json")) as f:
            trained = json.load(f)
        return {**summary, "parameters": trained["parameters"], "flops_per_slot": trained["flops_per_slot"],
                **{share: trained.get(f"final_{share}") for share in ("kd_share", "feature_share")}}

    def ber_rows(self, receivers=None):
        """Its evaluation's ber.csv rows, of its own model or of `receivers`."""
        rows = io_lib.read_csv(self.eval_file("ber.csv"))
        return [row for row in rows if row["receiver"] in (receivers or (self.name,))]


# What a scenario draws slots from, not what shapes the model's input and output: an evaluation
# off the training distribution may change these (another channel family, a stronger interferer).
DISTRIBUTION_FIELDS = ("channel", "snr_db", "interferer")


def check_grid_change(trained_scenario, scenario, off_distribution=False):
    """ValueError unless `scenario` is the trained scenario (a config.json entry) but for the
    number of PRB (the fully convolutional DeepRx runs on any number of subcarriers) and, with
    `off_distribution`, the channel, SNR and interferer the slots are drawn from."""
    trained = dict(trained_scenario, carrier=dict(trained_scenario["carrier"]))
    wanted = config_lib.to_dict(scenario)
    trained["carrier"].pop("num_prb")
    wanted["carrier"].pop("num_prb")
    differ = sorted(k for k in trained if trained[k] != wanted[k])
    if off_distribution:
        differ = [k for k in differ if k not in DISTRIBUTION_FIELDS]
    if differ:
        hint = ("; to score it off its training distribution, add --off_distribution"
                if set(differ) <= set(DISTRIBUTION_FIELDS) else "")
        raise ValueError(f"the model was trained on another scenario ({', '.join(differ)} differ): use the preset "
                         f"and overrides it was trained with (only the PRB count may change){hint}")
