"""Exports fixed-seed test slots for the device-side runner (edge/runner.py).

Example usage:
  python -m deeprx.export_vectors --preset=demo --out=edge_out   # writes edge_out/vectors.npz

For each SINR point of the preset's grid (or --sinr_db=LO:HI:STEP), --slots_per_point slots
of the test channels, drawn with the evaluation seed. The .npz format is in data/README.md:
float inputs, true bits, the data-RE mask, the SINR of each point, and a JSON `meta` string.
"""

import json
import os

import numpy as np
from absl import flags

from deeprx import cli
from deeprx.core import config as config_lib
from deeprx.cli import scenario_flags
from deeprx.core import provenance as provenance_lib
from deeprx.core import io as io_lib

FLAGS = flags.FLAGS
VECTORS_FILENAME = "vectors.npz"


def define_flags():
    """This command's flags (defined only when it runs, so that every module imports
    together in one process)."""
    flags.DEFINE_string("out", None, f"output directory: writes {VECTORS_FILENAME} there")
    flags.DEFINE_integer("slots_per_point", 16, "slots per SINR point")
    flags.DEFINE_string("sinr_db", None, "SINR grid LO:HI:STEP in dB (default: the preset's)")
    flags.DEFINE_integer("eval_seed", None, "the evaluation seed of the slots (default: the preset's)")
    scenario_flags.define_flags()


def export(preset_name, scenario, sinr_db, slots_per_point, seed, out, log=print):
    """Draws the slots and writes `out` atomically; returns the meta dict."""
    from deeprx.simulation import data as data_lib
    generator = data_lib.SlotGenerator(scenario, "test")
    inputs, bits = [], []
    for index, point in enumerate(sinr_db):
        batch = generator(slots_per_point, data_lib.slot_seed("vectors", seed, index), sinr_db=point)
        inputs.append(batch.inputs.numpy().astype(np.float32))
        bits.append(batch.bits.numpy().astype(np.uint8))
        log(f"[{index + 1:2d}/{len(sinr_db)}] SINR {point:6.1f} dB: {slots_per_point} slots", flush=True)
    meta = {"preset": preset_name, "scenario": config_lib.to_dict(scenario), "channel_set": "test",
            "seed": seed, "slots_per_point": slots_per_point, "grid_shape": list(scenario.grid_shape),
            "num_input_channels": scenario.num_input_channels, "channel_layout": config_lib.CHANNEL_LAYOUT,
            "bits_per_symbol": scenario.bits_per_symbol, "modulation": scenario.modulation,
            "num_dmrs": scenario.dmrs.num_symbols, **provenance_lib.provenance()}
    arrays = {"inputs": np.stack(inputs), "bits": np.stack(bits),
              "data_mask": data_lib.data_mask(scenario).astype(np.uint8),
              "sinr_db": np.asarray(sinr_db, np.float32), "meta": np.asarray(json.dumps(meta))}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)

    io_lib.atomic_write(out, lambda f: np.savez_compressed(f, **arrays), binary=True)
    return meta


def main(argv):
    del argv
    preset, scenario = scenario_flags.scenario_from_flags(FLAGS)
    cli.check_out_dir(FLAGS.out)
    if FLAGS.slots_per_point < 1:
        raise cli.FlagError("slots_per_point", f"must be >= 1, got {FLAGS.slots_per_point}")
    sinr_db = preset.evaluation.sinr_db
    if FLAGS.sinr_db:
        with cli.flag("sinr_db"):
            sinr_db = config_lib.parse_sinr_grid(FLAGS.sinr_db)
    seed = preset.evaluation.seed if FLAGS.eval_seed is None else FLAGS.eval_seed
    path = os.path.join(FLAGS.out, VECTORS_FILENAME)
    export(preset.name, scenario, sinr_db, FLAGS.slots_per_point, seed, path)
    print(f"Wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB)", flush=True)


if __name__ == "__main__":
    cli.run(main, define_flags)
