"""Scenario and evaluation settings: frozen dataclasses, validated once, and presets.

Nothing here imports TensorFlow or Sionna, so configs can be built, checked and
printed anywhere (CLI flag checks, the edge side, notebooks).

SINR definition used everywhere in this project: per resource element and receive
antenna, averaged over one slot,

    SINR = E|h x|^2 / (E|h_I x_I|^2 + N0)

where both the wanted and the interfering channel are normalized to unit average
energy per resource element and receive antenna over the slot, and the transmitted
symbols have unit average energy. So signal power is 1, interference power is
10^(-SIR/10), noise power is N0 = 10^(-SNR/10), and
SINR = 1 / (10^(-SIR/10) + 10^(-SNR/10)).
"""

import dataclasses
import json
import math
import typing
from typing import Optional, Tuple

MODULATIONS = {"qpsk": 2, "16qam": 4, "64qam": 6, "256qam": 8}
CHANNEL_FAMILIES = ("tdl", "cdl", "awgn")
CHANNEL_MODELS = ("A", "B", "C", "D", "E")
CHANNEL_SETS = ("train", "test")
SUBCARRIERS_PER_PRB = 12
# 5G NR PUSCH mapping type A, 14-symbol slot: first DMRS at l0 = 2, the additional
# one (dmrs-AdditionalPosition = pos1) at l = 11 (TS 38.211 Table 6.4.1.1.3-3).
DMRS_POSITIONS = {1: (2,), 2: (2, 11)}
# Normal cyclic prefix: 144 samples per 2048-sample symbol (TS 38.211 5.3.1).
CYCLIC_PREFIX_RATIO = 144.0 / 2048.0
# The model input's real channels, last axis (deeprx.simulation.data.Batch): Y received grid, Xp pilot
# grid, Hr = Y * conj(Xp) the raw LS estimate at pilot REs.
CHANNEL_LAYOUT = "Re Y_0..Y_{N-1}, Im Y_0..Y_{N-1}, Re Xp, Im Xp, Re Hr_0..Hr_{N-1}, Im Hr_0..Hr_{N-1}"


class SettingError(ValueError):
    """A bad setting of a config: `setting` names it (as its command-line flag does), the message
    says what is wrong. A CLI turns it into a one-line error about that flag."""

    def __init__(self, setting, message):
        super().__init__(message)
        self.setting = setting


def _check_range(name, value, low=-math.inf, high=math.inf):
    """Checks that `value` is a (lo, hi) pair with low <= lo <= hi <= high."""
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, (int, float)) for v in value)):
        raise SettingError(name, f"{name} must be a (low, high) pair of numbers, got {value!r}")
    lo, hi = value
    if not (low <= lo <= hi <= high):
        raise SettingError(name, f"{name} must satisfy {low} <= low <= high <= {high}, got {value!r}")


def _check_choice(name, value, choices):
    if value not in choices:
        raise SettingError(name, f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class CarrierConfig:
    """OFDM numerology of one uplink slot."""
    subcarrier_spacing_khz: int = 30
    num_prb: int = 4
    num_ofdm_symbols: int = 14

    def __post_init__(self):
        _check_choice("subcarrier_spacing_khz", self.subcarrier_spacing_khz, (15, 30))
        if not isinstance(self.num_prb, int) or not 1 <= self.num_prb <= 275:
            raise SettingError("num_prb", f"num_prb must be an integer in 1..275, got {self.num_prb!r}")
        _check_choice("num_ofdm_symbols", self.num_ofdm_symbols, (14,))

    @property
    def num_subcarriers(self) -> int:
        return SUBCARRIERS_PER_PRB * self.num_prb

    @property
    def subcarrier_spacing_hz(self) -> float:
        return 1e3 * self.subcarrier_spacing_khz

    @property
    def ofdm_symbol_duration_s(self) -> float:
        """Duration of one OFDM symbol including its normal cyclic prefix."""
        return (1.0 + CYCLIC_PREFIX_RATIO) / self.subcarrier_spacing_hz


@dataclasses.dataclass(frozen=True)
class DMRSConfig:
    """5G NR DMRS configuration type 1, single port: a comb on every other subcarrier.

    Pilots occupy the even subcarriers (CDM group 0) of the DMRS symbols; the odd
    subcarriers of those symbols carry nothing (two CDM groups without data), so data
    resource elements are exactly the REs of the non-DMRS symbols.
    """
    num_symbols: int = 1
    scrambling_id: int = 0

    def __post_init__(self):
        _check_choice("num_dmrs", self.num_symbols, tuple(DMRS_POSITIONS))
        if not isinstance(self.scrambling_id, int) or not 0 <= self.scrambling_id < 65535:
            raise ValueError(f"dmrs scrambling_id must be in 0..65534, got {self.scrambling_id!r}")

    @property
    def positions(self) -> Tuple[int, ...]:
        return DMRS_POSITIONS[self.num_symbols]


@dataclasses.dataclass(frozen=True)
class ChannelConfig:
    """3GPP TR 38.901 CDL/TDL fading with per-slot random delay spread and UE speed.

    `train_models` and `test_models` must be disjoint: the test set holds channel
    models never seen in training. `awgn` is a flat unit channel, for checks.
    """
    family: str = "tdl"
    train_models: Tuple[str, ...] = ("B", "C", "D")
    test_models: Tuple[str, ...] = ("A", "E")
    delay_spread_ns: Tuple[float, float] = (10.0, 300.0)
    speed_mps: Tuple[float, float] = (0.0, 40.0)
    carrier_frequency_hz: float = 3.5e9

    def __post_init__(self):
        _check_choice("channel", self.family, CHANNEL_FAMILIES)
        for name in ("train_models", "test_models"):
            models = getattr(self, name)
            if not isinstance(models, tuple) or not models:
                raise SettingError(name, f"{name} must be a non-empty tuple of models, got {models!r}")
            for model in models:
                _check_choice(name, model, CHANNEL_MODELS)
        common = set(self.train_models) & set(self.test_models)
        if common:
            raise ValueError(f"train_models and test_models must be disjoint, both hold {sorted(common)}")
        _check_range("delay_spread_ns", self.delay_spread_ns, 0.0, 5000.0)
        _check_range("speed_mps", self.speed_mps, 0.0, 500.0)
        if not 0.4e9 <= self.carrier_frequency_hz <= 100e9:
            raise SettingError("carrier_frequency_hz", f"carrier_frequency_hz must be in 0.4e9..100e9, got {self.carrier_frequency_hz!r}")

    def models(self, channel_set: str) -> Tuple[str, ...]:
        _check_choice("channel_set", channel_set, CHANNEL_SETS)
        return self.train_models if channel_set == "train" else self.test_models


@dataclasses.dataclass(frozen=True)
class InterfererConfig:
    """One co-channel user: its own random data and DMRS (another scrambling id)
    through its own independent channel, at a signal-to-interference ratio drawn
    uniformly from `sir_db` for each slot."""
    sir_db: Tuple[float, float] = (10.0, 30.0)

    def __post_init__(self):
        _check_range("sir_db", self.sir_db, -20.0, 100.0)


@dataclasses.dataclass(frozen=True)
class ScenarioConfig:
    """Everything the slot generator, the receivers and the model need to agree on."""
    carrier: CarrierConfig = CarrierConfig()
    modulation: str = "16qam"
    dmrs: DMRSConfig = DMRSConfig()
    num_rx: int = 2
    channel: ChannelConfig = ChannelConfig()
    snr_db: Tuple[float, float] = (-4.0, 32.0)
    interferer: Optional[InterfererConfig] = InterfererConfig()

    def __post_init__(self):
        _check_choice("modulation", self.modulation, tuple(MODULATIONS))
        _check_choice("num_rx", self.num_rx, (1, 2, 4))
        _check_range("snr_db", self.snr_db, -30.0, 200.0)

    @property
    def bits_per_symbol(self) -> int:
        return MODULATIONS[self.modulation]

    @property
    def grid_shape(self) -> Tuple[int, int]:
        """(OFDM symbols, subcarriers) of one slot."""
        return (self.carrier.num_ofdm_symbols, self.carrier.num_subcarriers)

    @property
    def num_input_channels(self) -> int:
        """Real channels of the model input: Y (num_rx), pilots (1), raw LS (num_rx), re+im."""
        return 2 * (2 * self.num_rx + 1)

    @property
    def data_bits_per_slot(self) -> int:
        data_symbols = self.carrier.num_ofdm_symbols - self.dmrs.num_symbols
        return data_symbols * self.carrier.num_subcarriers * self.bits_per_symbol


def parse_sinr_grid(text: str) -> Tuple[float, ...]:
    """Parses 'LO:HI:STEP' (HI included when on the grid) into SINR points in dB."""
    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError(f"expected LO:HI:STEP, got {text!r}")
    try:
        lo, hi, step = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f"expected three numbers LO:HI:STEP, got {text!r}") from None
    if step <= 0:
        raise ValueError(f"STEP must be positive, got {text!r}")
    if hi < lo:
        raise ValueError(f"range is inverted (HI < LO) in {text!r}")
    count = int(math.floor((hi - lo) / step + 1e-9)) + 1
    return tuple(round(lo + i * step, 6) for i in range(count))


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """BER-vs-SINR evaluation: the SINR grid and when each point stops.

    A point stops once every receiver has `target_bit_errors` errors (and, coded,
    `target_block_errors` block errors: a BLER estimate needs its own error count, which bit
    errors clustered in a few blocks do not give) or once `max_bits` data bits have been
    simulated, whichever comes first.
    """
    sinr_db: Tuple[float, ...] = parse_sinr_grid("-4:24:2")
    channel_set: str = "test"
    batch_size: int = 64
    target_bit_errors: int = 500
    max_bits: int = 1_000_000
    seed: int = 1
    coded: bool = False     # one 5G LDPC transport block per slot at `coderate`: BLER beside BER
    coderate: float = 0.5
    target_block_errors: int = 100  # coded only
    # None: the interferer keeps its drawn SIR, capped at MAX_INTERFERENCE_SHARE of the
    # impairment (noise-limited points). A share in (0, 1): at every point the interferer
    # takes exactly that share of the interference-plus-noise power (interference-limited
    # points: 0.9 is an interferer 9.5 dB above the noise), the SINR axis still the total.
    interference_share: Optional[float] = None

    def __post_init__(self):
        if self.interference_share is not None and not 0.0 < self.interference_share < 1.0:
            raise SettingError("interference_share", f"interference_share must be in (0, 1), got {self.interference_share!r}")
        if not 0.0 < self.coderate < 1.0:
            raise SettingError("coderate", f"coderate must be in (0, 1), got {self.coderate!r}")
        if not self.sinr_db:
            raise SettingError("sinr_db", "sinr_db must hold at least one SINR point")
        if list(self.sinr_db) != sorted(set(self.sinr_db)):
            raise SettingError("sinr_db", f"sinr_db must be strictly increasing, got {self.sinr_db!r}")
        _check_choice("channel_set", self.channel_set, CHANNEL_SETS)
        for name in ("batch_size", "target_bit_errors", "max_bits", "target_block_errors"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise SettingError(name, f"{name} must be a positive integer, got {value!r}")


SINR_SAMPLINGS = ("snr_sir", "sinr")
OPTIMIZERS = ("adam", "lamb")
SCHEDULES = ("cosine", "flat_linear")
# flat_linear: the learning rate stays at its peak until this fraction of the steps, then
# falls linearly (the DeepRx paper's warm-up, flat, linear decay).
FLAT_FRACTION = 0.5
# A training SINR range derived from an evaluation grid extends it by this much each side.
TRAIN_SINR_MARGIN_DB = 4.0


def train_sinr_range(evaluation: "EvalConfig") -> Tuple[float, float]:
    """The training SINR range that covers `evaluation`'s grid with TRAIN_SINR_MARGIN_DB each side."""
    return (min(evaluation.sinr_db) - TRAIN_SINR_MARGIN_DB, max(evaluation.sinr_db) + TRAIN_SINR_MARGIN_DB)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimization settings and the training distribution.

    Learning rate: linear warm-up over `warmup_steps`, then (schedule "cosine") cosine
    decay to `final_lr_fraction` x `learning_rate` at `steps`, or ("flat_linear") flat
    until FLAT_FRACTION of the steps, then linear decay to the same end.
    sinr_sampling: "snr_sir" draws each slot's SNR from the scenario's `snr_db` and the
      interferer's SIR from its `sir_db` independently; "sinr" draws the slot's SINR
      uniformly from `train_sinr_db` and splits it between interference and noise with
      the evaluation's rule (deeprx.simulation.data.SlotGenerator with `sinr_db`).
    aux_channel_weight: weight of an auxiliary loss, the mean squared error of a channel
      estimate read out of the network's last features by a 1x1 conv (training only).
    train_num_prb: train on this many PRB (the fully convolutional model runs on the
      scenario's grid afterwards); None trains on the scenario's grid.
    curve_every: steps between learning-curve points (Geometric Mean BER on fixed test
      slots, curve.csv); 0 for none.
    The defaults are the recipe of runs made before these settings existed, so their
    saved settings still compare equal (deeprx.core.workdir).
    """
    steps: int = 2000
    batch_size: int = 16
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    final_lr_fraction: float = 0.01
    checkpoint_every: int = 500
    log_every: int = 50
    seed: int = 0
    xla: bool = False
    optimizer: str = "adam"
    schedule: str = "cosine"
    sinr_sampling: str = "snr_sir"
    train_sinr_db: Optional[Tuple[float, float]] = None
    aux_channel_weight: float = 0.0
    train_num_prb: Optional[int] = None
    curve_every: int = 0

    def __post_init__(self):
        for name in ("steps", "batch_size", "checkpoint_every", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise SettingError(name, f"{name} must be a positive integer, got {value!r}")
        if not self.learning_rate > 0:
            raise SettingError("learning_rate", f"learning_rate must be positive, got {self.learning_rate!r}")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise SettingError("warmup_steps", f"warmup_steps must be a non-negative integer, got {self.warmup_steps!r}")
        if not 0 <= self.final_lr_fraction <= 1:
            raise SettingError("final_lr_fraction", f"final_lr_fraction must be in [0, 1], got {self.final_lr_fraction!r}")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:  # it seeds NumPy, TF and Python
            raise SettingError("seed", f"seed must be an integer in [0, 2**32 - 1], got {self.seed!r}")
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_choice("sinr_sampling", self.sinr_sampling, SINR_SAMPLINGS)
        if self.sinr_sampling == "sinr":
            _check_range("train_sinr_db", self.train_sinr_db, -30.0, 200.0)
        elif self.train_sinr_db is not None:
            raise SettingError("train_sinr_db", "train_sinr_db is only used with sinr_sampling 'sinr', got "
                             f"{self.train_sinr_db!r} with {self.sinr_sampling!r}")
        if not self.aux_channel_weight >= 0:
            raise SettingError("aux_channel_weight", f"aux_channel_weight must be >= 0, got {self.aux_channel_weight!r}")
        if self.train_num_prb is not None and (not isinstance(self.train_num_prb, int)
                                               or not 1 <= self.train_num_prb <= 275):
            raise SettingError("train_num_prb", f"train_num_prb must be an integer in 1..275, got {self.train_num_prb!r}")
        if not isinstance(self.curve_every, int) or self.curve_every < 0:
            raise SettingError("curve_every", f"curve_every must be a non-negative integer, got {self.curve_every!r}")




@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    description: str
    scenario: ScenarioConfig
    evaluation: EvalConfig


PRESETS = {
    "tiny": Preset(
        "tiny", "tests and CI: 2 PRB, seconds per run",
        ScenarioConfig(carrier=CarrierConfig(num_prb=2)),
        EvalConfig(sinr_db=parse_sinr_grid("-4:20:8"), batch_size=16,
                   target_bit_errors=100, max_bits=20_000)),
    "demo": Preset(
        "demo", "minutes on 2 CPU cores: 4 PRB",
        ScenarioConfig(carrier=CarrierConfig(num_prb=4)),
        EvalConfig(sinr_db=parse_sinr_grid("-4:24:2"), batch_size=64,
                   target_bit_errors=300, max_bits=300_000)),
    "cpu": Preset(
        "cpu", "the committed results, hour-scale on 2 CPU cores: 8 PRB",
        ScenarioConfig(carrier=CarrierConfig(num_prb=8)),
        EvalConfig(sinr_db=parse_sinr_grid("-4:28:2"), batch_size=64,
                   target_bit_errors=1000, max_bits=10_000_000)),
    "paper": Preset(
        "paper", "the paper's grid (26 PRB, 256-QAM, CDL), meant for GPU users",
        ScenarioConfig(carrier=CarrierConfig(num_prb=26), modulation="256qam",
                       channel=ChannelConfig(family="cdl")),
        EvalConfig(sinr_db=parse_sinr_grid("-4:36:2"), batch_size=64,
                   target_bit_errors=1000, max_bits=10_000_000)),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def to_dict(config) -> dict:
    """A JSON-ready dict of any of the configs above, shaped as it reads back from JSON
    (tuples become lists), so it compares equal to a saved config.json entry."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def from_dict(cls, data):
    """The config `cls` (any dataclass above) from its to_dict form, e.g. a saved config.json
    entry: nested configs rebuilt, lists back to tuples, fields the dict lacks (saved before
    they existed) at their defaults, validated as when built by hand."""
    def value(kind, item):
        if item is None:
            return None
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if typing.get_origin(kind) is typing.Union:
            return value(args[0], item)
        if dataclasses.is_dataclass(kind):
            return from_dict(kind, item)
        if typing.get_origin(kind) is tuple:
            return tuple(value(args[0], x) for x in item) if len(args) == 1 or Ellipsis in args else tuple(item)
        return item
    fields = {f.name: f.type for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {', '.join(sorted(unknown))}")
    return cls(**{name: value(fields[name], item) for name, item in data.items()})
