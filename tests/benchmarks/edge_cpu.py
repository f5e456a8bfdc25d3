"""Benchmark (run on demand, not by the test suite): teacher and student, float and int8, side by side.

Example usage (from the repository root, with nothing else running):
  python tests/benchmarks/edge_cpu.py --student=pretrained:kd-student-cpu-2dmrs --teacher=pretrained:teacher-cpu-2dmrs

On the --preset grid (default demo), through the project's own CLIs (their commands are
printed and recorded), for the student and the teacher:
  1. export: the float32 graph, PTQ int8 and (student) QAT int8 (python -m deeprx.quantize),
     and the Edge TPU preflight of each int8 model (python -m deeprx.compile);
  2. speed at --threads threads, the same for every row: float in Keras (tf.function, batch
     1), and each .tflite on the CPU interpreter (python -m edge.runner): latency at batch 1,
     throughput at the best of --batches, the CPU time the process spent per inference
     (busy cores = CPU time / wall time) and the energy per inference it implies
     (cputime: process CPU time x CodeCarbon's TDP per core, an estimate); every format is timed
     once in each of --passes round-robin passes and a row is its median pass (the passes'
     rates and spread are recorded: a VM's speed wanders over minutes);
  3. BER vs SINR of the float model and its int8 models on the same slots, at least
     --slots_per_point slots per SINR point (python -m deeprx.evaluate): the int8 cost in dB
     at BER 1e-2 and 1e-3 (SINR the int8 model needs minus the float model's; none where a
     curve does not stay below the target);
  4. with --onnxruntime, reference rows for the student: its float and PTQ .tflite converted
     by tf2onnx and timed in ONNX Runtime at the same threads (no BER: the same weights), so a
     reader can tell whether LiteRT's int8 path is near what another well-kept runtime gets.
Prints a table and the figures against their references (int8 student at least 400
inferences/s at batch 1, the paper's deployment rate, and at least 3x its float Keras model;
int8 cost at most 0.3 dB) and writes OUT/summary.json with everything behind them.
"""

import argparse
import importlib.util
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
from deeprx.core import jobs  # noqa: E402
from deeprx.experiments.pricing import median_pass  # noqa: E402

LOG = os.path.join(REPO, "runs", "benchmarks", os.path.basename(__file__)[:-3] + ".log")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REFERENCE_INFERENCES_PER_S = 400.0
REFERENCE_VS_FLOAT_KERAS = 3.0
REFERENCE_COST_DB = 0.3
TARGETS = (("1e-2", 1e-2), ("1e-3", 1e-3))


def run(*args):
    """`python -m ARGS` from the repo root through the project's job runner (log:
    runs/benchmarks/<this script>.log); JobError with the log's tail if it fails."""
    print("$ " + jobs.command_line(args), flush=True)
    return jobs.run(args, LOG)


def read_json(path):
    with open(os.path.join(REPO, path)) as f:
        return json.load(f)


def scenario_of(model_dir, preset):
    import dataclasses
    from deeprx.core import config as config_lib
    from deeprx.core import workdir as workdir_lib
    scenario = config_lib.get_preset(preset).scenario
    dmrs = workdir_lib.RunDir(model_dir).num_dmrs
    return dataclasses.replace(scenario, dmrs=dataclasses.replace(scenario.dmrs, num_symbols=dmrs))


def timer(call):
    """A function of a count of calls of `call()` giving their mean latency and the CPU time
    the process spent (user + system), after 10 untimed calls."""
    from edge import power as power_lib

    def timing(count):
        for _ in range(10):
            call()
        cpu, start = power_lib.cpu_seconds(), time.perf_counter()
        for _ in range(count):
            call()
        wall, cpu = time.perf_counter() - start, power_lib.cpu_seconds() - cpu
        return {"mean_ms": 1e3 * wall / count, "inferences_per_s": count / wall, "cpu_ms_per_inference": 1e3 * cpu / count,
                "busy_cores": cpu / wall}
    return timing


def keras_timer(model_dir, scenario):
    """The float model in Keras, rebuilt batch-1 on the grid, as a `timer`."""
    import numpy as np
    import tensorflow as tf
    from deeprx.core import workdir as workdir_lib
    from deeprx.network import saved
    model, _ = saved.model_on_grid(workdir_lib.RunDir(model_dir), scenario, batch_size=1)
    call = tf.function(lambda x: model(x, training=False))
    x = tf.constant(np.random.RandomState(0).normal(size=(1, *scenario.grid_shape, scenario.num_input_channels)),
                    tf.float32)
    return timer(lambda: call(x).numpy())


def onnxruntime_timer(tflite_path, threads, commands):
    """The reference row's runtime: `tflite_path` converted by tf2onnx (its int8 operators
    become QLinear/QDQ ones) and run by ONNX Runtime's CPU provider at `threads` intra-op
    threads (its defaults otherwise), batch 1, as a `timer`. The .onnx goes to runs/benchmarks/."""
    import numpy as np
    import onnxruntime as ort
    onnx_path = os.path.join(os.path.relpath(os.path.dirname(LOG), REPO),
                             os.path.basename(tflite_path)[:-len(".tflite")] + ".onnx")
    commands.append(run("tf2onnx.convert", f"--tflite={tflite_path}", f"--output={onnx_path}", "--opset=17"))
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    (spec,) = session.get_inputs()
    x = np.random.RandomState(0).normal(size=spec.shape)
    x = x.astype(np.float32) if spec.type == "tensor(float)" else np.clip(30 * x, -128, 127).astype(np.int8)
    return timer(lambda: session.run(None, {spec.name: x})), ort.__version__


def timer_row(role, fmt, file, timing, watts):
    """A side-by-side row of a (median) timing pass. A pass of `timer` gives batch 1 only and its
    energy as its CPU time x `watts`; a pass of edge.runner also gives its backend, p99 latency,
    throughput at its best batch and its own energy figure (the same power model)."""
    throughput = timing.get("throughput") or {}
    row = {"model": role, "format": fmt, "file": file}
    if "backend" in timing:
        row["backend"] = timing["backend"]
    row.update({"batch1_latency_ms": timing["mean_ms"], "inferences_per_s": timing["inferences_per_s"],
                "passes": timing["inferences_per_s_passes"], "spread": timing["spread"]})
    if "p99_ms" in timing:
        row["p99_ms"] = timing["p99_ms"]
    row.update({"throughput_slots_per_s": throughput.get("slots_per_s"), "best_batch": throughput.get("best_batch"),
                "cpu_ms_per_inference": timing["cpu_ms_per_inference"], "busy_cores": timing["busy_cores"],
                "energy_mj_per_inference": timing.get("energy_mj_per_inference",
                                                      watts * timing["cpu_ms_per_inference"])})
    return row


def sinr_needed(rows, receiver, target):
    from edge import ber as ber_lib
    return ber_lib.sinr_at_ber([(float(r["sinr_db"]), int(r["bit_errors"]), int(r["bits"]))
                                for r in rows if r["receiver"] == receiver], target)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", required=True)
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--count", type=int, default=500, help="timed batch-1 invokes per model and pass")
    parser.add_argument("--passes", type=int, default=5, help="speed: round-robin passes over every format; a row "
                        "is its median pass")
    parser.add_argument("--batches", default="1,4,16,64", help="throughput: slots per invoke to try")
    parser.add_argument("--qat_steps", type=int, default=300)
    parser.add_argument("--slots_per_point", type=int, default=1000, help="BER: slots per SINR point")
    parser.add_argument("--onnxruntime", action="store_true", help="add reference rows: the student's float and "
                        "PTQ .tflite converted by tf2onnx and run by ONNX Runtime (pip install -e .[onnx])")
    parser.add_argument("--out", default=os.path.join(REPO, "data", "results", "edge-cpu"))
    args = parser.parse_args()
    missing = [name for name in ("tf2onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
    if args.onnxruntime and missing:
        parser.error(f"--onnxruntime needs {' and '.join(missing)}, not installed: pip install -e .[onnx]")
    args.out = os.path.abspath(args.out)
    os.chdir(REPO)  # the commands name files relative to the repo root
    from deeprx.core import workdir as workdir_lib
    from deeprx.costs import power_sources
    from deeprx.core import provenance as provenance_lib
    from deeprx.export import quantize as quantize_lib
    from deeprx.simulation import data as data_lib
    from deeprx.core import io as io_lib
    os.makedirs(args.out, exist_ok=True)
    out = os.path.relpath(args.out, REPO)
    energy = power_sources.cputime_source()
    summary = {"preset": args.preset, "threads": args.threads, "energy_source": energy.label(),
               "energy_watts_per_busy_core": energy.watts}
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    commands, rows, models, onnx_timers = [], [], [], {}
    for role, model_dir, methods in (("student", args.student, ("float", "ptq", "qat")),
                                     ("teacher", args.teacher, ("float", "ptq"))):
        scenario = scenario_of(model_dir, args.preset)
        dmrs = scenario.dmrs.num_symbols
        files = {}
        for method in methods:
            path = files[method] = quantize_lib.output_path(out, model_dir, method)
            qat = [f"--qat_steps={args.qat_steps}"] if method == "qat" else []
            commands.append(run("deeprx.quantize", f"--model={model_dir}", f"--preset={args.preset}", f"--num_dmrs={dmrs}",
                                f"--method={method}", *qat, f"--out={out}"))
            if method != "float":
                commands.append(run("deeprx.compile", f"--model={path}"))
                preflight = read_json(path.replace(".tflite", ".preflight.json"))
                summary[f"{role}_{method}_preflight"] = {
                    "variant": read_json(path.replace(".tflite", ".json"))["model_config"]["variant"],
                    "operators": len(preflight["operators"]), "mapped": preflight["mapped"], "cpu": preflight["cpu"],
                    "cut_at": preflight["cut_at"]}
        # BER of the float model and its int8 models on the same slots.
        bits_per_slot = int(data_lib.data_mask(scenario).sum()) * scenario.bits_per_symbol
        ber_dir = os.path.join(out, "ber" if role == "student" else f"ber-{role}")
        int8_files = [files[m] for m in methods if m != "float"]
        commands.append(run("deeprx.evaluate", f"--preset={args.preset}", f"--num_dmrs={dmrs}",
                            f"--receivers={model_dir},{','.join(int8_files)}", "--target_errors=1000000000",
                            f"--max_bits={args.slots_per_point * bits_per_slot}", f"--out={ber_dir}"))
        models.append((role, model_dir, methods, files, ber_dir, keras_timer(model_dir, scenario)))
        if args.onnxruntime and role == "student":
            for method in ("float", "ptq"):
                onnx_timers[method], summary["onnxruntime_version"] = onnxruntime_timer(files[method], args.threads,
                                                                                        commands)

    # Speed: every format of both models once a pass, --passes round-robin passes (a VM's
    # speed wanders over minutes); each row gives its median pass and the passes' spread.
    timings = {}
    for number in range(1, args.passes + 1):
        print(f"speed pass {number}/{args.passes}", flush=True)
        for role, model_dir, methods, files, _, keras in models:
            timings.setdefault((role, "keras"), []).append(keras(min(args.count, 300)))
            for method in methods:
                runner_dir = os.path.join(out, f"runner_{role}_{method}", f"pass{number}")
                command = run("edge.runner", f"--model={files[method]}", f"--threads={args.threads}",
                              f"--count={args.count}", f"--batches={args.batches}",
                              f"--energy_source=cputime:{energy.watts:g}", "--base_seconds=0.1", f"--out={runner_dir}")
                if number == 1:
                    commands.append(command)
                report = read_json(os.path.join(runner_dir, "runner.json"))
                timings.setdefault((role, method), []).append(dict(
                    report["timing"], backend=report["backend"], throughput=report["throughput"],
                    energy_mj_per_inference=1e3 * report["energy"]["joules_per_inference"]))
        for method, onnx in onnx_timers.items():
            timings.setdefault(("student", f"onnxruntime {method}"), []).append(onnx(args.count))
    for role, model_dir, methods, files, ber_dir, _ in models:
        rows.append(timer_row(role, "float Keras", model_dir, median_pass(timings[role, "keras"]), energy.watts))
        for method in methods:
            fmt = {"float": "float TFLite", "ptq": "int8 TFLite (PTQ)", "qat": "int8 TFLite (QAT)"}[method]
            rows.append(timer_row(role, fmt, files[method], median_pass(timings[role, method]), energy.watts))
        for method in onnx_timers if role == "student" else ():
            fmt = {"float": "float ONNX Runtime", "ptq": "int8 ONNX Runtime (PTQ)"}[method]
            rows.append(dict(timer_row(role, fmt, files[method], median_pass(timings[role, f"onnxruntime {method}"]),
                                       energy.watts), reference=True, gm_ber=None))
        ber = read_json(os.path.join(ber_dir, "summary.json"))
        ber_rows = io_lib.read_csv(os.path.join(REPO, ber_dir, "ber.csv"))
        summary[f"{role}_slots_per_point"] = min(int(r["slots"]) for r in ber_rows)
        float_name = workdir_lib.RunDir(model_dir).name  # its receiver name (pretrained:NAME gives NAME)
        for row in rows:
            if row["model"] != role or row.get("reference"):
                continue  # the ONNX Runtime rows are speed references: no BER of their own
            name = float_name if row["format"].startswith("float") else os.path.splitext(
                os.path.basename(row["file"]))[0]
            row["gm_ber"] = ber[name]["gm_ber"]
            for label, target in TARGETS:
                float_sinr, sinr = sinr_needed(ber_rows, float_name, target), sinr_needed(ber_rows, name, target)
                row[f"sinr_at_ber_{label}"] = sinr
                row[f"cost_db_at_ber_{label}"] = (None if sinr is None or float_sinr is None
                                                  else round(sinr - float_sinr, 3))

    def row_of(model, fmt):
        return next(r for r in rows if r["model"] == model and r["format"] == fmt)
    student_int8, student_keras = row_of("student", "int8 TFLite (PTQ)"), row_of("student", "float Keras")
    teacher_keras = row_of("teacher", "float Keras")
    summary.update({
        "int8_student_inferences_per_s": student_int8["inferences_per_s"],
        "int8_student_p99_ms": student_int8["p99_ms"],
        "int8_student_inferences_per_s_passes": student_int8["passes"],
        "speed_passes": args.passes,
        "int8_student_throughput_slots_per_s": student_int8["throughput_slots_per_s"],
        "int8_student_best_batch": student_int8["best_batch"],
        "float_student_keras_inferences_per_s": round(student_keras["inferences_per_s"], 2),
        "int8_student_vs_float_keras": round(student_int8["inferences_per_s"] / student_keras["inferences_per_s"], 2),
        "float_teacher_inferences_per_s": round(teacher_keras["inferences_per_s"], 2),
        "speedup_vs_float_teacher": round(student_int8["inferences_per_s"] / teacher_keras["inferences_per_s"], 2),
        "reference_inferences_per_s": REFERENCE_INFERENCES_PER_S, "reference_vs_float_keras": REFERENCE_VS_FLOAT_KERAS})
    for method in ("ptq", "qat"):
        row = row_of("student", f"int8 TFLite ({method.upper()})")
        for label, _ in TARGETS:
            summary[f"{method}_cost_db_at_ber_{label}"] = row[f"cost_db_at_ber_{label}"]
        summary[f"{method}_gm_ber_delta"] = round(row["gm_ber"] - student_keras["gm_ber"], 4)
    summary.update({"float_student_gm_ber": student_keras["gm_ber"],
                    "float_student_sinr_at_ber_1e-2": student_keras["sinr_at_ber_1e-2"],
                    "reference_cost_db": REFERENCE_COST_DB, "student": args.student, "teacher": args.teacher,
                    "side_by_side": [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in rows],
                    "commands": commands, "command": "python tests/benchmarks/edge_cpu.py " + " ".join(sys.argv[1:])})
    summary.update(provenance_lib.provenance())
    io_lib.write_json(os.path.join(args.out, "summary.json"), summary)

    print(f"\n{args.threads} threads, {args.preset} grid, CPU {provenance_lib.cpu_model()}; energy: {energy.label()}")
    print(f"{'model':8} {'format':24} {'ms (b=1)':>9} {'inf/s':>8} {'spread':>6} {'slots/s':>8} {'CPU ms':>7} "
          f"{'mJ':>7} {'GM BER':>7} {'cost@1e-2':>9}")
    for r in rows:
        print(f"{r['model']:8} {r['format']:24} {r['batch1_latency_ms']:9.3f} {r['inferences_per_s']:8.1f} "
              f"{100 * r['spread']:5.0f}% "
              f"{r['throughput_slots_per_s'] or float('nan'):8.1f} {r['cpu_ms_per_inference']:7.3f} "
              f"{r['energy_mj_per_inference']:7.3f} {r['gm_ber'] or float('nan'):7.3f} "
              f"{str(r.get('cost_db_at_ber_1e-2')):>9}")
    rate = student_int8["inferences_per_s"]
    print(f"int8 student: {rate:.0f} inferences/s at batch 1, median of {args.passes} passes "
          f"({', '.join(f'{p:.0f}' for p in student_int8['passes'])}) (reference {REFERENCE_INFERENCES_PER_S:.0f}: ratio "
          f"{rate / REFERENCE_INFERENCES_PER_S:.2f}), {summary['int8_student_vs_float_keras']}x its float Keras model "
          f"(reference {REFERENCE_VS_FLOAT_KERAS:g}x), {student_int8['throughput_slots_per_s']:.0f} slots/s at batch "
          f"{student_int8['best_batch']}")
    for method in ("ptq", "qat"):
        print(f"{method.upper()} int8 cost at BER 1e-2: {summary[f'{method}_cost_db_at_ber_1e-2']} dB (reference <= "
              f"{REFERENCE_COST_DB} dB), at 1e-3: {summary[f'{method}_cost_db_at_ber_1e-3']} dB; Geometric Mean BER "
              f"change {summary[f'{method}_gm_ber_delta']}; {summary['student_slots_per_point']} slots per point")
    print(f"Wrote {os.path.join(args.out, 'summary.json')}")


if __name__ == "__main__":
    main()
