"""Shipping a finished training run as a pretrained model (data/models/<name>/ with its model
card, its evaluation and its deployable exports named by grid), or keeping an unfinished
run's latest checkpoint in data/checkpoints/<name>/: the library behind python -m deeprx.ship
(whose docstring says what a shipped model holds)."""

import os
import shutil

from deeprx.core import io as io_lib
from deeprx.core import workdir as workdir_lib
from deeprx.network import curves


CHECKPOINTS_DIR = os.path.join(os.path.dirname(workdir_lib.MODELS_DIR), "checkpoints")

COPIED = (workdir_lib.MODEL_FILENAME, "config.json", "train.json", curves.CURVE_FILENAME,
          os.path.join("eval", "ber.png"))
# Written, not copied: the model's receiver renamed from its run's name to the shipped one.
EVALUATION = ("summary.json", "ber.csv")


def _sinr(value):
    return "not reached" if value is None else f"{value:.2f} dB"


def _origin(settings):
    kd = settings.get("kd")
    if not kd:
        return "trained from scratch"
    teacher = kd["teacher"]  # a training records the path the teacher was loaded from
    if os.path.dirname(os.path.abspath(teacher)) == os.path.abspath(workdir_lib.MODELS_DIR):
        teacher = workdir_lib.PRETRAINED_PREFIX + os.path.basename(teacher)
    return (f"distilled from the teacher `{teacher}` (alpha {kd['alpha']:g}, T {kd['temperature']:g}, "
            f"{kd.get('form', 'paper')} form)")


def model_card(name, settings, trained, summary, rows, exports=()):
    """MODEL.md text of a shipped model; exports: the shipped .tflite files' (record, preflight) dicts."""
    scenario, model = settings["scenario"], settings["model"]
    receivers = list(summary)
    lines = [
        f"# {name}", "",
        f"DeepRx ({model['variant']} variant, width x{model['width_multiplier']:g}) {_origin(settings)} on the "
        f"`{settings['preset']}` preset: {scenario['carrier']['num_prb']} PRB, {scenario['modulation']}, "
        f"{scenario['dmrs']['num_symbols']} DMRS, {scenario['num_rx']} Rx, "
        f"{scenario['channel']['family'].upper()} {'/'.join(scenario['channel']['train_models'])} in training, "
        f"{'/'.join(scenario['channel']['test_models'])} in the evaluation below.", "",
        f"Use it as `pretrained:{name}` wherever a model directory is taken, e.g.", "",
        "```sh",
        f"python -m deeprx.evaluate --preset={settings['preset']} --num_dmrs={scenario['dmrs']['num_symbols']} "
        f"--receivers=pretrained:{name},ls_lmmse,perfect_lmmse --out=runs/eval-{name}",
        "```", "",
        "| | |", "|---|---|",
        f"| command | `{trained['command']}` |",
        f"| commit | {trained.get('commit', 'not recorded')} |",
        f"| steps x slots per step | {trained['steps']:,} x {settings['train']['batch_size']} |",
        f"| slots seen | {trained.get('slots_seen', trained['steps'] * settings['train']['batch_size']):,} |",
        f"| training time | {trained.get('train_seconds_total', trained['seconds_this_run']) / 3600:.2f} h |",
        f"| machine | {trained['machine']}; {trained.get('cpu', 'CPU not recorded')} |",
        f"| parameters | {trained['parameters']:,} |",
        f"| FLOPs per slot (one inference) | {trained['flops_per_slot'] / 1e6:.1f} M |",
        f"| recipe | optimizer {settings['train'].get('optimizer', 'adam')}, schedule "
        f"{settings['train'].get('schedule', 'cosine')}, peak learning rate {settings['train']['learning_rate']:g}, "
        f"SINR sampling {settings['train'].get('sinr_sampling', 'snr_sir')} |", "",
        "## Evaluation (eval/ of the run: test channels, same slots for every receiver)", "",
        io_lib.markdown_table(["receiver", "Geometric Mean BER", "SINR at BER 1e-2", "SINR at BER 1e-3"], [
            {"receiver": receiver, "Geometric Mean BER": f"{entry['gm_ber']:.3f}",
             "SINR at BER 1e-2": _sinr(entry["sinr_at_ber_1e-2"]), "SINR at BER 1e-3": _sinr(entry["sinr_at_ber_1e-3"])}
            for receiver, entry in summary.items()])]
    by_sinr = {}
    for row in rows:
        by_sinr.setdefault(float(row["sinr_db"]), {"SINR [dB]": f"{float(row['sinr_db']):g}"})[row["receiver"]] = \
            f"{float(row['ber']):.2e}"
    lines += ["", "BER per SINR point (bit errors / bits in ber.csv):", "",
              io_lib.markdown_table(["SINR [dB]", *receivers], [by_sinr[sinr] for sinr in sorted(by_sinr)])]
    if exports:
        header = ["file", "method", "grid", "input", "size", "operators on the Edge TPU / CPU", "first CPU operator"]
        lines += ["", "## Deployable exports (python -m deeprx.quantize; Edge TPU preflight of python -m deeprx.compile)",
                  "", io_lib.markdown_table(header, [dict(zip(header, (
                      record["model"], record["method"], _grid(record),
                      f"{record['input']['dtype']} {'x'.join(str(d) for d in record['input']['shape'])}",
                      f"{record['size_bytes'] / 1e3:.0f} kB", f"{preflight['mapped']} / {preflight['cpu']}",
                      "none" if preflight.get("cut_at") is None else f"#{preflight['cut_at']}")))
                      for record, preflight in exports])]
        lines += ["", "Each .tflite comes with its .json (the export record: scenario, channel layout, input and output "
                  "quantization) and its .preflight.json (every operator's status). Made with:", "", "```sh",
                  *[record.get("command") or f"{record['model']}: command not recorded" for record, _ in exports],
                  "```", ""]
    lines += ["", f"Files: {', '.join([os.path.basename(p) for p in COPIED] + list(EVALUATION))} (those the run has).", ""]
    return "\n".join(lines)


def _grid(record):
    """"8 PRB (`cpu`)": the grid an export takes (its record's scenario and preset)."""
    if "scenario" not in record:
        return "-"
    return f"{record['scenario']['carrier']['num_prb']} PRB (`{record['preset']}`)"


def shipped_export_name(name, record):
    """The shipped file name of an export: <name>_<P>prb_<int8|int8_qat|float>.tflite."""
    from deeprx.export.quantize import FILE_SUFFIXES
    grid = f"_{record['scenario']['carrier']['num_prb']}prb" if "scenario" in record else ""
    return f"{name}{grid}_{FILE_SUFFIXES[record['method']]}.tflite"


def _copy_exports(files, name, dest):
    """Copies each (.tflite, record, preflight) into dest under shipped_export_name (the
    records' "model" fields follow), after removing the exports shipped there before; returns
    the (record, preflight) dicts."""
    exports = []
    for tflite, record, preflight in files:
        with open(tflite, "rb") as f:  # read before the old exports go: one may be shipped again
            exports.append((f.read(), io_lib.read_json(record), io_lib.read_json(preflight)))
    for entry in os.listdir(dest):
        if entry.startswith(name + "_") and entry.endswith((".tflite", ".json")):
            os.remove(os.path.join(dest, entry))
    shipped = []
    for tflite, record, preflight in exports:
        file_name = shipped_export_name(name, record)
        stem = file_name[:-len(".tflite")]
        io_lib.atomic_write(os.path.join(dest, file_name), lambda f, data=tflite: f.write(data), binary=True)
        record, preflight = dict(record, model=file_name), dict(preflight, model=file_name)
        io_lib.write_json(os.path.join(dest, stem + ".json"), record)
        io_lib.write_json(os.path.join(dest, stem + ".preflight.json"), preflight)
        shipped.append((record, preflight))
    return shipped


def _shipped_exports(name, dest):
    """The (record, preflight) dicts of the exports already shipped in dest (a model shipped
    again without --tflite keeps them)."""
    stems = sorted(entry[:-len(".tflite")] for entry in os.listdir(dest)
                   if entry.startswith(name + "_") and entry.endswith(".tflite"))
    return [(io_lib.read_json(os.path.join(dest, stem + ".json")),
             io_lib.read_json(os.path.join(dest, stem + ".preflight.json"))) for stem in stems]


def export_files(path):
    """(.tflite, .json record, .preflight.json) of one export; ValueError naming what is missing."""
    if not path.endswith(".tflite") or not os.path.isfile(path):
        raise ValueError(f"{path!r} is not a .tflite file")
    record, preflight = path[:-len(".tflite")] + ".json", path[:-len(".tflite")] + ".preflight.json"
    if not os.path.isfile(record):
        raise ValueError(f"{path!r} has no export record {os.path.basename(record)}: export it with python -m "
                         "deeprx.quantize")
    if not os.path.isfile(preflight):
        raise ValueError(f"{path!r} has no preflight report: run python -m deeprx.compile --model={path}")
    return path, record, preflight


def ship(run_dir, name, models_dir=workdir_lib.MODELS_DIR, tflite=()):
    """Copies the run's files (and the `tflite` exports with their records and preflight
    reports) into models_dir/name and writes MODEL.md; returns the directory."""
    run = workdir_lib.RunDir(run_dir)
    if not run.finished():
        raise ValueError(f"{run_dir!r} is not a finished run (model.keras, train.json and eval/summary.json)")
    files = [export_files(path) for path in tflite]
    dest = os.path.join(models_dir, name)
    os.makedirs(dest, exist_ok=True)
    for relative in COPIED:
        source, target = os.path.join(run_dir, relative), os.path.join(dest, os.path.basename(relative))
        if os.path.isfile(source) and os.path.abspath(source) != os.path.abspath(target):
            shutil.copyfile(source, target)  # (not when a shipped model is shipped again in place)
    exports = _copy_exports(files, name, dest) if files else _shipped_exports(name, dest)
    trained = io_lib.read_json(run.file("train.json"))
    # The evaluation names the model after its run; shipped, it answers to `name` (RunDir.name
    # of pretrained:NAME), in summary.json and ber.csv alike.
    summary = {name if receiver == run.name else receiver: entry
               for receiver, entry in io_lib.read_json(run.eval_file("summary.json")).items()}
    rows = [dict(row, receiver=name if row["receiver"] == run.name else row["receiver"])
            for row in io_lib.read_csv(run.eval_file("ber.csv"))]
    io_lib.write_json(os.path.join(dest, "summary.json"), summary)
    io_lib.write_table(os.path.join(dest, "ber.csv"), rows, list(rows[0]))
    text = model_card(name, run.settings, trained, summary, rows, exports)
    io_lib.atomic_write(os.path.join(dest, "MODEL.md"), lambda f: f.write(text))
    return dest


def keep_checkpoint(run_dir, name, checkpoints_dir=CHECKPOINTS_DIR):
    """Replaces checkpoints_dir/name by the run's settings, curve, train.json (if written: its
    last losses outlive a restore) and latest checkpoint only (copied beside, then renamed into
    place); returns the directory."""
    import tensorflow as tf
    latest = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    if latest is None:
        raise ValueError(f"{run_dir!r} holds no checkpoint (checkpoints/) to keep")
    dest = os.path.join(checkpoints_dir, name)
    tmp = os.path.join(checkpoints_dir, ".tmp-" + name)
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "checkpoints"))
    for relative in ("config.json", "flags.txt", "train.json", curves.CURVE_FILENAME):
        if os.path.isfile(os.path.join(run_dir, relative)):
            shutil.copyfile(os.path.join(run_dir, relative), os.path.join(tmp, relative))
    prefix = os.path.basename(latest)
    for entry in os.listdir(os.path.dirname(latest)):
        if entry.startswith(prefix + "."):
            shutil.copyfile(os.path.join(os.path.dirname(latest), entry), os.path.join(tmp, "checkpoints", entry))
    with open(os.path.join(tmp, "checkpoints", "checkpoint"), "w") as f:
        f.write(f'model_checkpoint_path: "{prefix}"\nall_model_checkpoint_paths: "{prefix}"\n')
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest
