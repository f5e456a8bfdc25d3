"""Energy estimates without running anything: per-layer costs, the paper's metrics (0), (1)
and (2), processors, and training-vs-inference amortization (PAPER.md sections 2-3).

Pure Python on the model plan (deeprx/network/model.py): no TensorFlow.

Per layer of one inference (one slot): FLOPs (model.py's conventions), MACs (the
multiply-accumulates of conv and depthwise layers; FLOPs / 2 elsewhere, as Lahmer et al.
count), weight bytes read and activation bytes moved (inputs read + output written), at
4 bytes per value for float32 and 1 for int8.
Metric (0): E = FLOPs / (peak FLOP/s / power) = FLOPs x power / peak.
Metric (1): E = kappa N f^3 D, D = W / (S N f): switched capacitance kappa, N cores, clock f,
  W FLOPs per inference, S FLOPs per clock per core.
Metric (2) (Lahmer et al.): E = sum over conv layers M (a / d0 + b), M the layer's MACs,
  d0 its input features (channels in); a and b are fitted (least squares) on measured
  per-layer energy of one machine, and fit on conv and depthwise layers only.
"""

import csv
import dataclasses
import os
from typing import List

from deeprx import REPO_ROOT
from deeprx.network import model as model_lib

BYTES_PER_VALUE = {"float32": 4, "int8": 1}
PROCESSORS_CSV = os.path.join(REPO_ROOT, "data", "processors.csv")
PROCESSOR_COLUMNS = ("name", "kind", "peak_ops_per_s", "power_w", "precision", "source")
SECONDS_PER_DAY = 86400.0


def layer_cost(layer, precision="float32") -> dict:
    """One plan layer's costs: name, kind, block, flops, macs, params, weight_bytes,
    activation_bytes, input_features."""
    size = BYTES_PER_VALUE[precision]
    positions = layer.height * layer.width
    inputs = 2 if layer.kind == "add" else 1
    weights = layer.params if layer.kind != "bn" else 2 * layer.channels_out  # BN at inference: scale, shift
    return {"layer": layer.name, "kind": layer.kind, "block": layer.block, "flops": layer.flops,
            "macs": layer.macs or layer.flops // 2, "params": layer.params, "weight_bytes": weights * size,
            "activation_bytes": (inputs * layer.channels_in + layer.channels_out) * positions * size,
            "input_features": layer.channels_in}


def layer_costs(model_config, scenario, precision="float32") -> List[dict]:
    """layer_cost of every layer of the plan, in order."""
    return [layer_cost(layer, precision) for layer in model_lib.plan(model_config, scenario)]


def by_block(rows, fields=("flops", "macs", "params", "weight_bytes", "activation_bytes")) -> List[dict]:
    """Sums of `fields` per block, in the order blocks first appear."""
    blocks = {}
    for row in rows:
        entry = blocks.setdefault(row["block"], {"block": row["block"], **{f: 0 for f in fields}})
        for field in fields:
            entry[field] += row[field]
    return list(blocks.values())


@dataclasses.dataclass(frozen=True)
class Processor:
    name: str
    kind: str
    peak_ops_per_s: float  # FLOP/s (float32) or OP/s (int8)
    power_w: float
    precision: str
    source: str

    def metric0_j(self, flops):
        """Metric (0): energy of `flops` operations at the processor's peak efficiency."""
        return flops * self.power_w / self.peak_ops_per_s


def read_processors(path=PROCESSORS_CSV) -> List[Processor]:
    if not os.path.isfile(path):
        raise ValueError(f"no processor table at {path}")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = set(PROCESSOR_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path} lacks the columns {', '.join(sorted(missing))}")
        processors = []
        for number, row in enumerate(reader, start=2):
            try:
                processor = Processor(row["name"], row["kind"], float(row["peak_ops_per_s"]), float(row["power_w"]),
                                      row["precision"], row["source"])
            except ValueError:
                raise ValueError(f"{path} line {number}: peak_ops_per_s and power_w must be numbers") from None
            if processor.peak_ops_per_s <= 0 or processor.power_w <= 0 or processor.precision not in BYTES_PER_VALUE:
                raise ValueError(f"{path} line {number}: peak and power must be positive, precision one of "
                                 f"{', '.join(BYTES_PER_VALUE)}")
            processors.append(processor)
    return processors


def find_processor(processors, name) -> Processor:
    for processor in processors:
        if processor.name == name:
            return processor
    raise ValueError(f"unknown processor {name!r}: the table has {', '.join(p.name for p in processors)}")


def metric1_j(flops, kappa, cores, clock_hz, flops_per_clock):
    """Metric (1): kappa N f^3 D with D = W / (S N f) (seconds)."""
    for name, value in (("kappa", kappa), ("cores", cores), ("clock_hz", clock_hz),
                        ("flops_per_clock", flops_per_clock)):
        if not value > 0:
            raise ValueError(f"metric (1) needs a positive {name}, got {value}")
    seconds = flops / (flops_per_clock * cores * clock_hz)
    return kappa * cores * clock_hz ** 3 * seconds


def fit_lahmer(rows, joules):
    """(a, b) of metric (2) by least squares on conv/depthwise `rows` (layer_costs) and their
    measured energies (J); raises ValueError with fewer than two such layers."""
    import numpy as np
    pairs = [(row, energy) for row, energy in zip(rows, joules) if row["kind"] in ("conv", "depthwise")]
    if len(pairs) < 2:
        raise ValueError("metric (2) needs the measured energy of at least two conv layers to fit a and b")
    design = np.array([[row["macs"] / row["input_features"], row["macs"]] for row, _ in pairs], float)
    target = np.array([energy for _, energy in pairs], float)
    (a, b), *_ = np.linalg.lstsq(design, target, rcond=None)
    return float(a), float(b)


def metric2_j(rows, a, b):
    """Metric (2) (Lahmer): sum over conv/depthwise layers of M (a / d0 + b)."""
    return sum(row["macs"] * (a / row["input_features"] + b) for row in rows if row["kind"] in ("conv", "depthwise"))


def amortization(training_j_per_step, training_steps, inference_j, rate_per_s):
    """Training energy against inference energy: the break-even number of inferences (when
    the inferences have used as much energy as the training) and the time it takes at `rate_per_s`."""
    if not inference_j > 0 or not rate_per_s > 0:
        raise ValueError("break-even needs a positive energy per inference and rate")
    training_j = training_j_per_step * training_steps
    inferences = training_j / inference_j
    return {"training_j_per_step": training_j_per_step, "training_steps": training_steps,
            "training_j": training_j, "inference_j": inference_j, "rate_per_s": rate_per_s,
            "break_even_inferences": inferences, "break_even_seconds": inferences / rate_per_s,
            "break_even_days": inferences / rate_per_s / SECONDS_PER_DAY}


def amortized_training_j_per_inference(training_j, inferences):
    """The training energy shared over `inferences` inferences."""
    return training_j / inferences


# The paper's own example (PAPER.md section 2): its claim and the inputs to recompute it from.
PAPER_EXAMPLE = {"inference_j": 2e-3, "training_j_per_step": 20.0, "training_steps": 250_000, "rate_per_s": 400.0,
                 "claimed_break_even_inferences": 1e5, "claimed_break_even": "about ten minutes at 400 inferences/s"}


def paper_break_even():
    example = PAPER_EXAMPLE
    return {**amortization(example["training_j_per_step"], example["training_steps"], example["inference_j"],
                           example["rate_per_s"]),
            "claimed_break_even_inferences": example["claimed_break_even_inferences"],
            "claimed_break_even": example["claimed_break_even"]}
