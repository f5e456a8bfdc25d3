"""Benchmark (run on demand, not by the test suite): the energy study on this machine.

Example usage (from the repository root, with nothing else running):
  python tests/benchmarks/energy_cpu.py --teacher=pretrained:teacher-cpu-2dmrs --student=pretrained:kd-student-cpu-2dmrs

On the --preset grid (default cpu), through the project's own CLIs (their commands are
printed and recorded in OUT/summary.json):
  1. int8 export of the teacher and of the student (python -m deeprx.quantize, PTQ; 64
     calibration slots: the calibration changes the int8 values, not the energy);
  2. python -m deeprx.energy on each, float and int8, with --energy_source (default cputime:
     CPU time x CodeCarbon's TDP per core, an estimate);
  3. python -m deeprx.kernels fit: the kernel-level predictor and its held-out latency MAPE.
--reuse_kernels keeps OUT/kernels/ of an earlier run. Writes OUT/teacher/ and OUT/student/ (energy.json and plots), OUT/kernels/ (fit.json,
heldout.csv, kernels.csv) and OUT/summary.json; prints each figure against its reference
(held-out latency MAPE at most 20%).
"""

import argparse
import json
import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
from deeprx.core import jobs  # noqa: E402
from deeprx.core import workdir as workdir_lib  # noqa: E402
from deeprx.export import quantize as quantize_lib  # noqa: E402

LOG = os.path.join(REPO, "runs", "benchmarks", os.path.basename(__file__)[:-3] + ".log")

REFERENCE_MAPE_PERCENT = 20.0


def run(*args):
    """`python -m ARGS` from the repo root through the project's job runner (log:
    runs/benchmarks/<this script>.log); JobError with the log's tail if it fails."""
    print("$ " + jobs.command_line(args), flush=True)
    return jobs.run(args, LOG, echo=lambda line: print("  " + line, flush=True))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--student", required=True)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--energy_source", default="cputime", help="deeprx.energy --energy_source")
    parser.add_argument("--out", default=os.path.join(REPO, "data", "results", "energy-cpu"))
    parser.add_argument("--fit_layers", type=int, default=800, help="one-layer models of the predictor's fit")
    parser.add_argument("--reuse_kernels", action="store_true",
                        help="keep OUT/kernels/ of an earlier run instead of fitting the predictor again")
    args = parser.parse_args()
    args.out = os.path.abspath(args.out)
    os.chdir(REPO)  # the commands name files relative to the repo root
    commands, summary = [], {"preset": args.preset, "energy_source": args.energy_source}
    with tempfile.TemporaryDirectory() as tmp:
        for role, model_dir in (("teacher", args.teacher), ("student", args.student)):
            scenario = [f"--preset={args.preset}", f"--num_dmrs={workdir_lib.RunDir(model_dir).num_dmrs}"]
            tflite = quantize_lib.output_path(os.path.join(tmp, role), model_dir, "ptq")
            commands.append(run("deeprx.quantize", f"--model={model_dir}", *scenario, "--calibration_slots=64",
                                f"--out={os.path.join(tmp, role)}"))
            out = os.path.join(args.out, role)
            commands.append(run("deeprx.energy", f"--model={model_dir}", f"--tflite={tflite}", *scenario,
                                f"--energy_source={args.energy_source}", f"--out={out}"))
            with open(os.path.join(out, "energy.json")) as f:
                summary[role] = json.load(f)
    kernels_out = os.path.join(args.out, "kernels")
    kernels_args = ("deeprx.kernels", "fit", f"--preset={args.preset}", f"--fit_layers={args.fit_layers}",
                    f"--out={kernels_out}")
    reuse = args.reuse_kernels and os.path.isfile(os.path.join(kernels_out, "fit.json"))
    if not reuse:
        run(*kernels_args)
        os.remove(os.path.join(kernels_out, "predictor.joblib"))  # binary, rebuilt by the command
    with open(os.path.join(kernels_out, "fit.json")) as f:
        fit = json.load(f)
    commands.append(fit["command"])  # the fit's own command, also when reused
    if reuse:
        print(f"reusing {kernels_out} ({fit['command']})", flush=True)
    teacher, student = summary.pop("teacher"), summary.pop("student")
    heldout = fit["heldout_latency"]
    summary.update({
        "teacher_float_mj_per_inference": 1e3 * teacher["measured"]["float"]["joules_per_inference"],
        "teacher_float_mj_per_inference_source": teacher["measured"]["float"]["source"],
        "teacher_int8_mj_per_inference": 1e3 * teacher["measured"]["int8"]["joules_per_inference"],
        "teacher_int8_mj_per_inference_source": teacher["measured"]["int8"]["source"],
        "student_float_mj_per_inference": 1e3 * student["measured"]["float"]["joules_per_inference"],
        "student_float_mj_per_inference_source": student["measured"]["float"]["source"],
        "student_int8_mj_per_inference": 1e3 * student["measured"]["int8"]["joules_per_inference"],
        "student_int8_mj_per_inference_source": student["measured"]["int8"]["source"],
        "teacher_mflops": teacher["flops_per_slot"] / 1e6, "student_mflops": student["flops_per_slot"] / 1e6,
        "latency_ms": {f"{role}_{p}": entry["measured"][p]["latency_ms"]
                       for role, entry in (("teacher", teacher), ("student", student)) for p in ("float", "int8")},
        "coral_metric0_mj_per_inference": {role: next(p["metric0_mj_per_inference"] for p in entry["processors"]
                                                      if p["name"] == "Coral Edge TPU")
                                           for role, entry in (("teacher", teacher), ("student", student))},
        "teacher_training_j_per_step": teacher["training"]["joules_per_step"],
        "teacher_training_j_per_step_source": teacher["training"]["source"],
        "break_even": {f"{role}_{p}": entry["amortization"][p] for role, entry in (("teacher", teacher),
                                                                                  ("student", student))
                       for p in entry.get("amortization", {})},
        "paper_break_even_inferences": teacher["paper_example"]["break_even_inferences"],
        "paper_break_even_days_at_400_per_s": teacher["paper_example"]["break_even_days"],
        "paper_claimed_break_even_inferences": teacher["paper_example"]["claimed_break_even_inferences"],
        # Held-out latency MAPE and share within +-10% per family and backend (no calibration)
        "predictor_heldout_latency": heldout,
        "host": {k: teacher["host"][k] for k in ("peak_flops_per_s", "energy")},
        "commands": commands, "date": teacher["date"], "machine": teacher["machine"]})
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    for role in ("teacher", "student"):
        for precision in ("float", "int8"):
            key = f"{role}_{precision}_mj_per_inference"
            print(f"{role} {precision}: {summary[key]:.3f} mJ per inference ({summary[key + '_source']})")
    print(f"paper example: {summary['paper_break_even_inferences']:.3g} inferences to break even "
          f"(the paper claims {summary['paper_claimed_break_even_inferences']:.0e})")
    for family, backends in heldout.items():
        for backend, figures in backends.items():
            print(f"predictor held-out latency MAPE {family} {backend}: {figures['mape']:.1f}% (reference "
                  f"{REFERENCE_MAPE_PERCENT:g}%, ratio {figures['mape'] / REFERENCE_MAPE_PERCENT:.2f}), "
                  f"{100 * figures['within_10pct']:.0f}% of {figures['predictions']} within +-10%")
    print(f"Wrote {args.out}/summary.json")


if __name__ == "__main__":
    main()
