"""Benchmark (run on demand, not by the test suite): training throughput with the
in-graph Sionna slot generator vs the model alone on constant tensors.

Example usage (from the repository root, with nothing else running):
  python tests/benchmarks/train_throughput.py [--preset=demo] [--steps=40]

Prints slots/s of both, their ratio (reference: at least 0.9, i.e. drawing slots in the
graph costs at most 10% of the training rate) and the achieved training GFLOP/s
(counting a training step as 3 forward passes: forward, and backward at twice the
forward's FLOPs). Writes data/results/train-throughput/<preset>.json.
"""

import argparse
import os
import platform
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REFERENCE_RATIO = 0.9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--width_multiplier", type=float, default=0.5, help="teacher.flags' size")
    args = parser.parse_args()

    import tempfile
    import tensorflow as tf
    from deeprx.core import config
    from deeprx.network import model
    from deeprx.network import training
    from deeprx.simulation import data
    from deeprx.core import io as io_lib

    scenario = config.get_preset(args.preset).scenario
    model_config = model.DeepRxConfig(width_multiplier=args.width_multiplier)
    keras_model = model.build(model_config, scenario)
    train_config = config.TrainConfig(steps=10 ** 6, batch_size=args.batch_size)
    trainer = training.Trainer(keras_model, scenario, train_config, tempfile.mkdtemp(), log=lambda *a, **k: None)
    batch = trainer.generator(args.batch_size, seed=0)

    def rate(step_fn):
        for i in range(5):  # trace and warm up
            step_fn(i)
        start = time.perf_counter()
        for i in range(args.steps):
            loss = step_fn(i)
        float(loss["loss"])
        return args.steps * args.batch_size / (time.perf_counter() - start)

    with_generator = rate(lambda i: trainer._train_step(tf.constant(data.slot_seed("bench", i), tf.int64)))
    model_alone = rate(lambda i: trainer._update(batch.inputs, batch.bits, batch.data_mask))
    ratio = with_generator / model_alone
    flops = model.flops_per_slot(model_config, scenario)
    result = {
        "preset": args.preset, "batch_size": args.batch_size, "steps": args.steps,
        "width_multiplier": args.width_multiplier, "forward_flops_per_slot": flops,
        "slots_per_s_with_generator": round(with_generator, 2), "slots_per_s_model_alone": round(model_alone, 2),
        "ratio": round(ratio, 3), "reference_ratio": REFERENCE_RATIO,
        "training_gflops_per_s": round(3 * flops * with_generator / 1e9, 2),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
    }
    print(f"training, in-graph generator: {with_generator:.1f} slots/s")
    print(f"training, model alone:        {model_alone:.1f} slots/s")
    print(f"ratio {ratio:.3f} (reference >= {REFERENCE_RATIO}: {'met' if ratio >= REFERENCE_RATIO else 'NOT met'})")
    print(f"achieved {result['training_gflops_per_s']} GFLOP/s "
          f"({flops / 1e6:.0f} MFLOPs per slot forward, x3 for a training step)")
    out_dir = os.path.join(REPO, "data", "results", "train-throughput")
    os.makedirs(out_dir, exist_ok=True)
    io_lib.write_json(os.path.join(out_dir, f"{args.preset}.json"), result)


if __name__ == "__main__":
    main()
