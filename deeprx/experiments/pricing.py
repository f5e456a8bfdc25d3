"""What a set of trained students costs on the edge (issue 37, item 4), through the project's
own CLIs (each command is recorded):

  1. every model: its int8 PTQ export on the evaluation grid (deeprx.quantize) and that
     export's Edge TPU preflight (deeprx.compile);
  2. every model, float and int8, on the same slots (one deeprx.evaluate): Geometric Mean BER,
     SINR at BER 1e-2 and 1e-3, and the int8 cost in dB (the int8 model's SINR at the target
     minus its float model's; none where a curve does not reach it);
  3. speed and energy once per network shape (models of one shape run the same operators on the
     same tensors): its float and int8 .tflite on the CPU interpreter (edge.runner, batch 1,
     --threads), `passes` round-robin passes, each figure the median pass's; energy per
     inference is the energy source's estimate (cputime: the process's CPU time x W per busy
     core);
  4. with a kernel predictor (deeprx.kernels fit): its predicted latency and CPU time of both
     exports, beside the measurement.

Writes OUT/price.json: {"models": {name: {"run", "shape", "mflops", "parameters", "float": {...},
"int8": {...}, "int8_cost_db_1e-2", "int8_cost_db_1e-3", "edgetpu": {...}}}, "shapes": {shape:
{"float": speed, "int8": speed, "predicted": {...}}}, "threads", "energy_source", "commands",
machine, CPU, date}. Flag-free library code.
"""

import os

from deeprx.core import io as io_lib
from deeprx.core import jobs
from deeprx.core import provenance as provenance_lib
from deeprx.core import workdir as workdir_lib
from deeprx.export import quantize as quantize_lib
from deeprx.network import model as model_lib
from deeprx.network import saved

TARGETS = ("1e-2", "1e-3")


def shape_label(model_config):
    """One name per network shape: variant, width and depth multipliers."""
    return f"{model_config.variant}-w{model_config.width_multiplier:.4g}-d{model_config.depth_multiplier}"


def _speed(report):
    """The figures of an edge.runner runner.json."""
    timing = report["timing"]
    return {"backend": report["backend"], "latency_ms": timing["mean_ms"], "p99_ms": timing.get("p99_ms"),
            "inferences_per_s": timing["inferences_per_s"], "cpu_ms_per_inference": timing["cpu_ms_per_inference"],
            "energy_mj_per_inference": 1e3 * report["energy"]["joules_per_inference"]}


def median_pass(passes):
    """The pass (a timing dict) of median inferences/s (the lower middle one of an even count),
    with every pass's rate and their spread ((max - min) / median) added."""
    rates = sorted(p["inferences_per_s"] for p in passes)
    middle = next(p for p in passes if p["inferences_per_s"] == rates[(len(rates) - 1) // 2])
    return dict(middle, inferences_per_s_passes=[round(p["inferences_per_s"], 2) for p in passes],
                spread=round((rates[-1] - rates[0]) / middle["inferences_per_s"], 4))


def price(models, preset_name, scenario, out, threads=2, count=300, passes=3, max_bits=None,
          energy_source="cputime:4", energy_label=None, predictor_dir=None, log=print):
    """Prices the trained run directories `models` (their names must differ) on `scenario`
    (the preset's, with the models' DMRS count); energy_source is edge.runner's (cputime:W,
    rated:W, rapl, meter:PATH), energy_label what it is in words. Writes and returns
    OUT/price.json's dict."""
    names = [workdir_lib.RunDir(model).name for model in models]
    if len(set(names)) != len(names):
        raise ValueError(f"the models' names must differ (they name the receivers): {', '.join(names)}")
    os.makedirs(out, exist_ok=True)
    log_path = os.path.join(out, "price.log")
    commands = []
    grid = [f"--preset={preset_name}", f"--num_dmrs={scenario.dmrs.num_symbols}"]

    def run(*args):
        log("$ " + jobs.command_line(args), flush=True)
        commands.append(jobs.run(args, log_path))

    result, shapes = {"models": {}, "shapes": {}}, {}
    for model, name in zip(models, names):
        config = saved.model_config(workdir_lib.RunDir(model))
        shape = shape_label(config)
        files = {method: quantize_lib.output_path(out, model, method) for method in ("ptq", "float")}
        run("deeprx.quantize", f"--model={model}", *grid, "--method=ptq", f"--out={out}")
        run("deeprx.compile", f"--model={files['ptq']}")
        preflight = io_lib.read_json(files["ptq"][:-len(".tflite")] + ".preflight.json")
        if shape not in shapes:
            run("deeprx.quantize", f"--model={model}", *grid, "--method=float", f"--out={out}")
            shapes[shape] = files
        result["models"][name] = {
            "run": model, "shape": shape, "mflops": round(model_lib.flops_per_slot(config, scenario) / 1e6, 3),
            "parameters": model_lib.params(config, scenario), "int8_file": os.path.basename(files["ptq"]),
            "edgetpu": {"operators": len(preflight["operators"]), "mapped": preflight["mapped"],
                        "cut_at": preflight["cut_at"]}}

    ber_dir = os.path.join(out, "ber")
    int8 = [quantize_lib.output_path(out, model, "ptq") for model in models]
    run("deeprx.evaluate", *grid, f"--receivers={','.join(list(models) + int8)}",
        *([f"--max_bits={max_bits}"] if max_bits else []), f"--out={ber_dir}")
    summary = io_lib.read_json(os.path.join(ber_dir, "summary.json"))  # by edge/ber.py's rules
    for name, path in zip(names, int8):
        entry = result["models"][name]
        for fmt, receiver in (("float", name), ("int8", os.path.basename(path)[:-len(".tflite")])):
            entry[fmt] = {"gm_ber": summary[receiver]["gm_ber"],
                          **{f"sinr_{t}": summary[receiver][f"sinr_at_ber_{t}"] for t in TARGETS}}
        for target in TARGETS:
            needed = entry["int8"][f"sinr_{target}"], entry["float"][f"sinr_{target}"]
            entry[f"int8_cost_db_{target}"] = None if None in needed else round(needed[0] - needed[1], 3)

    timings = {}
    for number in range(1, passes + 1):
        log(f"speed pass {number}/{passes}", flush=True)
        for shape, files in shapes.items():
            for fmt, method in (("float", "float"), ("int8", "ptq")):
                runner_dir = os.path.join(out, "runner", f"{shape}_{fmt}", f"pass{number}")
                run("edge.runner", f"--model={files[method]}", f"--threads={threads}", f"--count={count}",
                    "--batches=1", f"--energy_source={energy_source}", "--base_seconds=0.1", f"--out={runner_dir}")
                timings.setdefault((shape, fmt), []).append(_speed(io_lib.read_json(
                    os.path.join(runner_dir, "runner.json"))))
    predictor = None
    if predictor_dir:
        from deeprx.costs import kernel_predictor
        predictor = kernel_predictor.load_predictor(predictor_dir)
    for shape, files in shapes.items():
        entry = result["shapes"][shape] = {fmt: median_pass(timings[shape, fmt]) for fmt in ("float", "int8")}
        if predictor is not None:
            from deeprx.costs import op_features
            entry["predicted"] = {}
            for fmt, method in (("float", "float"), ("int8", "ptq")):
                backend = "tflite_int8" if method == "ptq" else "tflite_float"
                wall, cpu = predictor.model_seconds(op_features.tflite_ops(files[method]), backend, threads)
                entry["predicted"][fmt] = {"latency_ms": round(1e3 * wall, 4),
                                           "cpu_ms_per_inference": round(1e3 * cpu, 4)}
    result.update({"preset": preset_name, "num_dmrs": scenario.dmrs.num_symbols, "threads": threads,
                   "passes": passes, "energy_source": energy_label or energy_source, "predictor": predictor_dir,
                   "commands": commands, **provenance_lib.provenance()})
    io_lib.write_json(os.path.join(out, "price.json"), result)
    return result

