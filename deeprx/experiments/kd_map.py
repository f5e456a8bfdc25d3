"""The student-size map (issue 37, the paper's Fig. 3 with KD): KD against training from
scratch at several student sizes, each size one published step-4 sweep (`deeprx.sweep
--student_flops_ratio=R --sweep_steps=4 --fig6_kd=flags ... --publish=DIR`: its
by-run/<run>/summary.json and train.json, its ber_vs_sinr.csv), gathered as kd_map.json:

  {"teacher": {...}, "references": {"ls_lmmse": {...}}, "sizes": [{"mflops", "flops_ratio",
   "parameters", "seeds", "kd": {"gm_ber": [per seed], "sinr_1e-2": [...], "sinr_1e-3": [...]},
   "scratch": {same}, "kd_minus_scratch_gm_ber": {"mean", "low", "high", "n"},
   "gain_db_1e-2": {same}, "gain_db_1e-3": {same}, "conditions": {NAME: {"kd", "scratch",
   "kd_minus_scratch_gm_ber", "gain_db_1e-2", "gain_db_1e-3", "command"}},
   "beats_ls_lmmse": {"float": {"kd": [the seeds that do], "scratch": [...]}, "int8": {same}}}, ...],
   "smallest_beating_ls_lmmse": {"float": {"mflops", "flops_ratio", "kd", "scratch"} or null, "int8": ...}}

A student beats ls_lmmse when both its GM BER and its SINR at BER 1e-3 are lower than
ls_lmmse's on the same test slots (a curve that never reaches 1e-3 beats none that does);
its int8 model is judged by its int8 figures of the size's price (same slots up to their
--max_bits). The smallest size beating it is the first where any student does (per arm, the
seeds that do).

Conditions off the training distribution: each DIR/conditions/NAME/ of a size's folder is a
deeprx.evaluate output whose receivers are that size's final students, named as their runs
(e.g. `--receivers=RUN_DIR,... --interference_share=0.9 --out=DIR/conditions/interference-0.9`);
its students are compared the same way, seed by seed.

KD and scratch are paired by seed (same initial weights, same batches, same test slots); the
gain in dB is scratch's SINR minus KD's at the target (> 0: KD better), over the seeds where
both reach it (null SINRs where a curve does not); low/high: the 95% Student-t interval of the
mean across seeds (kd_curves.mean_interval). Flag-free library code.
"""

import os

from deeprx.experiments import kd_curves
from deeprx.core import io as io_lib
from edge import ber as ber_lib

ARMS = ("kd", "scratch")
CONDITIONS_DIR = "conditions"
PRICE_DIR = "price"
TARGETS = {"sinr_1e-2": "sinr_at_ber_1e-2", "sinr_1e-3": "sinr_at_ber_1e-3"}


def _interval(values):
    mean, low, high, n = kd_curves.mean_interval(values)
    return {"mean": _round(mean), "low": _round(low), "high": _round(high), "n": n}


def _round(value):
    return None if value is None else round(value, 4)


def _runs(folder):
    """{(arm, seed): (the run's own summary entry, its train.json, its name)} of a published sweep."""
    runs = {}
    by_run = os.path.join(folder, "by-run")
    if not os.path.isdir(by_run):
        raise ValueError(f"{folder} is not a published sweep (no by-run/): publish it with deeprx.sweep --publish")
    for name in sorted(os.listdir(by_run)):
        arm = name.split("-", 1)[0]
        if arm not in ARMS or "-hint" in name:
            continue
        summary = io_lib.read_json(os.path.join(by_run, name, "summary.json"))[name]
        runs[arm, int(name.rsplit("-s", 1)[1])] = (summary, io_lib.read_json(os.path.join(by_run, name, "train.json")),
                                                   name)
    return runs


def receiver_results(folder, role):
    """GM BER and SINR at the targets of a reference curve of the published ber_vs_sinr.csv
    (role: teacher, ls_lmmse or perfect_lmmse), from its rows by edge/ber.py's rules."""
    rows = [row for row in io_lib.read_csv(os.path.join(folder, "ber_vs_sinr.csv")) if row["role"] == role]
    if not rows:
        raise ValueError(f"{folder}/ber_vs_sinr.csv has no {role} rows")
    entry = ber_lib.summarize([{**row, "receiver": role} for row in rows])[role]
    return {"gm_ber": entry["gm_ber"], **{key: entry[source] for key, source in TARGETS.items()}}


def compare(pairs):
    """Both arms' figures per seed and KD - scratch with its interval, from (KD, scratch)
    summary.json entries paired by seed."""
    entry = {}
    for index, arm in enumerate(ARMS):
        entry[arm] = {"gm_ber": [pair[index]["gm_ber"] for pair in pairs],
                      **{key: [pair[index].get(source) for pair in pairs] for key, source in TARGETS.items()}}
    entry["kd_minus_scratch_gm_ber"] = _interval([kd["gm_ber"] - scratch["gm_ber"] for kd, scratch in pairs])
    gains = [ber_lib.sinr_gains(kd, scratch) for kd, scratch in pairs]
    for key in TARGETS:
        target = key.split("_", 1)[1]
        entry["gain_db_" + target] = _interval([g["gain_db_at_" + target] for g in gains
                                                if g["gain_db_at_" + target] is not None])
    return entry


def _speed(figures):
    return {key: figures[key] for key in ("latency_ms", "inferences_per_s", "energy_mj_per_inference", "backend")}


def price_entry(price_dir, runs):
    """A size's int8 figures from its PRICE_DIR/price.json (deeprx.price of its students), or None:
    per arm the int8 GM BER and int8 cost in dB per seed; the float and int8 speed and energy
    of the size's network (every student of a size is the same network), its Edge TPU preflight
    and the kernel predictor's figures where priced with one. runs: [(arm, seed, run name)]."""
    path = os.path.join(price_dir, "price.json")
    if not os.path.isfile(path):
        return None
    price = io_lib.read_json(path)
    priced = [(arm, seed, price["models"][name]) for arm, seed, name in runs if name in price["models"]]
    if not priced:
        raise ValueError(f"{path} prices none of the runs {', '.join(name for _, _, name in runs)}")
    entry = {}
    for arm in ARMS:
        models = [(seed, model) for a, seed, model in priced if a == arm]
        entry[arm] = {"seeds": [seed for seed, _ in models],
                      "gm_ber": [model["int8"]["gm_ber"] for _, model in models],
                      "float_gm_ber": [model["float"]["gm_ber"] for _, model in models],
                      "sinr_1e-3": [model["int8"]["sinr_1e-3"] for _, model in models],
                      **{f"cost_db_{t}": [model[f"int8_cost_db_{t}"] for _, model in models] for t in ("1e-2", "1e-3")}}
    first = priced[0][2]
    entry.update(_network_figures(price, first), predicted=price["shapes"][first["shape"]].get("predicted"),
                 threads=price["threads"], cpu=price.get("cpu"), date=price.get("date"))
    return entry


def _network_figures(price, model):
    """A priced model's network: its Edge TPU mapping, float and int8 speed and energy."""
    shape = price["shapes"][model["shape"]]
    return {"edgetpu": model["edgetpu"], "float": _speed(shape["float"]), "int8": _speed(shape["int8"]),
            "energy_source": price["energy_source"]}


def size_entry(folder, teacher_flops):
    """One size of the map: its students' figures per seed and KD - scratch paired by seed."""
    runs = _runs(folder)
    seeds = sorted(seed for arm, seed in runs if arm == "kd" and ("scratch", seed) in runs)
    if not seeds:
        raise ValueError(f"{folder} has no KD student beside its scratch twin")
    train = runs["kd", seeds[0]][1]
    entry = {"folder": folder, "mflops": round(train["flops_per_slot"] / 1e6, 3),
             "flops_ratio": round(train["flops_per_slot"] / teacher_flops, 4), "parameters": train["parameters"],
             "steps": train["steps"], "seeds": seeds}
    entry.update(compare([(runs["kd", seed][0], runs["scratch", seed][0]) for seed in seeds]))
    names = {key: run[2] for key, run in runs.items()}
    entry["int8"] = price_entry(os.path.join(folder, PRICE_DIR), [(arm, seed, names[arm, seed])
                                                                 for arm in ARMS for seed in seeds])
    entry["conditions"] = {}
    conditions = os.path.join(folder, CONDITIONS_DIR)
    for name in sorted(os.listdir(conditions)) if os.path.isdir(conditions) else ():
        summary = io_lib.read_json(os.path.join(conditions, name, "summary.json"))
        paired = [seed for seed in seeds if names["kd", seed] in summary and names["scratch", seed] in summary]
        if paired:
            command = io_lib.read_json(os.path.join(conditions, name, "config.json")).get("command")
            entry["conditions"][name] = {"seeds": paired, "command": command, **compare(
                [(summary[names["kd", seed]], summary[names["scratch", seed]]) for seed in paired])}
    return entry


def teacher_price(price_dir, name):
    """The teacher's float and int8 figures from a deeprx.price of it (PRICE_DIR/price.json)."""
    price = io_lib.read_json(os.path.join(price_dir, "price.json"))
    if name not in price["models"]:
        raise ValueError(f"{price_dir}/price.json prices no model named {name!r}")
    model = price["models"][name]
    return {"gm_ber": model["int8"]["gm_ber"], "sinr_1e-3": model["int8"]["sinr_1e-3"],
            "float_gm_ber": model["float"]["gm_ber"],
            **{f"cost_db_{t}": model[f"int8_cost_db_{t}"] for t in ("1e-2", "1e-3")},
            **_network_figures(price, model), "cpu": price.get("cpu")}


def build(folders, teacher_name):
    """kd_map.json's dict from the published sweeps of the sizes (one folder each)."""
    if not folders:
        raise ValueError("give the published sweep of at least one student size")
    teacher_flops = None
    for folder in folders:
        flops = io_lib.read_json(os.path.join(folder, "kd_summary.json"))["teacher_mflops"] * 1e6
        if teacher_flops is not None and abs(flops - teacher_flops) > 1:
            raise ValueError(f"{folder}: its teacher has {flops / 1e6:.1f} MFLOPs, not {teacher_flops / 1e6:.1f}: "
                             "every size must distil the same teacher")
        teacher_flops = flops
    sizes = sorted((size_entry(folder, teacher_flops) for folder in folders), key=lambda e: e["mflops"])
    teacher = {"name": teacher_name, "mflops": round(teacher_flops / 1e6, 3), **receiver_results(folders[0], "teacher")}
    references = {role: receiver_results(folders[0], role) for role in ("ls_lmmse", "perfect_lmmse")}
    smallest = {}
    for kind in ("float", "int8"):
        for size in sizes:
            arms = size.setdefault("beats_ls_lmmse", {})[kind] = beating_seeds(size, kind, references["ls_lmmse"])
            if arms and any(arms.values()):
                smallest.setdefault(kind, {"mflops": size["mflops"], "flops_ratio": size["flops_ratio"], **arms})
    return {"teacher": teacher, "references": references, "sizes": sizes,
            "smallest_beating_ls_lmmse": {kind: smallest.get(kind) for kind in ("float", "int8")}}


def beats(gm_ber, sinr_1e3, reference):
    """Whether a receiver of `gm_ber` and SINR at BER 1e-3 beats `reference` on both."""
    if sinr_1e3 is None or gm_ber >= reference["gm_ber"]:
        return False
    return reference["sinr_1e-3"] is None or sinr_1e3 < reference["sinr_1e-3"]


def beating_seeds(size, kind, reference):
    """{arm: [the seeds whose student beats `reference`]} of a size's float (its sweep's
    evaluation) or int8 (its price) students; None for int8 when the size is not priced."""
    figures = size if kind == "float" else size.get("int8")
    if figures is None:
        return None
    seeds = {arm: size["seeds"] if kind == "float" else figures[arm]["seeds"] for arm in ARMS}
    return {arm: [seed for seed, gm_ber, sinr in zip(seeds[arm], figures[arm]["gm_ber"], figures[arm]["sinr_1e-3"])
                  if beats(gm_ber, sinr, reference)] for arm in ARMS}


def markdown(kd_map):
    """The map as a table: per size, both arms' mean GM BER and KD - scratch with its interval."""
    def cell(entry):  # kd_curves' cell of a kd_curves.csv-style row
        return kd_curves.cell({"v_mean": entry["mean"], "v_ci_low": entry["low"], "v_ci_high": entry["high"],
                               "v_n": entry["n"]}, "v")

    lines = ["| MFLOPs per slot | of the teacher's | parameters | seeds | GM BER, KD (mean) | scratch (mean) | "
             "KD - scratch GM BER (< 0: KD better) | gain at BER 1e-2 dB (> 0: KD better) | at 1e-3 | "
             "seeds beating ls_lmmse (KD / scratch) |",
             "|---:|---:|---:|---:|---:|---:|---|---|---|---|"]
    for size in kd_map["sizes"]:
        means = [sum(size[arm]["gm_ber"]) / len(size[arm]["gm_ber"]) for arm in ARMS]
        lines.append(f"| {size['mflops']:.1f} | {size['flops_ratio']:.1%} | {size['parameters']:,} | "
                     f"{len(size['seeds'])} | {means[0]:.3f} | {means[1]:.3f} | {cell(size['kd_minus_scratch_gm_ber'])} "
                     f"| {cell(size['gain_db_1e-2'])} | {cell(size['gain_db_1e-3'])} | "
                     f"{_beating_cell(size['beats_ls_lmmse']['float'], dict.fromkeys(ARMS, size['seeds']))} |")
    lines += ["", "Beating ls_lmmse (a lower GM BER and a lower SINR at BER 1e-3 on the same test slots): "
              + "; ".join(_smallest_sentence(kind, kd_map["smallest_beating_ls_lmmse"][kind], kd_map["sizes"])
                          for kind in ("float", "int8")) + "."]
    conditions = [(name, size, entry) for size in kd_map["sizes"] for name, entry in size.get("conditions", {}).items()]
    if conditions:
        lines += ["", "Off the training distribution (each condition's evaluation command in kd_map.json):", "",
                  "| condition | MFLOPs per slot | seeds | KD - scratch GM BER | gain at BER 1e-2 dB | at 1e-3 |",
                  "|---|---:|---:|---|---|---|"]
        lines += [f"| {name} | {size['mflops']:.1f} | {len(entry['seeds'])} | "
                  f"{cell(entry['kd_minus_scratch_gm_ber'])} | {cell(entry['gain_db_1e-2'])} | "
                  f"{cell(entry['gain_db_1e-3'])} |" for name, size, entry in conditions]
    lines += int8_table(kd_map)
    return "\n".join(lines) + "\n"


def _beating_cell(beating, judged):
    """'2/3 / 3/3': per arm, the seeds beating ls_lmmse of the seeds judged."""
    return " / ".join(f"{len(beating[arm])}/{len(judged[arm])}" for arm in ARMS)


def _smallest_sentence(kind, smallest, sizes):
    """Where the float students (or int8 models) first beat ls_lmmse, as a clause."""
    what = "float students" if kind == "float" else "int8 models"
    if smallest is None:
        judged = [size for size in sizes if size["beats_ls_lmmse"][kind] is not None]
        return f"no {what[:-1]} of the {len(judged)} size(s) {'priced' if kind == 'int8' else 'trained'} does"
    below = [size for size in sizes if size["mflops"] < smallest["mflops"]]
    return (f"{what} do from {smallest['mflops']:.1f} MFLOPs ({smallest['flops_ratio']:.1%} of the teacher's; "
            f"KD seeds {smallest['kd'] or 'none'}, scratch seeds {smallest['scratch'] or 'none'})"
            + (f", none of the {len(below)} smaller size(s)" if below else ", the smallest size of the map"))


def int8_table(kd_map):
    """Markdown lines of the priced sizes (and teacher): int8 GM BER and cost, speed, energy."""
    rows = [(f"{size['mflops']:.1f}", [size["int8"][arm] for arm in ARMS], size["int8"],
             _beating_cell(size["beats_ls_lmmse"]["int8"], {arm: size["int8"][arm]["seeds"] for arm in ARMS}))
            for size in kd_map["sizes"] if size.get("int8")]
    teacher = kd_map["teacher"].get("int8")
    if teacher:
        as_lists = {key: [teacher[key]] for key in ("gm_ber", "cost_db_1e-2")}
        beating = "yes" if beats(teacher["gm_ber"], teacher["sinr_1e-3"], kd_map["references"]["ls_lmmse"]) else "no"
        rows.append((f"{kd_map['teacher']['mflops']:.1f} (teacher)", [as_lists], teacher, beating))
    if not rows:
        return []

    def mean(values):
        values = [v for v in values if v is not None]
        return f"{sum(values) / len(values):.3f}" if values else "-"

    speed = rows[0][2]
    lines = ["", f"int8 and energy (python -m deeprx.price: PTQ on the evaluation grid; speed at batch 1 on "
                 f"{speed.get('cpu')}; energy: {speed['energy_source']}):", "",
             "| MFLOPs per slot | int8 GM BER (KD / scratch, mean) | int8 seeds beating ls_lmmse (KD / scratch) | "
             "int8 cost at BER 1e-2 [dB] (mean) | inferences/s float / int8 | mJ per inference float / int8 | "
             "Edge TPU operators mapped |",
             "|---|---|---|---|---|---|---|"]
    for label, arms, entry, beating in rows:
        lines.append(f"| {label} | {' / '.join(mean(arm['gm_ber']) for arm in arms)} | {beating} | "
                     f"{' / '.join(mean(arm['cost_db_1e-2']) for arm in arms)} | "
                     f"{entry['float']['inferences_per_s']:.0f} / {entry['int8']['inferences_per_s']:.0f} | "
                     f"{entry['float']['energy_mj_per_inference']:.2f} / {entry['int8']['energy_mj_per_inference']:.2f} | "
                     f"{entry['edgetpu']['mapped']}/{entry['edgetpu']['operators']} |")
    return lines


def pareto_front(points):
    """The (energy, GM BER) points no other point beats on both (lower is better on both), by
    increasing energy."""
    front, best = [], float("inf")
    for x, y in sorted(points):
        if y < best:
            front.append((x, y))
            best = y
    return front


def pareto_plot(kd_map, path, title):
    """GM BER against energy per inference (log), float and int8: the mean over seeds of each
    size's KD and scratch students, the teacher, ls_lmmse's GM BER as a line, and the front of
    the points no other point beats on both axes."""
    from deeprx.evaluation import plots
    figure, ((axes,),) = plots.figure_and_axes(1, 1, figsize=(9, 5))
    points = []
    for arm, marker in (("kd", "o"), ("scratch", "s")):
        for fmt, fill in (("float", "none"), ("int8", None)):
            xy = [(size["int8"][fmt]["energy_mj_per_inference"],
                   sum(size["int8"][arm]["float_gm_ber" if fmt == "float" else "gm_ber"])
                   / len(size["int8"][arm]["gm_ber"]), size["mflops"])
                  for size in kd_map["sizes"] if size.get("int8") and size["int8"][arm]["gm_ber"]]
            if xy:
                color = "C0" if arm == "kd" else "C1"
                axes.scatter([x for x, _, _ in xy], [y for _, y, _ in xy], marker=marker, facecolors=fill or color,
                             edgecolors=color,
                             label=f"{'KD' if arm == 'kd' else 'scratch'} students, {fmt} (mean over seeds)")
                points += xy
    teacher = kd_map["teacher"].get("int8")
    if teacher:
        for fmt, key in (("float", "float_gm_ber"), ("int8", "gm_ber")):
            axes.scatter([teacher[fmt]["energy_mj_per_inference"]], [teacher[key]], marker="*", s=120,
                         color="k" if fmt == "int8" else "gray", label=f"teacher {kd_map['teacher']['name']}, {fmt}")
            points.append((teacher[fmt]["energy_mj_per_inference"], teacher[key], kd_map["teacher"]["mflops"]))
    front = pareto_front([(x, y) for x, y, _ in points])
    if front:
        axes.step([x for x, _ in front], [y for _, y in front], where="post", color="k", linewidth=0.8,
                  label="Pareto front")
    for x, y, mflops in points:
        axes.annotate(f"{mflops:.0f}M", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    axes.axhline(kd_map["references"]["ls_lmmse"]["gm_ber"], color="gray", linestyle="--", linewidth=1.0,
                 label="ls_lmmse")
    axes.set_xscale("log")
    plots.log_ticks(axes)
    axes.set_xlabel("energy per inference [mJ] (estimate: see kd_map.md)")
    axes.set_ylabel("Geometric Mean BER (lower is better)")
    axes.grid(True, which="both", linewidth=0.3)
    plots.legend_outside(axes)
    figure.suptitle(plots.textwrap.fill(title, width=120), fontsize=10)
    plots.save(figure, path)


def plot(kd_map, path, title):
    """Left: GM BER against MFLOPs per slot (log), KD and scratch, mean over seeds with its 95%
    interval, the teacher and the classical receivers as references (the paper's Fig. 3 shape);
    right: KD - scratch against size with its interval."""
    from deeprx.evaluation import plots
    figure, ((left, right),) = plots.figure_and_axes(1, 2, figsize=(13, 4.6))
    sizes = kd_map["sizes"]
    mflops = [size["mflops"] for size in sizes]
    for arm, marker in (("kd", "o"), ("scratch", "s")):
        stats = [kd_curves.mean_interval(size[arm]["gm_ber"]) for size in sizes]
        errors = [[0 if low is None else mean - low for mean, low, _, _ in stats],
                  [0 if high is None else high - mean for mean, _, high, _ in stats]]
        left.errorbar(mflops, [s[0] for s in stats], yerr=errors, marker=marker, capsize=3,
                      label=f"{'KD' if arm == 'kd' else 'from scratch'} (mean, 95% interval over seeds)")
    left.scatter([kd_map["teacher"]["mflops"]], [kd_map["teacher"]["gm_ber"]], marker="*", s=120, color="k",
                 label=f"teacher {kd_map['teacher']['name']}", zorder=3)
    for (role, entry), style in zip(kd_map["references"].items(), ("--", ":")):
        left.axhline(entry["gm_ber"], color="gray", linestyle=style, linewidth=1.0, label=role)
    diffs = [size["kd_minus_scratch_gm_ber"] for size in sizes]
    right.axhline(0.0, color="gray", linewidth=0.8)
    right.errorbar(mflops, [d["mean"] for d in diffs],
                   yerr=[[0 if d["low"] is None else d["mean"] - d["low"] for d in diffs],
                         [0 if d["high"] is None else d["high"] - d["mean"] for d in diffs]],
                   marker="o", color="k", capsize=3, label="KD - scratch (mean, 95% interval)")
    for axes in (left, right):
        axes.set_xscale("log")
        plots.log_ticks(axes)
        axes.set_xlabel("student MFLOPs per slot")
        axes.grid(True, which="both", linewidth=0.3)
        plots.legend_outside(axes)
    left.set_ylabel("Geometric Mean BER (lower is better)")
    right.set_ylabel("GM BER, KD - scratch (< 0: KD better)")
    figure.suptitle(plots.textwrap.fill(title, width=180), fontsize=10)
    plots.save(figure, path)
