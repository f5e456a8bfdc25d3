"""The knowledge-distillation sweep (PAPER.md section 2), flag-free: its settings (a Sweep
from python -m deeprx.sweep, whose docstring describes the steps), its runs (each one
python -m deeprx.train child process, jobs.Runner), the four steps with their CSV and PNG
files (kd_summary.py: its summary tables; sweep_publish.py: publishing its results)."""

import dataclasses
import json
import os
from typing import Optional, Tuple

from deeprx import cli
from deeprx.cli import train_flags
from deeprx.core import jobs
from deeprx.experiments import kd_curves
from deeprx.experiments import kd_summary
from deeprx.network import model as model_lib
from deeprx.core import io as io_lib
from deeprx.network import saved

STEPS = {1: "student_size", 2: "teacher_size", 3: "alpha_T", 4: "ber_vs_sinr"}
ORDER = (3, 4, 1, 2)


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
    train_values: Tuple[Tuple[str, object], ...]  # deeprx.train's flags (train_flags.TEACHER_FLAGS, KD_FLAGS) as set
    parallel: int = 1
    dmrs_teacher_dirs: Tuple[Tuple[int, str], ...] = ()  # --dmrs_teachers: trained teachers of other DMRS counts
    hint_weight: float = 0.0         # --hint_arm_weight: step 4's KD+hint arm (0: none)
    hint_dmrs_counts: Tuple[int, ...] = ()  # the DMRS counts that arm trains for

    @property
    def values(self):
        return dict(self.train_values)

    def model_config(self, width):
        return model_lib.DeepRxConfig(width_multiplier=width, depth_multiplier=self.values["depth_multiplier"],
                                      variant=self.values["model_variant"])

    def teacher_flops(self, width):
        return model_lib.flops_per_slot(self.model_config(width), self.scenario)

    @property
    def base_student_flops(self):
        return self.base_ratio * self.teacher_flops(self.base_width)



# ---------------------------------------------------------------------------- the runs

def _mflops_label(flops):
    return f"{flops / 1e6:.3g}M"


def teacher_run(sweep, width, dmrs):
    """The base-width teacher of a DMRS count is --teacher's (base DMRS count) or --dmrs_teachers'
    where given; every other teacher is trained in the sweep's runs/."""
    name = f"teacher-w{width:g}-dmrs{dmrs}"
    given = dict(sweep.dmrs_teacher_dirs)
    if sweep.base_teacher_dir:
        given[sweep.base_dmrs] = sweep.base_teacher_dir
    external = width == sweep.base_width and dmrs in given
    workdir = given[dmrs] if external else os.path.join(sweep.workdir, "runs", name)
    args = cli.args_from(sweep.values, train_flags.TEACHER_FLAGS, width_multiplier=width, num_dmrs=dmrs, model_mflops=0.0)
    return jobs.TrainRun(name, workdir, tuple(args + [f"--workdir={workdir}"]), "teacher", external, width)


def scratch_run(sweep, flops_ratio, dmrs, seed):
    """A student from scratch: the KD students' network, sized by the function that sizes them
    (model.student_config of the base teacher's config, --student_variant, flops_ratio x its
    FLOPs; Study.teachers checks that the trained teachers have that config's FLOPs), trained
    alone. Named by its FLOP budget, as its KD twins are."""
    student = model_lib.student_config(sweep.model_config(sweep.base_width), sweep.scenario, flops_ratio,
                                       sweep.values["student_variant"])
    name = f"scratch-{_mflops_label(flops_ratio * sweep.teacher_flops(sweep.base_width))}-dmrs{dmrs}-s{seed}"
    workdir = os.path.join(sweep.workdir, "runs", name)
    args = cli.args_from(sweep.values, train_flags.STUDENT_FLAGS, model_variant=student.variant,
                         width_multiplier=student.width_multiplier, depth_multiplier=student.depth_multiplier,
                         model_mflops=0.0, num_dmrs=dmrs, steps=sweep.student_steps, seed=seed)
    return jobs.TrainRun(name, workdir, tuple(args + [f"--workdir={workdir}"]), "scratch")


def kd_run(sweep, teacher, student_flops, alpha, temperature, dmrs, seed, hint_weight=None):
    """A KD student; with hint_weight, step 4's KD+hint arm (--kd_feature_weight=hint_weight)."""
    hint = "" if hint_weight is None else f"-hint{hint_weight:g}"
    name = (f"kd-{_mflops_label(student_flops)}-t{teacher.width:g}-a{alpha:g}-T{temperature:g}{hint}-dmrs{dmrs}"
            f"-s{seed}")
    workdir = os.path.join(sweep.workdir, "runs", name)
    args = cli.args_from(sweep.values, train_flags.STUDENT_FLAGS, num_dmrs=dmrs, steps=sweep.student_steps, seed=seed,
                         model_mflops=0.0)
    feature = {} if hint_weight is None else {"kd_feature_weight": hint_weight}
    args += cli.args_from(sweep.values, train_flags.KD_FLAGS, teacher=teacher.workdir, alpha=alpha, temperature=temperature,
                          student_flops_ratio=student_flops / sweep.teacher_flops(teacher.width), **feature)
    return jobs.TrainRun(name, workdir, tuple(args + [f"--workdir={workdir}"]), "kd")


# ---------------------------------------------------------------------------- the steps

RESULT_COLUMNS = ("gm_ber", "sinr_at_ber_1e-2", "sinr_at_ber_1e-3")


def _row(run, **fields):
    res = run.dir.result()
    return {**fields, "run": run.name, "mflops": round(res["flops_per_slot"] / 1e6, 3),
            "parameters": res["parameters"], **{key: res[key] for key in RESULT_COLUMNS}}


class Study:
    """The four steps over one sweep directory."""

    def __init__(self, sweep, runner, log=print):
        self.sweep, self.runner, self.log = sweep, runner, log
        self.seed = sweep.seeds[0]
        self.base_teacher_flops = sweep.teacher_flops(sweep.base_width)

    def teachers(self, widths_and_dmrs, label):
        """The teacher runs, trained; checks each has the FLOPs its width gives on the sweep's grid
        (a given teacher may have been trained on another PRB count: the network is fully
        convolutional)."""
        runs = [teacher_run(self.sweep, width, dmrs) for width, dmrs in widths_and_dmrs]
        self.runner.ensure(runs, label)
        for run, (width, _) in zip(runs, widths_and_dmrs):
            expected = self.sweep.teacher_flops(width)
            trained = model_lib.flops_per_slot(saved.model_config(run.dir), self.sweep.scenario)
            if trained != expected:
                raise RuntimeError(f"the teacher in {run.workdir} has {trained:,} FLOPs per slot, not the "
                                   f"{expected:,} of --width_multiplier={width}: give --teacher the run the flags "
                                   "describe, or another directory")
        return runs

    def kd(self, teacher, alpha, temperature, dmrs, seed, hint_weight=None):
        return kd_run(self.sweep, teacher, self.sweep.base_student_flops, alpha, temperature, dmrs, seed, hint_weight)

    def hint_kd(self, teacher, alpha, temperature, dmrs, seed):
        """Step 4's KD+hint student, or None where --hint_arm_weight trains none."""
        if dmrs not in self.sweep.hint_dmrs_counts:
            return None
        return self.kd(teacher, alpha, temperature, dmrs, seed, self.sweep.hint_weight)

    def scratch(self, dmrs, seed, flops_ratio=None):
        return scratch_run(self.sweep, flops_ratio or self.sweep.base_ratio, dmrs, seed)

    def _write(self, name, rows, fieldnames):
        path = os.path.join(self.sweep.workdir, name)
        io_lib.write_table(path, rows, fieldnames)
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
        return [self.scratch(self.sweep.base_dmrs, self.seed, ratio) for ratio in self.sweep.student_ratios]

    def ready_runs(self, steps):
        """Every run of `steps` whose inputs exist now, in training order: the teachers (the
        longest runs), the KD students of trained teachers, the scratch students (the shortest
        last). Trained as one queue they keep all `parallel` processes busy across step
        boundaries; the KD runs of untrained teachers and step 4's with --fig6_kd=best (which
        wait for step 3's best) are left to their steps. Step 4's runs with --fig6_kd=flags go
        seed by seed, each KD student beside its scratch twin (then its KD+hint one), so every
        seed finished is a comparison made, on the same batches at the same time."""
        sweep = self.sweep
        base = teacher_run(sweep, sweep.base_width, sweep.base_dmrs)
        runs = [base]
        if 4 in steps:
            runs += [teacher_run(sweep, sweep.base_width, dmrs) for dmrs in sweep.dmrs_counts]
        if 2 in steps:
            size_teachers = [teacher_run(sweep, width, sweep.base_dmrs) for width in sweep.teacher_widths]
            runs += size_teachers + self._teacher_size_kd([t for t in size_teachers if t.dir.finished()])
        if 3 in steps and base.dir.finished():
            runs += self._alpha_T_kd(base)
        if 4 in steps and sweep.fig6_kd == "flags":  # step 4's KD settings are known now
            for seed in sweep.seeds:
                for dmrs in sweep.dmrs_counts:
                    teacher = teacher_run(sweep, sweep.base_width, dmrs)
                    if teacher.dir.finished():
                        settings = (teacher, sweep.base_alpha, sweep.base_temperature, dmrs)
                        runs += [self.kd(*settings, seed), self.scratch(dmrs, seed)]
                        runs += [run for run in [self.hint_kd(*settings, seed)] if run]
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
        references = {"student from scratch": rows[0]["gm_ber"], "teacher": teacher.dir.result()["gm_ber"]}
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
        # (KD, scratch, KD+hint or None) per DMRS count and seed
        arms = {(dmrs, seed): (self.kd(teacher, alpha, temperature, dmrs, seed), self.scratch(dmrs, seed),
                               self.hint_kd(teacher, alpha, temperature, dmrs, seed))
                for dmrs, teacher in zip(sweep.dmrs_counts, teachers) for seed in sweep.seeds}
        self.runner.ensure([run for trio in arms.values() for run in trio if run], "[4 ber_vs_sinr]")
        rows, summary_runs, hint_runs = [], [], []
        for dmrs, teacher in zip(sweep.dmrs_counts, teachers):
            curves = [("teacher", "", teacher)]
            for seed in sweep.seeds:
                kd, scratch, hint = arms[dmrs, seed]
                curves += [("kd_student", seed, kd), ("scratch_student", seed, scratch)]
                summary_runs.append(kd_summary.kd_entry(seed, dmrs, kd.dir.result(), scratch.dir.result()))
                if hint:
                    curves.append(("kd_hint_student", seed, hint))
                    hint_runs.append(kd_summary.hint_entry(seed, dmrs, hint.dir.result(), kd.dir.result(),
                                                 scratch.dir.result()))
            first_kd = curves[1][2]  # every run is evaluated on the same slots: its baselines stand for all
            dmrs_rows = [{**row, "role": role, "seed": seed, "run": run.name}
                         for role, seed, run in curves for row in run.dir.ber_rows()]
            dmrs_rows += [{**row, "role": row["receiver"], "seed": "", "run": first_kd.name}
                          for row in first_kd.dir.ber_rows(("ls_lmmse", "perfect_lmmse"))]
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
        comparisons = [(kd_curves.KD_VS_SCRATCH, {key: (kd, scratch) for key, (kd, scratch, _) in arms.items()})]
        hinted = {key: trio for key, trio in arms.items() if trio[2]}
        if hinted:
            comparisons += [(kd_curves.HINT_VS_KD, {key: (hint, kd) for key, (kd, _, hint) in hinted.items()}),
                            (kd_curves.HINT_VS_SCRATCH, {key: (hint, s) for key, (_, s, hint) in hinted.items()})]
        budgets = kd_curves.write_budgets(sweep, comparisons, f"alpha {alpha:g}, T {temperature:g}", self.log)
        path = os.path.join(sweep.workdir, "kd_summary.json")
        summary = {"alpha": alpha, "temperature": temperature, "chosen_by": chosen_by,
                   "student_mflops": round(sweep.base_student_flops / 1e6, 3),
                   "teacher_mflops": round(self.base_teacher_flops / 1e6, 3),
                   "student_steps": sweep.student_steps, "runs": summary_runs,
                   "final": kd_summary.final_rows(summary_runs), "budgets": budgets}
        if hint_runs:
            summary["hint"] = {"kd_feature_weight": sweep.hint_weight, "runs": hint_runs}
        io_lib.write_json(path, summary)
        text = kd_summary.markdown(summary)
        io_lib.atomic_write(os.path.join(sweep.workdir, "kd_summary.md"), lambda f: f.write(text))
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
                                       f"steps, teacher {sweep.values['steps']}; seed {self.seed}, {sweep.base_dmrs} DMRS")

    def _baselines(self, run):
        """ls_lmmse and perfect_lmmse on the evaluation slots every run shares."""
        with open(run.dir.eval_file("summary.json")) as f:
            summary = json.load(f)
        return {name: summary[name]["gm_ber"] for name in ("ls_lmmse", "perfect_lmmse")}

    # Step 2 -------------------------------------------------------------------------
    def teacher_size(self):
        sweep = self.sweep
        teachers = self.teachers([(width, sweep.base_dmrs) for width in sweep.teacher_widths], "[2 teacher_size]")
        kd_runs = self._teacher_size_kd(teachers)
        scratch = self.scratch(sweep.base_dmrs, self.seed)
        self.runner.ensure([scratch, *kd_runs], "[2 teacher_size]")
        rows = [_row(kd, teacher=teacher.name, teacher_mflops=round(teacher.dir.result()["flops_per_slot"] / 1e6, 3),
                     teacher_gm_ber=teacher.dir.result()["gm_ber"]) for teacher, kd in zip(teachers, kd_runs)]
        self._write("teacher_size.csv", rows, ("teacher", "teacher_mflops", "teacher_gm_ber", "run", "mflops",
                                               "parameters", *RESULT_COLUMNS))
        self._plot([{"xlabel": "teacher MFLOPs per slot", "logx": True,
                     "references": {"student from scratch": scratch.dir.result()["gm_ber"]},
                     "series": {"KD student": [(r["teacher_mflops"], r["gm_ber"]) for r in rows],
                                "teacher itself": [(r["teacher_mflops"], r["teacher_gm_ber"]) for r in rows]}}],
                   "teacher_size.png", f"Fig. 4: KD student ({rows[0]['mflops']:.0f} MFLOPs) by teacher size, "
                                       f"alpha {sweep.base_alpha:g}, T {sweep.base_temperature:g}, seed {self.seed}")


def plots_lib():
    from deeprx.evaluation import plots  # matplotlib: only once there is something to draw
    return plots


def run_sweep(sweep, log=print, backend=None):
    """Runs the steps of `sweep` in ORDER, its training runs through `backend` (default: this
    machine, jobs.LocalBackend); returns kd_summary's runs (or None without step 4)."""
    os.makedirs(sweep.workdir, exist_ok=True)
    runner = jobs.Runner(sweep.workdir, sweep.parallel, log, backend=backend)
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
