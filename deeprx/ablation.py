"""Training-recipe ablation: one `deeprx.train` run per arm, learning curves side by side.

Example usage (from the repository root):
  nohup python -m deeprx.ablation --arms=data/results/training-ablation/arms \
      --workdir=runs/training-ablation --out=data/results/training-ablation > runs/ablation.log 2>&1 &

Each arm is a flagfile of deeprx.train (it includes a base recipe and changes one lever) and
must set --curve_every. Arms train `--parallel` at a time (one TensorFlow thread each on 2
cores, as the KD sweep does), in DIR/runs/<arm>; a finished arm is skipped and an interrupted
one resumes, so the same command continues. Then --out gets:
  curves.csv  every arm's learning-curve points (deeprx.network.curves): step, slots seen, training
              wall-clock, Geometric Mean BER on the fixed test slots
  arms.csv    per arm: its flags beyond the base recipe, slots/s, the last curve point, and
              the final evaluation's GM BER of the arm, ls_lmmse and perfect_lmmse
  curves.png  GM BER against slots seen and against training wall-clock
"""

import glob
import os

from absl import flags

from deeprx import cli
from deeprx.core import jobs
from deeprx.network import curves
from deeprx.core import io as io_lib
from edge import ber as ber_lib

FLAGS = flags.FLAGS


def define_flags():
    """This command's flags (defined only when it runs, so that every module imports
    together in one process)."""
    flags.DEFINE_string("arms", None, "directory of arm flagfiles (*.flags), or a comma-separated list of them")
    flags.DEFINE_string("workdir", None, "directory of the arms' runs and logs (reused to resume)")
    flags.DEFINE_string("out", None, "directory for curves.csv, arms.csv and curves.png")
    flags.DEFINE_integer("parallel", 2, "arms trained at a time")


CURVE_COLUMNS = ("arm", "step", "slots_seen", "train_seconds", "loss", "gm_ber")
ARM_COLUMNS = ("arm", "flags", "steps", "slots_seen", "train_seconds", "slots_per_s", "curve_gm_ber",
               "gm_ber", "ls_lmmse_gm_ber", "perfect_lmmse_gm_ber")


def arm_files(spec):
    """The arm flagfiles `spec` names, in name order; ValueError if there are none or one is missing."""
    paths = sorted(glob.glob(os.path.join(spec, "*.flags"))) if os.path.isdir(spec) else spec.split(",")
    if not paths:
        raise ValueError(f"no *.flags in {spec!r}")
    for path in paths:
        if not os.path.isfile(path):
            raise ValueError(f"no arm flagfile {path!r}")
    return paths


def arm_flags(path):
    """The flags an arm file sets itself (its lines but comments and included flagfiles)."""
    with open(path) as f:
        lines = [line.strip() for line in f]
    return [line for line in lines if line and not line.startswith("#") and not line.startswith("--flagfile")]


def arm_runs(paths, workdir):
    runs = []
    for path in paths:
        name = os.path.splitext(os.path.basename(path))[0]
        if "--curve_every" not in " ".join(arm_flags(path)):
            raise ValueError(f"arm {path!r} sets no --curve_every: an arm needs a learning curve")
        run_dir = os.path.join(workdir, "runs", name)
        runs.append(jobs.TrainRun(name, run_dir, (f"--flagfile={path}", f"--workdir={run_dir}"), "arm"))
    return runs


def collect(runs, paths):
    """(curves.csv rows, arms.csv rows) of finished arms."""
    curve_rows, arm_rows = [], []
    for run, path in zip(runs, paths):
        points = io_lib.read_csv(os.path.join(run.workdir, curves.CURVE_FILENAME))
        curve_rows += [dict({k: point[k] for k in CURVE_COLUMNS[1:]}, arm=run.name) for point in points]
        # The summary of the final evaluation's ber.csv by today's rules (edge.ber), so that
        # arms evaluated before a rule changed compare.
        summary = ber_lib.summarize(io_lib.read_csv(run.dir.eval_file("ber.csv")))
        last = points[-1]
        arm_rows.append({
            "arm": run.name, "flags": " ".join(arm_flags(path)), "steps": last["step"],
            "slots_seen": last["slots_seen"], "train_seconds": last["train_seconds"],
            "slots_per_s": round(float(last["slots_seen"]) / float(last["train_seconds"]), 2),
            "curve_gm_ber": last["gm_ber"], "gm_ber": summary[run.name]["gm_ber"],
            "ls_lmmse_gm_ber": summary["ls_lmmse"]["gm_ber"],
            "perfect_lmmse_gm_ber": summary["perfect_lmmse"]["gm_ber"]})
    return curve_rows, arm_rows


def plot(curve_rows, arm_rows, path, title):
    from deeprx.evaluation import plots
    figure, (axes,) = plots.figure_and_axes(1, 2, figsize=(13, 4.6), sharey=True)
    for arm in arm_rows:
        points = [r for r in curve_rows if r["arm"] == arm["arm"]]
        gm = [float(r["gm_ber"]) for r in points]
        for ax, key, scale in ((axes[0], "slots_seen", 1e-3), (axes[1], "train_seconds", 1 / 60)):
            ax.plot([float(r[key]) * scale for r in points], gm, marker="o", markersize=3, label=arm["arm"])
    for ax in axes:
        for key, style in (("ls_lmmse_gm_ber", "--"), ("perfect_lmmse_gm_ber", ":")):
            ax.axhline(float(arm_rows[0][key]), color="gray", linestyle=style, linewidth=0.8,
                       label=key.replace("_gm_ber", "") + " (final evaluation)")
        ax.grid(True, linewidth=0.3)
    axes[0].set_xlabel("training slots seen [thousands]")
    axes[1].set_xlabel("training wall-clock [min] (evaluations excluded)")
    axes[0].set_ylabel("Geometric Mean BER (test channels, lower is better)")
    plots.legend_outside(axes[1])
    figure.suptitle(plots.textwrap.fill(title, width=170), fontsize=10)
    plots.save(figure, path)


def main(argv):
    del argv
    for name in ("arms", "workdir"):
        if not getattr(FLAGS, name):
            raise cli.FlagError(name, "is required")
    cli.check_out_dir(FLAGS.out)
    if FLAGS.parallel < 1:
        raise cli.FlagError("parallel", f"must be >= 1, got {FLAGS.parallel}")
    with cli.flag("arms"):
        paths = arm_files(FLAGS.arms)
        runs = arm_runs(paths, FLAGS.workdir)
    runner = jobs.Runner(FLAGS.workdir, parallel=FLAGS.parallel)
    runner.ensure(runs, "[ablation]")
    curve_rows, arm_rows = collect(runs, paths)
    os.makedirs(FLAGS.out, exist_ok=True)
    io_lib.write_table(os.path.join(FLAGS.out, "curves.csv"), curve_rows, CURVE_COLUMNS)
    io_lib.write_table(os.path.join(FLAGS.out, "arms.csv"), arm_rows, ARM_COLUMNS)
    from deeprx.core import provenance as provenance_lib
    settings = io_lib.read_json(os.path.join(runs[0].workdir, "config.json"))
    title = (f"Training ablation, {settings['preset']} preset, {settings['scenario']['dmrs']['num_symbols']} DMRS: "
             f"GM BER on {curves.CURVE_SLOTS_PER_POINT} test slots per SINR point; {provenance_lib.cpu_model()}, "
             f"{os.cpu_count()} cores, {FLAGS.parallel} arms at a time")
    plot(curve_rows, arm_rows, os.path.join(FLAGS.out, "curves.png"), title)
    for arm in arm_rows:
        print(f"{arm['arm']:>14}: GM BER {float(arm['curve_gm_ber']):.3f} after {int(arm['slots_seen']):,} slots "
              f"({float(arm['train_seconds']) / 60:.0f} min, {arm['slots_per_s']} slots/s) | final eval "
              f"{arm['gm_ber']} (ls_lmmse {arm['ls_lmmse_gm_ber']})", flush=True)
    print(f"Wrote {FLAGS.out}/curves.csv, arms.csv, curves.png", flush=True)


if __name__ == "__main__":
    cli.run(main, define_flags)
