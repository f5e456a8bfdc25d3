"""The whole study in one command: teacher, students with and without distillation, int8,
the Edge TPU, the device runner and energy, written up in DIR/report.md.

Example usage:
  python -m deeprx.study --flagfile=study.flags --preset=demo --workdir=runs/study-demo
  python -m deeprx.study --flagfile=study.flags --workdir=runs/study-cpu     # hours: the cpu preset

Stages, each a directory of DIR (deeprx/experiments/study_stages.py):
  teacher  the teacher: --teacher=pretrained:NAME (shipped) or a run directory is copied in,
           --teacher=train trains one from scratch (python -m deeprx.train)
  scratch  the student from scratch, --student_flops_ratio of the teacher's FLOPs
  kd       the same student distilled from the teacher (deeprx.train --teacher, as kd.flags)
  int8     full-integer int8 TFLite of each model (python -m deeprx.quantize)
  ber      BER vs SINR of ls_lmmse, perfect_lmmse and every model, float and int8, on the
           same slots (python -m deeprx.evaluate)
  edgetpu  Edge TPU preflight, and compile where edgetpu_compiler is installed (deeprx.compile)
  runner   test vectors, then the device runner on the CPU interpreter: latency, inferences/s
           and BER from the vectors (deeprx.export_vectors, edge.runner)
  energy   energy per inference of each model, float and int8 (python -m deeprx.energy)
  report   DIR/report.md (main table, KD vs scratch, plots), DIR/summary.json, DIR/report/
Finished stages are skipped on rerun, an interrupted one is redone cleanly (a training
resumes from its last checkpoint), so a killed study continues with the same command.
--force redoes every stage, --redo=STAGE,... those stages and every stage after them.
Every flag is checked before the first stage. Sizes (steps, widths, bits, counts) come
from the preset (deeprx/experiments/study_config.py SIZES); a flag of the same name overrides one;
--preset after --flagfile overrides the flagfile's.
"""

import dataclasses
import os
import sys

from absl import flags

from deeprx import cli
from deeprx.cli import kd_flags
from deeprx.cli import scenario_flags
from deeprx.experiments import study_config
from deeprx.experiments import study_layout
from deeprx.experiments import study_stages
from deeprx.core import io as io_lib
from deeprx.core import workdir as workdir_lib

FLAGS = flags.FLAGS


def define_flags():
    """This command's flags (defined only when it runs, so that every module imports
    together in one process)."""
    flags.DEFINE_string("workdir", None, "study directory (created; rerun the same command to continue)")
    flags.DEFINE_bool("force", False, "redo every stage, finished or not")
    flags.DEFINE_list("redo", [], f"redo these stages and every stage after them: {','.join(study_layout.STAGE_NAMES)}")
    flags.DEFINE_string("teacher", study_config.TRAIN_TEACHER,
                        "the teacher: a trained model (pretrained:NAME from data/models, or a run directory of "
                        "python -m deeprx.train; any PRB count of the study's scenario), or 'train' to train one")
    flags.DEFINE_enum("teacher_variant", "paper", ["paper", "edge"], "the model variant of a teacher the study trains")
    flags.DEFINE_enum("student_variant", "edge", ["paper", "edge"],
                      "the students' variant (edge: equal dilations, as the Edge TPU compiler needs)")
    kd_flags.define_flags()
    flags.DEFINE_integer("seed", 0, "training seed of every model")
    flags.DEFINE_string("energy_source", "cputime", "power source of the energy stage: cputime[:W], codecarbon, rapl, "
                                                   "nvml, meter:PATH or rated:WATTS")
    flags.DEFINE_integer("threads", os.cpu_count() or 1, "threads of every timed or measured inference (runner, energy)")
    for _field in study_config.SIZE_FIELDS:
        flags.DEFINE_string(_field, None, f"override the preset's {_field} (deeprx/experiments/study_config.py SIZES)")
    scenario_flags.define_flags()


def _size(preset_name):
    size = study_config.SIZES[preset_name]  # every preset has its study sizes (tested)
    overrides = {}
    for field in dataclasses.fields(size):
        text = getattr(FLAGS, field.name)
        if text is not None:
            try:
                overrides[field.name] = field.type(text)
            except ValueError:
                raise cli.FlagError(field.name, f"{text!r} is not a{'n integer' if field.type is int else ' number'}")
    with cli.settings(fallback="preset"):
        return dataclasses.replace(size, **overrides)


def config_from_flags():
    """The StudyConfig the flags describe, and the stages to redo; cli.FlagError before any compute."""
    preset, scenario = scenario_flags.scenario_from_flags(FLAGS)
    if not FLAGS.workdir:
        raise cli.FlagError("workdir", "a study directory is required")
    if os.path.exists(FLAGS.workdir) and not os.path.isdir(FLAGS.workdir):
        raise cli.FlagError("workdir", f"{FLAGS.workdir!r} exists and is not a directory")
    unknown = [name for name in FLAGS.redo if name not in study_layout.STAGE_NAMES]
    if unknown:
        raise cli.FlagError("redo", f"unknown stage {unknown[0]!r}; the stages: {','.join(study_layout.STAGE_NAMES)}")
    size = _size(preset.name)
    with cli.settings(fallback="student_flops_ratio"):
        config = study_config.StudyConfig(
            workdir=FLAGS.workdir, preset_name=preset.name, scenario=scenario,
            scenario_args=tuple(cli.flag_args(scenario_flags.FLAG_NAMES)), size=size, teacher=FLAGS.teacher, teacher_variant=FLAGS.teacher_variant,
            student_variant=FLAGS.student_variant, student_flops_ratio=FLAGS.student_flops_ratio, alpha=FLAGS.alpha,
            temperature=FLAGS.temperature, kd_form=FLAGS.kd_form, kd_reduction=FLAGS.kd_reduction, seed=FLAGS.seed,
            energy_source=FLAGS.energy_source, threads=FLAGS.threads)
    from deeprx.costs import power_sources
    from edge import power as power_lib
    try:
        power_sources.parse_source(config.energy_source)
    except power_lib.PowerError as error:
        raise cli.FlagError("energy_source", str(error)) from None
    redo = list(study_layout.STAGE_NAMES) if FLAGS.force else list(FLAGS.redo)
    _check_workdir(config, bool(FLAGS.force))
    return config, redo


def _check_workdir(config, force):
    """A workdir of a study with other settings is refused (unless --force, which redoes all)."""
    path = os.path.join(config.workdir, "study.json")
    if os.path.isfile(path) and not force:
        saved = io_lib.read_json(path)["settings"]
        settings = config.settings()
        if saved != settings:
            differ = sorted(key for key in settings if saved.get(key) != settings[key])
            raise cli.FlagError("workdir", f"{config.workdir!r} holds a study with other settings ({', '.join(differ)} "
                                           "differ; see its study.json): use another --workdir, the same flags, "
                                           "or --force to redo every stage with these")


def main(argv):
    del argv
    config, redo = config_from_flags()
    command = " ".join(["python -m deeprx.study"] + sys.argv[1:])
    try:
        with workdir_lib.hold(config.workdir, "study"):
            io_lib.write_json(os.path.join(config.workdir, "study.json"),
                              {"settings": config.settings(), "command": command})
            print(f"DeepRx study in {config.workdir}: {config.preset_name} preset, {len(study_stages.STAGES)} stages",
                  flush=True)
            study_stages.run_all(config, redo, command=command)
    except study_stages.StageError as error:
        print(f"error: {error}\nFix the cause and rerun the same command: finished stages are kept.",
              file=sys.stderr, flush=True)
        sys.exit(1)
    print(f"Report: {os.path.join(config.workdir, 'report.md')}", flush=True)


if __name__ == "__main__":
    cli.run(main, define_flags)
