"""The paper's knowledge-distillation study (PAPER.md section 2) as one resumable command.

Example usage:
  python -m deeprx.sweep --flagfile=sweep-tiny.flags --workdir=/tmp/kd-tiny
  nohup python -m deeprx.sweep --flagfile=sweep-cpu.flags --workdir=runs/kd-cpu > runs/kd-cpu.log 2>&1 &
  python -m deeprx.sweep --flagfile=sweep-cpu.flags --workdir=runs/kd-cpu --publish=data/results/kd-cpu

A sweep flagfile sets deeprx.train's teacher and KD flags (sweep-cpu.flags includes kd.flags,
which includes teacher.flags) and the sweep's grids. Each run is one `python -m deeprx.train`
process in DIR/runs/<run> (its output in DIR/logs/<run>.log). A run whose model and
evaluation exist is skipped and an interrupted one resumes from its last checkpoint, so the
same command continues an interrupted sweep. The teacher of --teacher is used as the base
teacher (trained there first if missing); the other teachers are trained in DIR/runs.

The steps (the paper's figures), each writing DIR/<step>.csv and PNG plots:
  1 student_size  students of several sizes from scratch: Geometric Mean BER vs FLOPs (Fig. 3)
  2 teacher_size  the base student distilled from teachers of several sizes (Fig. 4)
  3 alpha_T       the alpha grid at the base T, the T grid at the base alpha (Table III, Fig. 5)
  4 ber_vs_sinr   BER vs SINR of teacher, KD student, scratch student, ls_lmmse and
                  perfect_lmmse for each DMRS count (Fig. 6); writes DIR/kd_summary.json
Steps 1-3 train with the first seed and the base DMRS count, step 4 with every seed and DMRS
count. Sizes are FLOPs per slot; student sizes are ratios of the base teacher's (the base
student: --student_flops_ratio). Step 4 distills with the (alpha, T) of step 3's best run
(--fig6_kd=best: the paper chose its alpha and T by such a search) or with --alpha and
--temperature (--fig6_kd=flags). Every run that needs no other run first trains at the start
(teachers first, the longest), so all --parallel processes stay busy; then the steps run in
the order 3, 4, 1, 2, training what is left (KD students of new teachers, step 4's KD students)
and writing their figures: the headline first.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from typing import Optional, Tuple

from absl import flags

from deeprx import ber as ber_lib
from deeprx import cli
from deeprx import config as config_lib
from deeprx import model as model_lib
from deeprx import scenario_flags
from deeprx import train as train_lib  # defines the training flags a sweep flagfile sets

FLAGS = flags.FLAGS
flags.DEFINE_list("seeds", ["0", "1"], "training seeds of the step-4 students (steps 1-3 use the first)")
flags.DEFINE_integer("student_steps", 1000, "training steps of every student (teachers: --steps)")
flags.DEFINE_list("student_ratios", ["0.15", "0.25", "0.6"],
                  "step 1: student FLOPs / base teacher's (the base student is added)")
flags.DEFINE_list("teacher_widths", ["0.35"], "step 2: teacher width multipliers (the base teacher is added)")
flags.DEFINE_list("alphas", ["0.1", "5e4", "5e5", "1e6"], "step 3: alpha grid, at --temperature")
flags.DEFINE_list("temperatures", ["1", "2", "3", "4", "5"], "step 3: T grid, at --alpha")
flags.DEFINE_list("dmrs_counts", ["1", "2"], "step 4: DMRS symbols per slot")
flags.DEFINE_enum("fig6_kd", "best", ["best", "flags"],
                  "step 4 (alpha, T): step 3's best run, or --alpha/--temperature")
flags.DEFINE_list("sweep_steps", ["1", "2", "3", "4"], "the steps to run")
flags.DEFINE_integer("parallel", 1, "training processes at a time, sharing the CPU cores")
flags.DEFINE_string("publish", None, "train nothing: copy the step files and every finished run's small files "
                                     "of --workdir into this directory (e.g. data/results/kd-cpu)")

STEPS = {1: "student_size", 2: "teacher_size", 3: "alpha_T", 4: "ber_vs_sinr"}
ORDER = (3, 4, 1, 2)
STUDENT_FLAGS = tuple(name for name in train_lib.TEACHER_FLAGS if name != "seed") + ("seed",)
KD_FLAGS = ("teacher", "alpha", "temperature", "kd_form", "kd_reduction", "student_flops_ratio")


@dataclasses.dataclass(frozen=True)
class Sweep:
    """The sweep's settings, checked."""
    workdir: str
    scenario: object                 # the base scenario (base DMRS count)
    base_width: float
    base_dmrs: int
    base_ratio: float
    base_alpha: float
    base_temperature: float
    base_teacher_dir: Optional[str]  # --teacher, or None: trained in the workdir
    seeds: Tuple[int, ...]
    student_steps: int
    student_ratios: Tuple[float, ...]
    teacher_widths: Tuple[float, ...]
    alphas: Tuple[float, ...]
    temperatures: Tuple[float, ...]
    dmrs_counts: Tuple[int, ...]
    fig6_kd: str
    steps: Tuple[int, ...]
    parallel: int = 1

    def teacher_flops(self, width):
        config = model_lib.DeepRxConfig(width_multiplier=width, depth_multiplier=FLAGS.depth_multiplier,
                                        variant=FLAGS.model_variant)
        return model_lib.flops_per_slot(config, self.scenario)

    @property
    def base_student_flops(self):
        return self.base_ratio * self.teacher_flops(self.base_width)


@dataclasses.dataclass(frozen=True)
class SweepRun:
    """One `python -m deeprx.train` run of the sweep."""
    name: str
    workdir: str
    args: Tuple[str, ...]
    role: str                      # teacher, scratch or kd
    external: bool = False         # the --teacher directory, not the sweep's own
    width: Optional[float] = None  # a teacher's width multiplier

    @property
    def receiver(self):
        """Its name in its eval/ber.csv (deeprx.train names the model after its workdir)."""
        return os.path.basename(os.path.normpath(self.workdir))


def _numbers(name, cast, check, what):
    values = []
    for text in getattr(FLAGS, name):
        try:
            value = cast(text)
        except ValueError:
            raise cli.FlagError(name, f"{text!r} is not a number") from None
        if not check(value):
            raise cli.FlagError(name, f"every value must be {what}, got {text!r}")
        values.append(value)
    if not values:
        raise cli.FlagError(name, "give at least one value")
    if len(set(values)) != len(values):
        raise cli.FlagError(name, f"values repeat in {','.join(getattr(FLAGS, name))}")
    return tuple(values)


def sweep_from_flags():
    """The Sweep the flags describe; raises cli.FlagError before any compute."""
    _, scenario = scenario_flags.scenario_from_flags(FLAGS)
    if not FLAGS.workdir:
        raise cli.FlagError("workdir", "a sweep directory is required")
    if FLAGS.model_mflops:
        raise cli.FlagError("model_mflops", "the sweep sizes its teachers by --width_multiplier and "
                                            "--teacher_widths; leave --model_mflops at 0")
    if not FLAGS.eval:
        raise cli.FlagError("eval", "the sweep compares evaluated runs; drop --noeval")
    if FLAGS.student_steps < 1:
        raise cli.FlagError("student_steps", f"must be a positive integer, got {FLAGS.student_steps}")
    positive = (lambda v: v > 0, "positive")
    sweep = Sweep(
        workdir=FLAGS.workdir, scenario=scenario, base_width=FLAGS.width_multiplier,
        base_dmrs=scenario.dmrs.num_symbols, base_ratio=FLAGS.student_flops_ratio,
        base_alpha=FLAGS.alpha, base_temperature=FLAGS.temperature, base_teacher_dir=FLAGS.teacher,
        seeds=_numbers("seeds", int, lambda v: v >= 0, "a non-negative integer"),
        student_steps=FLAGS.student_steps,
        student_ratios=tuple(sorted(set(_numbers("student_ratios", float, *positive)) | {FLAGS.student_flops_ratio})),
        teacher_widths=tuple(sorted(set(_numbers("teacher_widths", float, *positive)) | {FLAGS.width_multiplier})),
        alphas=_numbers("alphas", float, lambda v: v >= 0, ">= 0"),
        temperatures=_numbers("temperatures", float, *positive),
        dmrs_counts=_numbers("dmrs_counts", int, lambda v: v in config_lib.DMRS_POSITIONS,
                             " or ".join(map(str, config_lib.DMRS_POSITIONS))),
        fig6_kd=FLAGS.fig6_kd,
        steps=_numbers("sweep_steps", int, lambda v: v in STEPS, "one of 1, 2, 3, 4"),
        parallel=FLAGS.parallel)
    if sweep.parallel < 1:
        raise cli.FlagError("parallel", f"must be a positive integer, got {sweep.parallel}")
    for alpha in sweep.alphas + (sweep.base_alpha,):
        for temperature in sweep.temperatures + (sweep.base_temperature,):
            with cli.flag("alphas" if alpha in sweep.alphas else "alpha"):
                config_lib.check_kd_settings(alpha, temperature, FLAGS.kd_form, FLAGS.kd_reduction)
    for width in sweep.teacher_widths:
        with cli.flag("teacher_widths"):
            model_lib.DeepRxConfig(width_multiplier=width, depth_multiplier=FLAGS.depth_multiplier,
                                   variant=FLAGS.model_variant)
    base = model_lib.DeepRxConfig(width_multiplier=sweep.base_width, depth_multiplier=FLAGS.depth_multiplier,
                                  variant=FLAGS.model_variant)
    for ratio in sweep.student_ratios:
        with cli.flag("student_ratios"):
            model_lib.size_for_flops(base, scenario, ratio * sweep.teacher_flops(sweep.base_width))
    return sweep


# ---------------------------------------------------------------------------- the runs

def _mflops_label(flops):
    return f"{flops / 1e6:.3g}M"


def teacher_run(sweep, width, dmrs):
    name = f"teacher-w{width:g}-dmrs{dmrs}"
    external = bool(sweep.base_teacher_dir) and width == sweep.base_width and dmrs == sweep.base_dmrs
    workdir = sweep.base_teacher_dir if external else os.path.join(sweep.workdir, "runs", name)
    args = cli.flag_args(train_lib.TEACHER_FLAGS, width_multiplier=width, num_dmrs=dmrs, model_mflops=0.0)
    return SweepRun(name, workdir, tuple(args + [f"--workdir={workdir}"]), "teacher", external, width)


def scratch_run(sweep, student_flops, dmrs, seed):
    name = f"scratch-{_mflops_label(student_flops)}-dmrs{dmrs}-s{seed}"
    workdir = os.path.join(sweep.workdir, "runs", name)
    args = cli.flag_args(STUDENT_FLAGS, width_multiplier=sweep.base_width, model_mflops=student_flops / 1e6,
                               num_dmrs=dmrs, steps=sweep.student_steps, seed=seed)
    return SweepRun(name, workdir, tuple(args + [f"--workdir={workdir}"]), "scratch")


def kd_run(sweep, teacher, student_flops, alpha, temperature, dmrs, seed):
    name = f"kd-{_mflops_label(student_flops)}-t{teacher.width:g}-a{alpha:g}-T{temperature:g}-dmrs{dmrs}-s{seed}"
    workdir = os.path.join(sweep.workdir, "runs", name)
    args = cli.flag_args(STUDENT_FLAGS, num_dmrs=dmrs, steps=sweep.student_steps, seed=seed, model_mflops=0.0)
    args += cli.flag_args(KD_FLAGS, teacher=teacher.workdir, alpha=alpha, temperature=temperature,
                                student_flops_ratio=student_flops / sweep.teacher_flops(teacher.width))
    return SweepRun(name, workdir, tuple(args + [f"--workdir={workdir}"]), "kd")


def finished(run):
    return finished_dir(run.workdir)


def finished_dir(workdir):
    """A run directory holding its model, train.json and evaluation."""
    return all(os.path.isfile(os.path.join(workdir, *parts))
               for parts in (("model.keras",), ("train.json",), ("eval", "summary.json")))


class Runner:
    """Trains runs as deeprx.train processes, `parallel` at a time, skipping finished ones.

    With parallel > 1 each process gets an equal share of the CPU cores as TensorFlow
    threads: on 2 cores, two 1-thread runs train about 1.4x faster in total than one
    2-thread run (README "Knowledge distillation")."""

    def __init__(self, workdir, parallel=1, log=print):
        self.workdir, self.parallel, self.log = workdir, parallel, log
        self.trained = 0

    def ensure(self, runs, label):
        """Trains every unfinished run of `runs` (independent of each other)."""
        todo = []
        for run in dict.fromkeys(runs):  # once each, in order
            if finished(run):
                self.log(f"  {label} {run.name}: finished earlier, skipped", flush=True)
            else:
                todo.append(run)
        env = dict(os.environ)
        if self.parallel > 1 and len(todo) > 1:
            threads = str(max(1, (os.cpu_count() or 1) // min(self.parallel, len(todo))))
            env.update(TF_NUM_INTRAOP_THREADS=threads, TF_NUM_INTEROP_THREADS=threads)
        running = []
        try:
            while todo or running:
                while todo and len(running) < self.parallel:
                    run = todo.pop(0)
                    running.append((run, self._start(run, label, env), time.time()))
                time.sleep(0.5)
                for item in [item for item in running if item[1].poll() is not None]:
                    running.remove(item)
                    self._finish(*item, label)
        finally:
            for _, process, _ in running:  # on an error or Ctrl-C: stop the others (they resume later)
                process.terminate()
                process.wait()

    def _start(self, run, label, env):
        command = " ".join(["python -m deeprx.train", *run.args])
        if not run.external:
            self._claim(run, command)
        log_path = self._log_path(run)
        resuming = os.path.isdir(os.path.join(run.workdir, "checkpoints"))
        self.log(f"  {label} {run.name}: training ({'resuming, ' if resuming else ''}"
                 f"output in {log_path})", flush=True)
        with open(log_path, "a") as log_file:
            log_file.write(f"\n$ {command}\n")
            log_file.flush()
            return subprocess.Popen([sys.executable, "-m", "deeprx.train", *run.args], stdout=log_file,
                                    stderr=subprocess.STDOUT, env=env, preexec_fn=cli.die_with_parent)

    def _finish(self, run, process, start, label):
        if process.returncode != 0:
            with open(self._log_path(run)) as f:
                tail = "".join(f.readlines()[-8:])
            raise RuntimeError(f"{run.name} failed (exit status {process.returncode}); the end of "
                               f"{self._log_path(run)}:\n{tail}\nFix the cause and rerun the sweep: "
                               "finished runs are kept.")
        self.trained += 1
        self.log(f"  {label} {run.name}: done in {(time.time() - start) / 60:.1f} min, "
                 f"Geometric Mean BER {result(run)['gm_ber']:.3f}", flush=True)

    def _log_path(self, run):
        path = os.path.join(self.workdir, "logs", run.name + ".log")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def _claim(self, run, command):
        """Records the run's command in its workdir; a workdir of another command is an error."""
        os.makedirs(run.workdir, exist_ok=True)
        path = os.path.join(run.workdir, "sweep_command.txt")
        if os.path.isfile(path):
            with open(path) as f:
                previous = f.read().strip()
            if previous != command:
                raise RuntimeError(f"{run.workdir} holds a run of another command ({path}); the sweep's "
                                   f"flags changed since. Use another --workdir or the earlier flags.")
        else:
            ber_lib.atomic_write(path, lambda f: f.write(command + "\n"))


def result(run):
    """The run's evaluation summary: gm_ber, sinr_at_ber_1e-2, sinr_at_ber_1e-3, plus
    its parameters and FLOPs per slot."""
    with open(os.path.join(run.workdir, "eval", "summary.json")) as f:
        summary = json.load(f)[run.receiver]
    with open(os.path.join(run.workdir, "train.json")) as f:
        trained = json.load(f)
    return {**summary, "parameters": trained["parameters"], "flops_per_slot": trained["flops_per_slot"]}


def ber_rows(run, receivers=None):
    """The run's ber.csv rows, of its own model or of `receivers`."""
    rows = ber_lib.read_csv(os.path.join(run.workdir, "eval", "ber.csv"))
    return [row for row in rows if row["receiver"] in (receivers or (run.receiver,))]


# ---------------------------------------------------------------------------- the steps

RESULT_COLUMNS = ("gm_ber", "sinr_at_ber_1e-2", "sinr_at_ber_1e-3")


def _row(run, **fields):
    res = result(run)
    return {**fields, "run": run.name, "mflops": round(res["flops_per_slot"] / 1e6, 3),
            "parameters": res["parameters"], **{key: res[key] for key in RESULT_COLUMNS}}


class Study:
    """The four steps over one sweep directory."""

    def __init__(self, sweep, runner, log=print):
        self.sweep, self.runner, self.log = sweep, runner, log
        self.seed = sweep.seeds[0]
        self.base_teacher_flops = sweep.teacher_flops(sweep.base_width)

    def teachers(self, widths_and_dmrs, label):
        """The teacher runs, trained; checks each has the FLOPs its width gives."""
        runs = [teacher_run(self.sweep, width, dmrs) for width, dmrs in widths_and_dmrs]
        self.runner.ensure(runs, label)
        for run, (width, _) in zip(runs, widths_and_dmrs):
            expected, trained = self.sweep.teacher_flops(width), result(run)["flops_per_slot"]
            if trained != expected:
                raise RuntimeError(f"the teacher in {run.workdir} has {trained:,} FLOPs per slot, not the "
                                   f"{expected:,} of --width_multiplier={width}: give --teacher the run the flags "
                                   "describe, or another directory")
        return runs

    def kd(self, teacher, alpha, temperature, dmrs, seed):
        return kd_run(self.sweep, teacher, self.sweep.base_student_flops, alpha, temperature, dmrs, seed)

    def scratch(self, dmrs, seed, student_flops=None):
        return scratch_run(self.sweep, student_flops or self.sweep.base_student_flops, dmrs, seed)

    def _write(self, name, rows, fieldnames):
        path = os.path.join(self.sweep.workdir, name)
        ber_lib.write_table(path, rows, fieldnames)
        self.log(f"Wrote {path}", flush=True)

    def _plot(self, panels, name, title):
        path = os.path.join(self.sweep.workdir, name)
        plots_lib().gm_ber_panels(panels, path, title)
        self.log(f"Wrote {path}", flush=True)

    # The runs that can train now ------------------------------------------------------
    def _alpha_T_grid(self):
        sweep = self.sweep
        return ([("alpha", alpha, sweep.base_temperature) for alpha in sweep.alphas]
                + [("temperature", sweep.base_alpha, temperature) for temperature in sweep.temperatures])

    def _alpha_T_kd(self, teacher):
        return [self.kd(teacher, alpha, temperature, self.sweep.base_dmrs, self.seed)
                for _, alpha, temperature in self._alpha_T_grid()]

    def _teacher_size_kd(self, teachers):
        sweep = self.sweep
        return [self.kd(teacher, sweep.base_alpha, sweep.base_temperature, sweep.base_dmrs, self.seed)
                for teacher in teachers]

    def _student_size_runs(self):
        return [self.scratch(self.sweep.base_dmrs, self.seed, ratio * self.base_teacher_flops)
                for ratio in self.sweep.student_ratios]

    def ready_runs(self, steps):
        """Every run of `steps` whose inputs exist now, in training order: the teachers (the
        longest runs), the KD students of trained teachers, the scratch students (the shortest
        last). Trained as one queue they keep all `parallel` processes busy across step
        boundaries; the KD runs of untrained teachers and step 4's with --fig6_kd=best (which
        wait for step 3's best) are left to their steps."""
        sweep = self.sweep
        base = teacher_run(sweep, sweep.base_width, sweep.base_dmrs)
        runs = [base]
        if 4 in steps:
            runs += [teacher_run(sweep, sweep.base_width, dmrs) for dmrs in sweep.dmrs_counts]
        if 2 in steps:
            size_teachers = [teacher_run(sweep, width, sweep.base_dmrs) for width in sweep.teacher_widths]
            runs += size_teachers + self._teacher_size_kd([t for t in size_teachers if finished(t)])
        if 3 in steps and finished(base):
            runs += self._alpha_T_kd(base)
        if 4 in steps and sweep.fig6_kd == "flags":  # step 4's KD settings are known now
            runs += [self.kd(teacher, sweep.base_alpha, sweep.base_temperature, dmrs, seed)
                     for dmrs in sweep.dmrs_counts for teacher in [teacher_run(sweep, sweep.base_width, dmrs)]
                     if finished(teacher) for seed in sweep.seeds]
        if steps & {2, 3}:
            runs.append(self.scratch(sweep.base_dmrs, self.seed))
        if 4 in steps:
            runs += [self.scratch(dmrs, seed) for dmrs in sweep.dmrs_counts for seed in sweep.seeds]
        if 1 in steps:
            runs += self._student_size_runs()[::-1]  # student_ratios ascend: the largest first
        return runs

    # Step 3 -------------------------------------------------------------------------
    def alpha_T(self):
        """Writes alpha_T.csv/png; returns the (alpha, T) of the lowest Geometric Mean BER."""
        sweep = self.sweep
        teacher, = self.teachers([(sweep.base_width, sweep.base_dmrs)], "[3 alpha_T]")
        grid = self._alpha_T_grid()
        kd_runs = self._alpha_T_kd(teacher)
        scratch = self.scratch(sweep.base_dmrs, self.seed)
        self.runner.ensure([scratch, *kd_runs], "[3 alpha_T]")
        rows = [_row(scratch, grid="none (scratch)", alpha="", temperature="")]
        rows += [_row(run, grid=axis, alpha=alpha, temperature=temperature)
                 for run, (axis, alpha, temperature) in zip(kd_runs, grid)]
        self._write("alpha_T.csv", rows, ("grid", "alpha", "temperature", "run", "mflops", "parameters",
                                          *RESULT_COLUMNS))
        references = {"student from scratch": rows[0]["gm_ber"], "teacher": result(teacher)["gm_ber"]}
        panels = [{"xlabel": f"alpha (T = {sweep.base_temperature:g})", "logx": True, "references": references,
                   "series": {"KD student": [(r["alpha"], r["gm_ber"]) for r in rows if r["grid"] == "alpha"]}},
                  {"xlabel": f"temperature T (alpha = {sweep.base_alpha:g})", "references": references,
                   "series": {"KD student": [(r["temperature"], r["gm_ber"])
                                             for r in rows if r["grid"] == "temperature"]}}]
        self._plot(panels, "alpha_T.png", f"Table III / Fig. 5: KD student ({rows[0]['mflops']:.0f} MFLOPs) by "
                                          f"alpha and T, seed {self.seed}, {sweep.base_dmrs} DMRS")
        best = min(rows[1:], key=lambda r: r["gm_ber"])
        return best["alpha"], best["temperature"]

    # Step 4 -------------------------------------------------------------------------
    def ber_vs_sinr(self, alpha, temperature, chosen_by):
        """Writes ber_vs_sinr.csv, a PNG per DMRS count and kd_summary.json; returns its runs."""
        sweep = self.sweep
        teachers = self.teachers([(sweep.base_width, dmrs) for dmrs in sweep.dmrs_counts], "[4 ber_vs_sinr]")
        pairs = {(dmrs, seed): (self.kd(teacher, alpha, temperature, dmrs, seed), self.scratch(dmrs, seed))
                 for dmrs, teacher in zip(sweep.dmrs_counts, teachers) for seed in sweep.seeds}
        self.runner.ensure([run for pair in pairs.values() for run in pair], "[4 ber_vs_sinr]")
        rows, summary_runs = [], []
        for dmrs, teacher in zip(sweep.dmrs_counts, teachers):
            curves = [("teacher", "", teacher)]
            for seed in sweep.seeds:
                kd, scratch = pairs[dmrs, seed]
                curves += [("kd_student", seed, kd), ("scratch_student", seed, scratch)]
                summary_runs.append(_kd_entry(seed, dmrs, result(kd), result(scratch)))
            first_kd = curves[1][2]  # every run is evaluated on the same slots: its baselines stand for all
            dmrs_rows = [{**row, "role": role, "seed": seed, "run": run.name}
                         for role, seed, run in curves for row in ber_rows(run)]
            dmrs_rows += [{**row, "role": row["receiver"], "seed": "", "run": first_kd.name}
                          for row in ber_rows(first_kd, ("ls_lmmse", "perfect_lmmse"))]
            for row in dmrs_rows:
                row["num_dmrs"] = dmrs
                row["receiver"] = row["role"] + ("" if row["seed"] == "" else f" (seed {row['seed']})")
            rows += dmrs_rows
            path = os.path.join(sweep.workdir, f"ber_vs_sinr_dmrs{dmrs}.png")
            plots_lib().ber_vs_sinr(dmrs_rows, path, f"Fig. 6, {dmrs} DMRS: student "
                                    f"{sweep.base_student_flops / 1e6:.3g} MFLOPs, teacher "
                                    f"{self.base_teacher_flops / 1e6:.3g}, alpha {alpha:g}, T {temperature:g}")
            self.log(f"Wrote {path}", flush=True)
        self._write("ber_vs_sinr.csv", rows, ("num_dmrs", "role", "seed", "run", "receiver", "sinr_db", "ber",
                                              "bit_errors", "bits"))
        path = os.path.join(sweep.workdir, "kd_summary.json")
        summary = {"alpha": alpha, "temperature": temperature, "chosen_by": chosen_by,
                   "student_mflops": round(sweep.base_student_flops / 1e6, 3),
                   "teacher_mflops": round(self.base_teacher_flops / 1e6, 3),
                   "student_steps": sweep.student_steps, "runs": summary_runs}
        ber_lib.write_json(path, summary)
        text = (f"KD vs scratch students ({summary['student_mflops']:g} MFLOPs per slot, {sweep.student_steps} "
                f"steps), teacher {summary['teacher_mflops']:g} MFLOPs; alpha {alpha:g}, T {temperature:g} "
                f"({chosen_by}).\n\n{kd_table(summary_runs)}")
        ber_lib.atomic_write(os.path.join(sweep.workdir, "kd_summary.md"), lambda f: f.write(text))
        self.log(f"Wrote {path} and kd_summary.md", flush=True)
        return summary_runs

    # Step 1 -------------------------------------------------------------------------
    def student_size(self):
        sweep = self.sweep
        teacher, = self.teachers([(sweep.base_width, sweep.base_dmrs)], "[1 student_size]")
        runs = self._student_size_runs()
        self.runner.ensure(runs, "[1 student_size]")
        rows = [_row(teacher, role="teacher", flops_ratio=1.0)]
        rows += [_row(run, role="scratch student", flops_ratio=round(ratio, 6))
                 for run, ratio in zip(runs, sweep.student_ratios)]
        self._write("student_size.csv", rows, ("role", "flops_ratio", "run", "mflops", "parameters",
                                               *RESULT_COLUMNS))
        self._plot([{"xlabel": "MFLOPs per slot", "logx": True, "references": self._baselines(teacher),
                     "series": {"from scratch": [(r["mflops"], r["gm_ber"]) for r in rows[1:]],
                                "teacher": [(rows[0]["mflops"], rows[0]["gm_ber"])]}}],
                   "student_size.png", f"Fig. 3: DeepRx size vs Geometric Mean BER, students {sweep.student_steps} "
                                       f"steps, teacher {FLAGS.steps}; seed {self.seed}, {sweep.base_dmrs} DMRS")

    def _baselines(self, run):
        """ls_lmmse and perfect_lmmse on the evaluation slots every run shares."""
        with open(os.path.join(run.workdir, "eval", "summary.json")) as f:
            summary = json.load(f)
        return {name: summary[name]["gm_ber"] for name in ("ls_lmmse", "perfect_lmmse")}

    # Step 2 -------------------------------------------------------------------------
    def teacher_size(self):
        sweep = self.sweep
        teachers = self.teachers([(width, sweep.base_dmrs) for width in sweep.teacher_widths], "[2 teacher_size]")
        kd_runs = self._teacher_size_kd(teachers)
        scratch = self.scratch(sweep.base_dmrs, self.seed)
        self.runner.ensure([scratch, *kd_runs], "[2 teacher_size]")
        rows = [_row(kd, teacher=teacher.name, teacher_mflops=round(result(teacher)["flops_per_slot"] / 1e6, 3),
                     teacher_gm_ber=result(teacher)["gm_ber"]) for teacher, kd in zip(teachers, kd_runs)]
        self._write("teacher_size.csv", rows, ("teacher", "teacher_mflops", "teacher_gm_ber", "run", "mflops",
                                               "parameters", *RESULT_COLUMNS))
        self._plot([{"xlabel": "teacher MFLOPs per slot", "logx": True,
                     "references": {"student from scratch": result(scratch)["gm_ber"]},
                     "series": {"KD student": [(r["teacher_mflops"], r["gm_ber"]) for r in rows],
                                "teacher itself": [(r["teacher_mflops"], r["teacher_gm_ber"]) for r in rows]}}],
                   "teacher_size.png", f"Fig. 4: KD student ({rows[0]['mflops']:.0f} MFLOPs) by teacher size, "
                                       f"alpha {sweep.base_alpha:g}, T {sweep.base_temperature:g}, seed {self.seed}")


def _kd_entry(seed, dmrs, kd, scratch):
    """One kd_summary.json entry (gains: ber.sinr_gains of KD over scratch)."""
    return {"seed": seed, "num_dmrs": dmrs, "gm_ber_kd": kd["gm_ber"], "gm_ber_scratch": scratch["gm_ber"],
            **ber_lib.sinr_gains(kd, scratch)}


def kd_table(entries):
    """kd_summary.json's runs as a markdown table (kd_summary.md, README), per DMRS count and seed."""
    lines = ["| DMRS symbols | seed | Geometric Mean BER, KD | from scratch | KD - scratch (< 0: KD better) "
             "| SINR gain at BER 1e-2 (> 0: KD better) | at BER 1e-3 |", "|---|---|---|---|---|---|---|"]
    for e in sorted(entries, key=lambda e: (e["num_dmrs"], e["seed"])):
        lines.append(f"| {e['num_dmrs']} | {e['seed']} | {e['gm_ber_kd']:.3f} | {e['gm_ber_scratch']:.3f} | "
                     f"{e['gm_ber_kd'] - e['gm_ber_scratch']:+.3f} | {ber_lib.gain_text(e['gain_db_at_1e-2'])} | "
                     f"{ber_lib.gain_text(e['gain_db_at_1e-3'])} |")
    return "\n".join(lines) + "\n"


def plots_lib():
    from deeprx import plots  # matplotlib: only once there is something to draw
    return plots


def run_sweep(sweep, log=print):
    """Runs the steps of `sweep` in ORDER; returns kd_summary's runs (or None without step 4)."""
    os.makedirs(sweep.workdir, exist_ok=True)
    runner = Runner(sweep.workdir, sweep.parallel, log)
    study = Study(sweep, runner, log)
    summary = best = None
    steps = set(sweep.steps) | ({3} if 4 in sweep.steps and sweep.fig6_kd == "best" else set())
    log("Training every run that needs no other run first", flush=True)
    runner.ensure(study.ready_runs(steps), "[ready]")
    for step in ORDER:
        if step not in sweep.steps:
            continue
        log(f"Step {step} ({STEPS[step]})", flush=True)
        if step == 3 or (step == 4 and sweep.fig6_kd == "best" and best is None):
            best = study.alpha_T()
        if step == 4:
            if sweep.fig6_kd == "best":
                alpha, temperature = best
                chosen_by = f"the lowest Geometric Mean BER of step 3 (alpha_T.csv), seed {study.seed}"
            else:
                alpha, temperature, chosen_by = sweep.base_alpha, sweep.base_temperature, "--alpha and --temperature"
            summary = study.ber_vs_sinr(alpha, temperature, chosen_by)
        elif step == 1:
            study.student_size()
        elif step == 2:
            study.teacher_size()
    log(f"Sweep done: {runner.trained} runs trained now, the rest finished earlier", flush=True)
    return summary


# What --publish copies: the steps' outputs, and of each finished run (into by-run/<run>/)
# its results, settings and command, never checkpoints or weights.
STEP_FILES = ("alpha_T.csv", "alpha_T.png", "ber_vs_sinr.csv", "ber_vs_sinr_dmrs1.png", "ber_vs_sinr_dmrs2.png",
              "kd_summary.json", "kd_summary.md", "student_size.csv", "student_size.png", "teacher_size.csv",
              "teacher_size.png")
RUN_FILES = ("train.json", "config.json", "sweep_command.txt", "eval/summary.json", "eval/ber.csv", "eval/ber.png")


def publish(workdir, dest, log=print):
    """Copies what is finished in the sweep `workdir` to `dest`; returns the number of runs."""
    import shutil
    copied = [name for name in STEP_FILES if os.path.isfile(os.path.join(workdir, name))]
    runs_dir = os.path.join(workdir, "runs")
    runs = sorted(name for name in (os.listdir(runs_dir) if os.path.isdir(runs_dir) else ())
                  if finished_dir(os.path.join(runs_dir, name)))
    for name in copied:
        shutil.copyfile(os.path.join(workdir, name), os.path.join(_made(dest), name))
    for name in runs:
        for path in RUN_FILES:
            source = os.path.join(runs_dir, name, path)
            if os.path.isfile(source):
                shutil.copyfile(source, os.path.join(_made(os.path.join(dest, "by-run", name)),
                                                     os.path.basename(path)))
    log(f"Published to {dest}: {len(copied)} step files ({', '.join(copied) or 'none yet'}) and {len(runs)} "
        "finished runs", flush=True)
    return len(runs)


def _made(path):
    os.makedirs(path, exist_ok=True)
    return path


def _stop(signum, frame):
    del frame
    raise SystemExit(f"stopped by signal {signum}; rerun the same command to resume")


def main(argv):
    del argv
    sweep = sweep_from_flags()
    if FLAGS.publish:
        if not os.path.isdir(sweep.workdir):
            raise cli.FlagError("workdir", f"no sweep at {sweep.workdir!r} to publish")
        publish(sweep.workdir, FLAGS.publish)
        return
    # A sweep started with nohup/& ignores SIGINT and dies on SIGTERM without stopping its
    # training processes: both now stop them (they resume from their checkpoints on rerun).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop)
    summary = run_sweep(sweep)
    if summary:
        print(kd_table(summary), flush=True)


if __name__ == "__main__":
    cli.run(main)
