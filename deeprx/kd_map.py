"""The student-size map: KD against scratch at several student sizes (issue 37), from one
published step-4 sweep per size (deeprx/experiments/kd_map.py says what it reads and writes).

Example usage:
  python -m deeprx.kd_map --sizes=data/results/kd-map-2dmrs/r0.03,data/results/kd-cpu-2dmrs \
      --teacher_name=teacher-cpu-2dmrs --out=data/results/kd-map-2dmrs

Writes OUT/kd_map.json, OUT/kd_map.md (the table) and OUT/kd_map.png (GM BER against student
MFLOPs, KD and scratch with 95% intervals over seeds; KD - scratch against size). A size
folder's conditions/NAME/ (a deeprx.evaluate output of its final students off the training
distribution, e.g. --interference_share=0.9) adds NAME to that size's comparison; its price/
(python -m deeprx.price of its students) adds their int8 and energy figures and
OUT/kd_map_pareto.png (GM BER against energy per inference, float and int8).
"""

import os

from absl import flags

from deeprx import cli
from deeprx.experiments import kd_map
from deeprx.core import io as io_lib

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_list("sizes", [], "published sweeps (deeprx.sweep --publish), one per student size")
    flags.DEFINE_string("teacher_name", "", "the teacher's name in the table and plot (e.g. teacher-cpu-2dmrs)")
    flags.DEFINE_string("teacher_price", None, "the teacher's python -m deeprx.price output (adds its int8 and "
                        "energy figures to the table and the Pareto plot)")
    flags.DEFINE_string("out", None, "output directory")


def main(argv):
    del argv
    cli.check_out_dir(FLAGS.out)
    with cli.flag("sizes"):
        missing = [folder for folder in FLAGS.sizes if not os.path.isfile(os.path.join(folder, "kd_summary.json"))]
        if missing:
            raise ValueError(f"no kd_summary.json in {', '.join(missing)}: give published sweeps "
                             "(deeprx.sweep --publish=DIR)")
        result = kd_map.build(FLAGS.sizes, FLAGS.teacher_name or "teacher")
    if FLAGS.teacher_price:
        with cli.flag("teacher_price"):
            result["teacher"]["int8"] = kd_map.teacher_price(FLAGS.teacher_price, result["teacher"]["name"])
    os.makedirs(FLAGS.out, exist_ok=True)
    io_lib.write_json(os.path.join(FLAGS.out, "kd_map.json"), result)
    table = kd_map.markdown(result)
    io_lib.atomic_write(os.path.join(FLAGS.out, "kd_map.md"), lambda f: f.write(table))
    kd_map.plot(result, os.path.join(FLAGS.out, "kd_map.png"),
                f"KD against scratch by student size: distilled from {result['teacher']['name']} "
                f"({result['teacher']['mflops']:.0f} MFLOPs per slot), {len(result['sizes'])} size(s)")
    written = ["kd_map.json", "kd_map.md", "kd_map.png"]
    if any(size.get("int8") for size in result["sizes"]):
        kd_map.pareto_plot(result, os.path.join(FLAGS.out, "kd_map_pareto.png"),
                           f"GM BER against energy per inference, students of {result['teacher']['name']} by size, "
                           "float and int8")
        written.append("kd_map_pareto.png")
    print(table, flush=True)
    print(f"Wrote {', '.join(os.path.join(FLAGS.out, name) for name in written)}", flush=True)


if __name__ == "__main__":
    cli.run(main, define_flags)
