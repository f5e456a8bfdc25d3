"""The study's stages, each a directory of DIR with a done marker, run in order.

A stage is done when DIR/<stage>/done.json exists and names the same finished upstream
stages as now (done.json is written last, atomically). On a rerun a done stage is skipped;
an unfinished one is redone cleanly: its directory is wiped first, except a training
stage interrupted with the same upstream, which resumes from its last checkpoint as
python -m deeprx.train does. A redone stage makes every later stage stale, so it is
redone too. Each stage runs the project's own CLIs as child processes (their output in
DIR/logs/<stage>.log, progress lines echoed); a child dies with the study (SIGKILL too).
"""

import dataclasses
import os
import shutil
import time
from typing import Callable, Tuple

from deeprx.core import jobs
from deeprx.core import workdir as workdir_lib
from deeprx.evaluation import receivers as receivers_lib
from deeprx.experiments import study_layout
from deeprx.experiments.study_layout import DONE, MODELS, done_record, edgetpu_path, int8_path, stage_dir
from deeprx.network import model as model_lib
from deeprx.core import io as io_lib
STARTED = "started.json"


class StageError(Exception):
    """A stage's command failed: its message says which, and where its log is."""


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    description: str
    run: Callable            # run(context): writes the stage's files (the report reads them)
    estimate_s: Callable     # estimate_s(config) -> seconds on this 2-core machine
    resumes: bool = False    # a training run: resumes from checkpoints when interrupted
    outputs: Tuple[str, ...] = ()  # files of DIR outside the stage directory


# --------------------------------------------------------------------------- children

class Context:
    """What a stage's run() gets: the config, and call() to run one CLI."""

    def __init__(self, config, stage, log, command=""):
        self.config, self.stage, self.log = config, stage, log
        self.command = command  # the study's own command line, for the report
        self.commands = []

    @property
    def dir(self):
        return stage_dir(self.config, self.stage)

    def call(self, *args, echo=True):
        """Runs `python -m ARGS` to completion (log DIR/logs/<stage>.log, progress lines
        echoed); StageError (with the log's tail) if it fails."""
        self.commands.append(jobs.command_line(args))
        log_path = os.path.join(self.config.workdir, "logs", self.stage + ".log")
        try:
            return jobs.run(args, log_path, echo=(lambda line: self.log("      " + line, flush=True)) if echo else None)
        except jobs.JobError as error:
            raise StageError(f"stage {self.stage}: {error}") from None


# ------------------------------------------------------------------- training stages

def _train_args(config, workdir, model_config, steps, **extra):
    """deeprx.train's arguments for a network of `model_config` (with --teacher: the teacher's,
    the student being sized from the saved teacher) trained for `steps` at the study's size."""
    size = config.size
    args = [*config.scenario_args, f"--model_variant={model_config.variant}",
            f"--width_multiplier={model_config.width_multiplier!r}",
            f"--depth_multiplier={model_config.depth_multiplier}", f"--steps={steps}",
            f"--batch_size={size.batch_size}", f"--learning_rate={size.learning_rate}",
            f"--warmup_steps={size.warmup_steps}", f"--checkpoint_every={size.checkpoint_every}",
            f"--log_every={size.log_every}", f"--seed={config.seed}", "--noeval"]
    return ["deeprx.train", *args, *(f"--{k}={v}" for k, v in extra.items()), f"--workdir={workdir}"]


TEACHER_FILES = (workdir_lib.MODEL_FILENAME, "config.json", "train.json")


def run_teacher(context):
    """Trains the teacher (--teacher=train), or copies the given trained one (a shipped
    pretrained:NAME or a run directory) into the stage directory, so that every later stage
    reads its teacher from the same place either way."""
    config = context.config
    if config.trains_teacher:
        context.call(*_train_args(config, context.dir, config.teacher_config, config.size.teacher_steps))
        return
    source = workdir_lib.RunDir(config.teacher)
    for name in TEACHER_FILES:
        shutil.copy2(source.file(name), os.path.join(context.dir, name))
    io_lib.write_json(os.path.join(context.dir, "source.json"), {"teacher": config.teacher, "path": source.path})
    context.log(f"      teacher {config.teacher} ({source.path}): trained earlier, copied", flush=True)


def run_scratch(context):
    """The KD student's network (config.student_config: sized from the saved teacher, as
    deeprx.train sizes the KD student), trained alone."""
    config = context.config
    context.call(*_train_args(config, context.dir, config.student_config, config.size.student_steps))


def run_kd(context):
    """The student distilled from the teacher stage's model: deeprx.train's KD path, as
    `python -m deeprx.train --flagfile=kd.flags` runs it."""
    config = context.config
    context.call(*_train_args(config, context.dir, config.teacher_config, config.size.student_steps,
                              teacher=stage_dir(config, "teacher"), alpha=config.alpha,
                              temperature=config.temperature, kd_form=config.kd_form,
                              kd_reduction=config.kd_reduction, student_flops_ratio=repr(config.student_flops_ratio),
                              student_variant=config.student_variant))


def _train_estimate(steps, flops_per_step):
    """Process start, then forward + backward at the measured ~49 GFLOP/s of training."""
    return 20.0 + steps * flops_per_step / 49e9


def estimate_teacher(config):
    if not config.trains_teacher:
        return 1.0
    return _train_estimate(config.size.teacher_steps, 3 * config.size.batch_size * config.teacher_flops)


def estimate_scratch(config):
    student = model_lib.flops_per_slot(config.student_config, config.scenario)
    return _train_estimate(config.size.student_steps, 3 * config.size.batch_size * student)


def estimate_kd(config):
    student = model_lib.flops_per_slot(config.student_config, config.scenario)
    return _train_estimate(config.size.student_steps, config.size.batch_size * (3 * student + config.teacher_flops))


# ---------------------------------------------------------------------- other stages

def run_int8(context):
    """Full-integer int8 TFLite of each model (post-training quantization)."""
    config = context.config
    for model in MODELS:
        context.call("deeprx.quantize", f"--model={stage_dir(config, model)}", *config.scenario_args,
                     f"--calibration_slots={config.size.calibration_slots}", f"--out={context.dir}")


def run_ber(context):
    """BER vs SINR of the classical receivers and every model, float and int8, on the same slots."""
    config = context.config
    receivers = [*receivers_lib.CLASSICAL_NAMES, *(stage_dir(config, m) for m in MODELS),
                 *(int8_path(config, m) for m in MODELS)]
    context.call("deeprx.evaluate", *config.scenario_args, f"--receivers={','.join(receivers)}",
                 f"--max_bits={config.size.eval_max_bits}", f"--out={context.dir}")


def run_edgetpu(context):
    """Edge TPU preflight of each int8 model (and compile where edgetpu_compiler is installed)."""
    config = context.config
    for model in MODELS:
        path = edgetpu_path(config, model)
        shutil.copyfile(int8_path(config, model), path)
        context.call("deeprx.compile", f"--model={path}")


def runner_model(config, model):
    """The compiled model where the compiler ran, else the int8 one (CPU interpreter)."""
    compiled = edgetpu_path(config, model).replace(".tflite", "_edgetpu.tflite")
    return compiled if os.path.isfile(compiled) else int8_path(config, model)


def run_runner(context):
    """Test vectors, then edge.runner on each int8 model: latency and BER from the vectors."""
    config = context.config
    vectors = os.path.join(context.dir, "vectors.npz")  # deeprx.export_vectors' file name
    context.call("deeprx.export_vectors", *config.scenario_args, f"--slots_per_point={config.size.vector_slots}",
                 f"--out={context.dir}")
    for model in MODELS:
        context.call("edge.runner", f"--model={runner_model(config, model)}", f"--vectors={vectors}",
                     f"--count={config.size.runner_count}", f"--threads={config.threads}",
                     f"--out={os.path.join(context.dir, model)}", echo=False)


def run_energy(context):
    """deeprx.energy on each model: float Keras and int8 on the CPU interpreter, four steps."""
    config = context.config
    size = config.size
    for model in MODELS:
        context.call("deeprx.energy", f"--model={stage_dir(config, model)}", *config.scenario_args,
                     f"--tflite={int8_path(config, model)}", f"--energy_source={config.energy_source}",
                     f"--threads={config.threads}",
                     f"--count={size.energy_count}", f"--base_seconds={size.energy_base_seconds}",
                     f"--peak_seconds={size.energy_peak_seconds}", f"--train_steps={size.energy_train_steps}",
                     f"--layer_min_seconds={size.energy_layer_min_seconds}",
                     f"--out={os.path.join(context.dir, model)}")


def run_report(context):
    from deeprx.experiments import study_report
    study_report.write(context.config, context.command, context.log)


def _estimate(seconds_tiny, seconds_demo, seconds_cpu):
    return lambda config: {"tiny": seconds_tiny, "demo": seconds_demo}.get(config.preset_name, seconds_cpu)


STAGES = (
    Stage("teacher", "the teacher: a trained one (--teacher), or from scratch (deeprx.train)", run_teacher,
          estimate_teacher, resumes=True),
    Stage("scratch", "the student from scratch (deeprx.train, the KD student's network)", run_scratch, estimate_scratch,
          resumes=True),
    Stage("kd", "the student distilled from the teacher (deeprx.train --teacher)", run_kd, estimate_kd,
          resumes=True),
    Stage("int8", "int8 export of each model (deeprx.quantize)", run_int8, _estimate(45, 90, 240)),
    Stage("ber", "BER vs SINR: classical receivers, float and int8 models (deeprx.evaluate)", run_ber,
          _estimate(40, 150, 1800)),
    Stage("edgetpu", "Edge TPU preflight, compile where installed (deeprx.compile)", run_edgetpu, _estimate(3, 3, 3)),
    Stage("runner", "test vectors, edge.runner on the CPU interpreter: latency and BER", run_runner,
          _estimate(20, 40, 120)),
    Stage("energy", "energy per inference, float and int8 (deeprx.energy)", run_energy, _estimate(60, 180, 600)),
    Stage("report", "report.md, summary.json and the plots", run_report, _estimate(5, 5, 5),
          outputs=("report.md", "summary.json")),
)
assert tuple(stage.name for stage in STAGES) == study_layout.STAGE_NAMES


# ---------------------------------------------------------------------- the sequence

def _upstream(config, index):
    """{stage: finished_at} of the stages before `index` (all done by then)."""
    return {stage.name: done_record(config, stage.name)["finished_at"] for stage in STAGES[:index]}


def _clean(config, stage):
    shutil.rmtree(stage_dir(config, stage.name), ignore_errors=True)
    for name in stage.outputs:
        path = os.path.join(config.workdir, name)
        if os.path.isfile(path):
            os.remove(path)


def run_all(config, redo=(), log=print, command=""):
    """Runs every stage not done (or in `redo`); returns {stage: seconds run now (None: skipped)}."""
    os.makedirs(config.workdir, exist_ok=True)
    start, ran = time.time(), {}
    spent = estimated_done = 0.0
    for index, stage in enumerate(STAGES):
        label = f"[{index + 1}/{len(STAGES)}] {stage.name}"
        upstream = _upstream(config, index)
        record = done_record(config, stage.name)
        if stage.name not in redo and record is not None and record["upstream"] == upstream:
            log(f"{label}: finished earlier, skipped", flush=True)
            ran[stage.name] = None
            continue
        started_path = os.path.join(stage_dir(config, stage.name), STARTED)
        started = io_lib.read_json(started_path) if os.path.isfile(started_path) else None
        resume = (stage.resumes and stage.name not in redo and record is None and started is not None
                  and started["upstream"] == upstream)
        if not resume:
            _clean(config, stage)
        os.makedirs(stage_dir(config, stage.name), exist_ok=True)
        io_lib.write_json(started_path, {"upstream": upstream})
        remaining = sum(s.estimate_s(config) for s in STAGES[index:])
        # Estimates scaled by this machine's pace so far, once a minute of estimated work has run
        # (a copied teacher's second says nothing about the pace of training).
        scale = spent / estimated_done if estimated_done >= 60 else 1.0
        why = ("resuming from its last checkpoint" if resume else
               "redoing it" if record is not None or stage.name in redo else
               "interrupted earlier, redoing it from a clean directory" if started is not None else "starting")
        log(f"{label}: {stage.description}: {why} (about {_minutes(stage.estimate_s(config) * scale)}; "
            f"study ETA {_minutes(remaining * scale)})", flush=True)
        stage_start = time.time()
        context = Context(config, stage.name, log, command)
        stage.run(context)
        seconds = time.time() - stage_start
        io_lib.write_json(os.path.join(stage_dir(config, stage.name), DONE), {
            "stage": stage.name, "seconds": round(seconds, 1), "finished_at": time.time(), "upstream": upstream,
            "commands": context.commands})
        spent += seconds
        estimated_done += stage.estimate_s(config)
        ran[stage.name] = seconds
        log(f"{label}: done in {_minutes(seconds)}", flush=True)
    log(f"Study done in {_minutes(time.time() - start)} ({sum(v is not None for v in ran.values())} stages run now, "
        f"{sum(v is None for v in ran.values())} finished earlier)", flush=True)
    return ran


def _minutes(seconds):
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
