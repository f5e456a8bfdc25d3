"""One training run, end to end: the Run it is (checked settings), and train_and_evaluate, which
trains it (from scratch or distilled from its teacher, resuming its workdir), saves the model
and its record, and runs the bench on it. Library code behind `python -m deeprx.train`.

A workdir holds: config.json (the run's settings), flags.txt (the command's own flags, a
flagfile that replays it), checkpoints/, tb/, model.keras, train.json (timing, provenance) and
eval/ (the bench: this model vs ls_lmmse vs perfect_lmmse).
"""

import contextlib
import dataclasses
import os
import shutil
import signal

from deeprx.core import config as config_lib
from deeprx.core import io as io_lib
from deeprx.core import provenance as provenance_lib
from deeprx.core import workdir as workdir_lib
from deeprx.evaluation import bench
from deeprx.network import distribute as distribute_lib
from deeprx.network import model as model_lib
from deeprx.network import saved


@dataclasses.dataclass(frozen=True)
class Run:
    """Everything one training run needs, checked."""
    workdir: str
    preset_name: str
    scenario: object
    model_config: object
    train_config: object
    evaluation: object
    kd: object = None            # a kd_config.KDConfig when distilling
    teacher_run: object = None   # the teacher's Run when it must be trained first
    distribute: str = "none"     # distribute.STRATEGIES
    cpu_replicas: int = 0        # mirrored without GPUs: CPU replicas
    evaluate: bool = True        # the bench on the trained model at the end
    teacher_cache: str = None    # KD: a directory of teacher logits shared by runs (teacher_cache.py)

    def settings(self):
        """What config.json holds: what must not change when the run resumes."""
        settings = workdir_lib.run_config_dict(self.preset_name, self.scenario, self.model_config, self.train_config)
        if self.kd is not None:
            settings["kd"] = config_lib.to_dict(self.kd)
        return settings


def train_and_evaluate(run, command, flags_text="", log=print):
    """Trains `run` (resuming its workdir), saves model.keras, train.json and eval/.

    command: the command line recorded in train.json; flags_text: the command's own flags,
    written to flags.txt. SIGTERM and SIGUSR2 (a sweep stopping, a scheduler's time limit)
    stop the run at the next step with a checkpoint (training.TrainingStopped); a run that
    collapses raises training.TrainingCollapsed, saving nothing. workdir.Busy, before anything
    is written, while another process trains in the workdir (two would overwrite each other's
    checkpoints): the writing process holds it (workdir.hold)."""
    held = workdir_lib.hold(run.workdir, "training") if distribute_lib.is_chief() else contextlib.nullcontext()
    with held:
        _train_and_evaluate(run, command, flags_text, log)


def _train_and_evaluate(run, command, flags_text, log):
    import tf_keras as keras
    from deeprx.network import distiller as distiller_lib
    from deeprx.network import kd_training
    from deeprx.network import training
    strategy = distribute_lib.make(run.distribute, run.cpu_replicas)
    replicas = strategy.num_replicas_in_sync
    chief = distribute_lib.is_chief()
    if chief:
        os.makedirs(run.workdir, exist_ok=True)
        io_lib.write_json(os.path.join(run.workdir, "config.json"), run.settings())
        io_lib.atomic_write(os.path.join(run.workdir, "flags.txt"), lambda f: f.write(flags_text))
    name = os.path.basename(os.path.normpath(run.workdir))
    train_scenario = training.training_scenario(run.scenario, run.train_config)
    # The seed fixes the initial weights as well as the data: a KD student and the scratch
    # student of the same seed start from the same weights.
    keras.utils.set_random_seed(run.train_config.seed)
    with strategy.scope():
        model = model_lib.build(run.model_config, train_scenario, name="deeprx", synchronized_bn=replicas > 1)
    flops = model_lib.flops_per_slot(run.model_config, run.scenario)
    role = "student" if run.kd else "DeepRx"
    grid = "" if train_scenario is run.scenario else f" on {train_scenario.carrier.num_prb} PRB"
    devices = f" on {replicas} replicas ({run.distribute})" if replicas > 1 else ""
    log(f"{role} ({run.model_config.variant}, width x{run.model_config.width_multiplier:.3f}): "
        f"{model.count_params():,} parameters, {flops / 1e6:.1f} MFLOPs per slot | "
        f"{run.train_config.steps} steps of {run.train_config.batch_size} slots{grid}{devices} | "
        f"{bench.title(run.preset_name, run.scenario, run.evaluation).split(': ', 1)[1]}", flush=True)
    trainer_args = dict(scenario=run.scenario, train_config=run.train_config, workdir=run.workdir,
                        strategy=strategy, curve_sinr_db=run.evaluation.sinr_db, chief=chief, log=log)
    if run.kd:
        with strategy.scope():
            teacher, _ = saved.model_on_grid(workdir_lib.RunDir(run.kd.teacher), train_scenario)
        log(f"distilling from {run.kd.teacher} ({teacher.count_params():,} parameters): alpha {run.kd.alpha:g}, "
            f"T {run.kd.temperature:g}, {run.kd.form} form, KL {run.kd.reduction} over data bits"
            + (f", feature hint weight {run.kd.feature_weight:g}" if run.kd.feature_weight else ""), flush=True)
        distiller = distiller_lib.Distiller(student=model, teacher=teacher,
                                            feature_layer="head_relu" if run.kd.feature_weight else None)
        cache = None
        if run.teacher_cache:
            from deeprx.network import teacher_cache as cache_lib
            key = cache_lib.cache_key(workdir_lib.RunDir(run.kd.teacher).file(workdir_lib.MODEL_FILENAME),
                                      train_scenario, run.train_config)
            cache = cache_lib.TeacherCache(run.teacher_cache, key)
            log(f"teacher logits shared through {cache.path}", flush=True)
        trainer = kd_training.DistillationTrainer(distiller, run.kd, teacher_cache=cache, **trainer_args)
    else:
        trainer = training.Trainer(model, **trainer_args)
    if run.distribute != "multiworker":  # a multi-worker save is collective: every worker must stop together
        # SIGTERM: a sweep stopping, a scheduler ending the job; SIGUSR2: Slurm's time-limit
        # warning, which reaches every process of the job (submitit then requeues it).
        for stop_signal in (signal.SIGTERM, signal.SIGUSR2):
            signal.signal(stop_signal, lambda signum, frame: trainer.stop_requested.set())
    timing = trainer.fit()
    # Saved on the scenario's grid with plain layers, however it trained.
    model = model_lib.on_grid(model, run.model_config, run.scenario, name="deeprx")
    if not chief:
        shutil.rmtree(trainer.scratch_dir, ignore_errors=True)
        return
    training.save_model(model, os.path.join(run.workdir, "model.keras"))
    record = os.path.join(run.workdir, "train.json")
    this_run = {"command": command, "commit": provenance_lib.code_version(), **provenance_lib.provenance()}
    if not timing["steps_this_run"] and os.path.isfile(record):
        # Resumed finished (e.g. killed before its evaluation, or evaluated on another machine): the record
        # stays the training's (its losses, time and machine); this run is listed after it.
        trained = io_lib.read_json(record)
        entry = {**trained, "later_runs": trained.get("later_runs", []) + [this_run]}
    else:
        entry = {"parameters": model.count_params(), "flops_per_slot": flops,
                 "width_multiplier": run.model_config.width_multiplier, "replicas": replicas, **timing, **this_run}
    io_lib.write_json(record, entry)
    log(f"Saved {run.workdir}/model.keras", flush=True)
    if run.evaluate:
        summary = training.evaluate_model(model, name, run.scenario, run.evaluation,
                                          os.path.join(run.workdir, "eval"), run.preset_name, log=log)
        log("\n".join(bench.summary_lines(summary)), flush=True)
