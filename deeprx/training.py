"""In-graph training of a bit-logit receiver on Sionna slots, with checkpoints and resume.

Library code behind `python -m deeprx.train`; takes config objects, never flags.
A workdir holds: config.json (scenario, model, training), checkpoints/ (model, optimizer
and step), tb/ (TensorBoard scalars), model.keras (the final model, loadable by
`python -m deeprx.evaluate --receivers=WORKDIR`), train.json (timing) and eval/ (the
bench: this model vs ls_lmmse vs perfect_lmmse).
"""

import math
import os
import time

import tensorflow as tf
import tf_keras as keras

from deeprx import bench
from deeprx import data as data_lib
from deeprx import losses
from deeprx import receivers as receivers_lib


class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then cosine decay."""

    def __init__(self, peak, warmup_steps, total_steps, final_fraction):
        super().__init__()
        self.peak, self.warmup_steps = float(peak), int(warmup_steps)
        self.total_steps, self.final_fraction = int(total_steps), float(final_fraction)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = self.peak * (step + 1.0) / max(self.warmup_steps, 1)
        progress = tf.clip_by_value((step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 0., 1.)
        cosine = self.final_fraction + (1 - self.final_fraction) * 0.5 * (1 + tf.cos(math.pi * progress))
        return tf.where(step < self.warmup_steps, warmup, self.peak * cosine)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps,
                "final_fraction": self.final_fraction}


def save_model(model, path):
    """model.keras written beside its final name, then renamed into place."""
    tmp = os.path.join(os.path.dirname(path), ".tmp-" + os.path.basename(path))
    model.save(tmp)
    os.replace(tmp, path)


class Trainer:
    """Trains `model` on slots of `scenario` drawn in-graph each step."""

    def __init__(self, model, scenario, train_config, workdir, log=print):
        self.model, self.scenario, self.config = model, scenario, train_config
        self.workdir, self.log = workdir, log
        self.generator = data_lib.SlotGenerator(scenario, "train")
        self.schedule = WarmupCosine(train_config.learning_rate, train_config.warmup_steps,
                                     train_config.steps, train_config.final_lr_fraction)
        self.optimizer = keras.optimizers.Adam(learning_rate=self.schedule)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=self.optimizer, step=self.step)
        self.manager = tf.train.CheckpointManager(self.checkpoint, os.path.join(workdir, "checkpoints"),
                                                  max_to_keep=3)
        self._update = tf.function(self._apply, jit_compile=train_config.xla)
        self._train_step = tf.function(self._draw_and_apply)

    def _apply(self, inputs, bits, data_mask):
        """One optimizer step on a batch; returns the scalars to log, "loss" first."""
        with tf.GradientTape() as tape:
            logits = self.model(inputs, training=True)
            loss = losses.masked_bce(bits, logits, data_mask)
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return {"loss": loss}

    def _draw_and_apply(self, seed):
        batch = self.generator.draw(self.config.batch_size, seed)
        scalars = self._update(batch.inputs, batch.bits, batch.data_mask)
        self.step.assign_add(1)
        return scalars

    def restore(self):
        """Restores the latest checkpoint, if any; returns the step it holds."""
        if self.manager.latest_checkpoint:
            status = self.checkpoint.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
            if int(self.step.numpy()) >= self.config.steps:
                # A finished run makes no update, so Adam never creates the slots the checkpoint
                # holds; without this TF logs one "unrestored value" warning per slot at exit.
                status.expect_partial()
        return int(self.step.numpy())

    def fit(self):
        """Trains from the restored step to config.steps; returns timing figures."""
        config = self.config
        start_step = self.restore()
        if start_step:
            self.log(f"Resuming from checkpoint at step {start_step}", flush=True)
        writer = tf.summary.create_file_writer(os.path.join(self.workdir, "tb"))
        start = last_time = time.time()
        last_step, sums, scalars = start_step, {}, {}
        for step in range(start_step, config.steps):
            seed = tf.constant(data_lib.slot_seed("train", config.seed, step), tf.int64)
            for name, value in self._train_step(seed).items():
                sums[name] = sums.get(name, 0.0) + float(value)
            done = step + 1
            if done % config.log_every == 0 or done == config.steps:
                # Losses are averaged over the steps since the last progress line.
                scalars = {name: total / (done - last_step) for name, total in sums.items()}
                sums = {}
                now = time.time()
                steps_per_s = (done - last_step) / max(now - last_time, 1e-9)
                last_time, last_step = now, done
                lr = float(self.schedule(done))
                eta = (config.steps - done) / max(steps_per_s, 1e-9)
                losses_text = " | ".join(f"{name} {value:.4f}" for name, value in scalars.items())
                self.log(f"step {done}/{config.steps} | {losses_text} | {steps_per_s:.2f} steps/s | "
                         f"{steps_per_s * config.batch_size:.1f} slots/s | lr {lr:.2e} | "
                         f"ETA {time.strftime('%H:%M:%S', time.gmtime(eta))}", flush=True)
                with writer.as_default(step=done):
                    for name, value in scalars.items():
                        tf.summary.scalar(name, value)
                    tf.summary.scalar("learning_rate", lr)
                    tf.summary.scalar("slots_per_s", steps_per_s * config.batch_size)
            if done % config.checkpoint_every == 0 or done == config.steps:
                self.manager.save(checkpoint_number=done)
        writer.flush()
        seconds = time.time() - start
        trained = config.steps - start_step
        return {"steps": config.steps, "steps_this_run": trained, "seconds_this_run": round(seconds, 1),
                "slots_per_s": round(trained * config.batch_size / seconds, 2) if trained else None,
                **{f"final_{name}": value for name, value in scalars.items()}}


class DistillationTrainer(Trainer):
    """Trains the student of `distiller` from its frozen teacher, with the same data,
    checkpoints, resume and progress as Trainer (the checkpoint holds the student)."""

    def __init__(self, distiller, kd_config, scenario, train_config, workdir, log=print):
        super().__init__(distiller.student, scenario, train_config, workdir, log)
        self.distiller = distiller
        distiller.compile(self.optimizer, alpha=kd_config.alpha, temperature=kd_config.temperature,
                          form=kd_config.form, kd_reduction=kd_config.reduction)

    def _apply(self, inputs, bits, data_mask):
        out = self.distiller.train_step((inputs, bits, data_mask))
        return {"loss": out["student_loss"], "distillation_loss": out["distillation_loss"],
                "total_loss": out["loss"]}


def evaluate_model(model, name, scenario, evaluation, out_dir, preset_name, log=print):
    """The bench on `model`, ls_lmmse and perfect_lmmse; writes out_dir; returns summary."""
    receivers = [receivers_lib.KerasReceiver(name, model, scenario)]
    receivers += [receivers_lib.load(spec, scenario) for spec in receivers_lib.CLASSICAL_NAMES]
    return bench.run(receivers, preset_name, scenario, evaluation, out_dir, log=log)
