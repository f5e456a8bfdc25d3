"""The study's report: DIR/report.md, DIR/summary.json and DIR/report/*.png, built only
from the JSON files the earlier stages wrote (each number's file is named in summary.json)."""

import os

from deeprx.core import workdir as workdir_lib
from deeprx.core import provenance as provenance_lib
from deeprx.evaluation import receivers as receivers_lib
from deeprx.experiments import study_layout as stages
from deeprx.network import model as model_lib
from deeprx.core import io as io_lib
from deeprx.network import saved
from edge import ber as ber_lib

ROLES = {"teacher": "teacher", "scratch": "student from scratch", "kd": "KD student"}
# The main table: (header, summary key, format); None prints as "-".
COLUMNS = (
    ("parameters", "parameters", "{:,}"),
    ("MFLOPs per slot", "mflops_per_slot", "{:.1f}"),
    ("GM BER", "gm_ber", "{:.3f}"),
    ("SINR at BER 1e-2 [dB]", "sinr_at_ber_1e-2", "{:.1f}"),
    ("int8 GM BER", "int8_gm_ber", "{:.3f}"),
    ("int8 latency [ms]", "int8_latency_ms", "{:.2f}"),
    ("int8 inferences/s", "int8_inferences_per_s", "{:.0f}"),
    ("float energy [mJ/inference]", "float_mj_per_inference", "{:.3g}"),
    ("int8 energy [mJ/inference]", "int8_mj_per_inference", "{:.3g}"),
    ("Edge TPU ops mapped", "edgetpu_mapped", "{}"),
)


def cell(value, fmt):
    return "-" if value is None else fmt.format(value)


def _path(config, *parts):
    return os.path.join(config.workdir, *parts)


def _flops_on_grid(config, model):
    """FLOPs per slot of a stage's model on the study's grid (a given teacher may have been
    trained on another PRB count: its train.json counts that grid's)."""
    return model_lib.flops_per_slot(saved.model_config(workdir_lib.RunDir(_path(config, model))), config.scenario)


def teacher_sentence(config):
    """How the report describes the teacher: trained by the study, or given (with its training)."""
    if config.trains_teacher:
        return (f"Teacher {config.teacher_variant} variant, width x{config.size.teacher_width:g}, "
                f"{config.size.teacher_steps} steps")
    teacher = config.teacher_config
    train = io_lib.read_json(_path(config, "teacher", "train.json"))
    settings = workdir_lib.RunDir(_path(config, "teacher")).settings
    return (f"Teacher `{config.teacher}`, trained earlier (not by this study): {teacher.variant} variant, width "
            f"x{teacher.width_multiplier:g}, {train['steps']:,} steps, {train['slots_seen']:,} slots on the "
            f"`{settings['preset']}` preset")


def collect(config):
    """summary.json's dict, from the stage files (each entry's sources named)."""
    ber = io_lib.read_json(_path(config, "ber", "summary.json"))
    models, sources = {}, {}
    for model in stages.MODELS:
        train = io_lib.read_json(_path(config, model, "train.json"))
        runner = io_lib.read_json(_path(config, "runner", model, "runner.json"))
        runner_ber = io_lib.read_json(_path(config, "runner", model, "summary.json"))
        preflight = io_lib.read_json(stages.edgetpu_path(config, model).replace(".tflite", ".preflight.json"))
        measured = io_lib.read_json(_path(config, "energy", model, "energy.json"))["measured"]
        int8_name = f"{model}_int8"
        models[model] = {
            "role": ROLES[model], "parameters": train["parameters"],
            "mflops_per_slot": round(_flops_on_grid(config, model) / 1e6, 3),
            "gm_ber": ber[model]["gm_ber"], "sinr_at_ber_1e-2": ber[model]["sinr_at_ber_1e-2"],
            "sinr_at_ber_1e-3": ber[model]["sinr_at_ber_1e-3"],
            "int8_gm_ber": ber[int8_name]["gm_ber"], "int8_sinr_at_ber_1e-2": ber[int8_name]["sinr_at_ber_1e-2"],
            "int8_latency_ms": runner["timing"]["mean_ms"], "int8_p99_ms": runner["timing"]["p99_ms"],
            "int8_inferences_per_s": runner["timing"]["inferences_per_s"], "runner_backend": runner["backend"],
            "runner_threads": runner["threads"],
            "runner_gm_ber_on_vectors": next(iter(runner_ber.values()))["gm_ber"],
            "float_mj_per_inference": 1e3 * measured["float"]["joules_per_inference"],
            "float_energy_source": measured["float"]["source"],
            "int8_mj_per_inference": 1e3 * measured["int8"]["joules_per_inference"],
            "int8_energy_source": measured["int8"]["source"],
            "edgetpu_operators": len(preflight["operators"]), "edgetpu_mapped_count": preflight["mapped"],
            "edgetpu_mapped": f"{preflight['mapped']}/{len(preflight['operators'])}",
            "edgetpu_cut_at": preflight["cut_at"], "edgetpu_compiled": preflight["compiler"] is not None}
        sources[model] = {"train": f"{model}/train.json", "ber": "ber/summary.json",
                          "runner": f"runner/{model}/runner.json", "runner_ber": f"runner/{model}/summary.json",
                          "edgetpu": f"edgetpu/{model}_int8.preflight.json", "energy": f"energy/{model}/energy.json"}
    kd, scratch = models["kd"], models["scratch"]
    return {
        "preset": config.preset_name, "scenario": config.scenario_args, "teacher": config.teacher,
        "models": models,
        "classical": {name: {"gm_ber": ber[name]["gm_ber"], "sinr_at_ber_1e-2": ber[name]["sinr_at_ber_1e-2"]}
                      for name in receivers_lib.CLASSICAL_NAMES if name in ber},
        "kd_vs_scratch": {"gm_ber_kd": kd["gm_ber"], "gm_ber_scratch": scratch["gm_ber"],
                          "gm_ber_difference": round(kd["gm_ber"] - scratch["gm_ber"], 4),
                          **ber_lib.sinr_gains(ber["kd"], ber["scratch"])},
        "kd": {"alpha": config.alpha, "temperature": config.temperature, "form": config.kd_form,
               "reduction": config.kd_reduction, "student_flops_ratio": config.student_flops_ratio},
        "stage_seconds": {name: (stages.done_record(config, name) or {}).get("seconds")
                          for name in stages.STAGE_NAMES if name != "report"},
        "sources": sources, **provenance_lib.provenance()}


def pareto_front(points):
    """The points (energy, gm_ber, label) no other point beats in both, by energy."""
    front = []
    for point in sorted(points):
        if not front or point[1] < front[-1][1]:
            front.append(point)
    return front


def pareto_plot(summary, path, title):
    from deeprx.evaluation import plots
    points = []
    for model, entry in summary["models"].items():
        points.append((entry["float_mj_per_inference"], entry["gm_ber"], f"{entry['role']} (float)"))
        points.append((entry["int8_mj_per_inference"], entry["int8_gm_ber"], f"{entry['role']} (int8)"))
    figure, ((axes,),) = plots.figure_and_axes(figsize=(9.6, 5.0))
    for energy, gm_ber, label in points:
        axes.scatter([energy], [gm_ber], marker="s" if "int8" in label else "o", label=label, zorder=3)
    front = pareto_front(points)
    axes.step([p[0] for p in front], [p[1] for p in front], where="post", color="black", linewidth=0.8,
              label="Pareto front", zorder=2)
    for (name, entry), style in zip(summary["classical"].items(), ("--", ":", "-.", (0, (1, 3)))):
        axes.axhline(entry["gm_ber"], color="gray", linestyle=style, linewidth=1.0, label=f"{name} (no energy measured)")
    axes.set_xscale("log")
    plots.log_ticks(axes)
    axes.set_xlabel("energy per inference [mJ]\n(" + summary["models"]["kd"]["int8_energy_source"] + ")", fontsize=8)
    axes.set_ylabel("Geometric Mean BER (lower is better)")
    axes.set_title(title, fontsize=10)
    axes.grid(True, which="both", linewidth=0.3)
    plots.legend_outside(axes)
    plots.save(figure, path)


def markdown(summary, command, config):
    models = summary["models"]
    lines = [f"# DeepRx study, `{config.preset_name}` preset", "",
             f"{summary['date']}, {summary['machine']}. Command: `{command}`", "",
             f"Scenario: {' '.join(config.scenario_args)}. {teacher_sentence(config)}; students {config.student_variant} "
             f"variant at {config.student_flops_ratio:.3g} of the teacher's FLOPs, {config.size.student_steps} steps "
             f"of {config.size.batch_size} slots; KD alpha {config.alpha:g}, T {config.temperature:g} "
             f"({config.kd_form} form, KL {config.kd_reduction} over data bits).", "",
             "## Models", "",
             "| model | " + " | ".join(header for header, _, _ in COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS)]
    for entry in models.values():
        lines.append(f"| {entry['role']} | " + " | ".join(cell(entry[key], fmt) for _, key, fmt in COLUMNS) + " |")
    for name, entry in summary["classical"].items():
        cells = [cell(entry.get(key), fmt) if key in ("gm_ber", "sinr_at_ber_1e-2") else "-"
                 for _, key, fmt in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    sources = sorted({entry[f"{kind}_energy_source"] for entry in models.values() for kind in ("float", "int8")})
    compiled = any(entry["edgetpu_compiled"] for entry in models.values())
    kd = summary["kd_vs_scratch"]
    lines += ["",
              "GM BER: Geometric Mean BER over the SINR grid (log10; lower is better), float and int8 on the same "
              "slots (ber/). Latency and inferences/s: edge.runner, int8, "
              f"{next(iter(models.values()))['runner_backend']}, {config.threads} threads (runner/). "
              "Energy: the paper's four steps, relative to the base power, per inference; source: "
              + "; ".join(sources) + (". These VMs have no RAPL: CodeCarbon's figures are estimates from CPU load."
                                      if any("no RAPL" in s for s in sources) else "."),
              "Edge TPU ops mapped: " + ("compiled by edgetpu_compiler." if compiled else
                                         "predicted by the preflight (edgetpu_compiler is not installed here); "
                                         "the compiler cuts the graph at the first operator it cannot map."),
              "",
              "## KD student vs student from scratch", "",
              f"Same architecture, steps, data and evaluation slots. GM BER: KD {kd['gm_ber_kd']:.3f}, scratch "
              f"{kd['gm_ber_scratch']:.3f} (difference {kd['gm_ber_difference']:+.3f}: "
              + ("KD is better" if kd["gm_ber_difference"] < 0 else "KD is not better") + "). "
              f"SINR gain (scratch's SINR minus KD's) at BER 1e-2: {ber_lib.gain_text(kd['gain_db_at_1e-2'])}; "
              f"at 1e-3: {ber_lib.gain_text(kd['gain_db_at_1e-3'])}.", "",
              "## Plots", "",
              "![BER vs SINR](ber/ber.png)", "",
              "![Geometric Mean BER vs energy per inference](report/pareto.png)", "",
              "![Energy per ResNet block of the KD student](energy/kd/blocks.png)", "",
              "## Stages", "",
              "| stage | seconds | commands |", "|---|---:|---|"]
    for name, seconds in summary["stage_seconds"].items():
        commands = (stages.done_record(config, name) or {}).get("commands", [])
        lines.append(f"| {name} | {cell(seconds, '{:.0f}')} | " + "<br>".join(f"`{c}`" for c in commands) + " |")
    return "\n".join(lines) + "\n"


def write(config, command, log=print):
    summary = collect(config)
    os.makedirs(_path(config, "report"), exist_ok=True)
    pareto_plot(summary, _path(config, "report", "pareto.png"),
                f"DeepRx study ({config.preset_name}): GM BER vs energy per inference")
    io_lib.write_json(_path(config, "summary.json"), summary)
    text = markdown(summary, command, config)
    io_lib.atomic_write(_path(config, "report.md"), lambda f: f.write(text))
    log(f"Wrote {_path(config, 'report.md')} and {_path(config, 'summary.json')}", flush=True)
