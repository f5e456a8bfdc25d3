"""In-graph training of a bit-logit receiver on Sionna slots, with checkpoints and resume:
Trainer (from scratch; kd_training.py's DistillationTrainer, a student from a frozen teacher,
is one). A run end to end (settings, model, training, record, bench) is train_run.py's; both
take config objects, never flags."""

import dataclasses
import math
import os
import tempfile
import threading
import time

import tensorflow as tf
import tf_keras as keras

from deeprx.core import stop_clock
from deeprx.evaluation import bench
from deeprx.evaluation import receivers as receivers_lib
from deeprx.network import curves
from deeprx.network import losses
from deeprx.network import schedule as schedule_lib
from deeprx.simulation import data as data_lib


def training_scenario(scenario, train_config):
    """The scenario slots are drawn from in training: `scenario`, on train_num_prb PRB if set."""
    if train_config.train_num_prb is None:
        return scenario
    return dataclasses.replace(scenario, carrier=dataclasses.replace(scenario.carrier,
                                                                     num_prb=train_config.train_num_prb))


def save_model(model, path):
    """model.keras written beside its final name, then renamed into place."""
    tmp = os.path.join(os.path.dirname(path), ".tmp-" + os.path.basename(path))
    model.save(tmp)
    os.replace(tmp, path)


class TrainingStopped(RuntimeError):
    """Training was asked to stop (Trainer.stop_requested, set on SIGTERM by deeprx.train: a
    scheduler's time limit or preemption, a sweep stopping): a checkpoint at the step reached
    was saved, and the same command resumes from it."""


class TrainingCollapsed(RuntimeError):
    """Training reached a state it cannot leave: a non-finite loss or variable, or the
    loss back at ln 2 (every logit zero) after it had learnt."""


LN2 = math.log(2.0)


def collapse_problem(loss, best_loss, variables):
    """What is wrong with a run whose averaged loss is `loss` (its best so far `best_loss`) and
    whose variables (weights and batch-norm statistics) are `variables`; None if nothing.
    The LAMB teachers of data/results/teacher-runs-collapse/ went this way: batch-norm moving
    variances grew to inf over thousands of steps and the loss settled at ln 2."""
    if loss is not None and not math.isfinite(loss):
        return f"the loss is {loss}"
    for variable in variables:
        # Integer variables (QAT's optimizer_step, counters) cannot be non-finite.
        if variable.dtype.is_floating and not bool(tf.reduce_all(tf.math.is_finite(variable))):
            return f"variable {variable.name} holds non-finite values"
    if loss is not None and best_loss is not None and abs(loss - LN2) < 0.005 and best_loss < LN2 - 0.05:
        return (f"the loss is {loss:.4f}, ln 2 (every logit zero: the network outputs nothing), "
                f"after it had reached {best_loss:.4f}")
    return None


def channel_target(h):
    """The auxiliary loss's target: the true channel [B, 14, K, N] complex as [B, 14, K, 2N] real."""
    return tf.concat([tf.math.real(h), tf.math.imag(h)], axis=-1)


class Trainer:
    """Trains `model` on slots of `scenario` drawn in-graph each step.

    model: built for training_scenario(scenario, train_config) (the training grid), under
      `strategy.scope()` when a strategy is given.
    strategy: a tf.distribute strategy, or None for the default (one device). The global
      batch (train_config.batch_size) is split evenly across its replicas; each replica
      draws its own slots (the step's seed with the replica id mixed in), and the
      gradient is the global batch's mean, as on one device.
    curve_sinr_db: the SINR points of the learning curve (train_config.curve_every).
    chief: False on the workers of a multi-worker strategy but one: they restore from the
      workdir's checkpoints, write theirs to a scratch directory and log nothing.
    """

    def __init__(self, model, scenario, train_config, workdir, log=print, strategy=None, curve_sinr_db=None,
                 chief=True):
        self.model, self.scenario, self.config = model, scenario, train_config
        self.workdir, self.log = workdir, log
        self.strategy = strategy or tf.distribute.get_strategy()
        replicas = self.strategy.num_replicas_in_sync
        if train_config.batch_size % replicas:
            raise ValueError(f"batch_size {train_config.batch_size} must be a multiple of the {replicas} replicas")
        self.replica_batch_size = train_config.batch_size // replicas
        self.train_scenario = training_scenario(scenario, train_config)
        self.generator = data_lib.SlotGenerator(self.train_scenario, "train")
        with self.strategy.scope():
            self.schedule = schedule_lib.make_schedule(train_config)
            self.optimizer = schedule_lib.make_optimizer(train_config, self.schedule)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            # Training wall-clock (learning-curve evaluations excluded), summed across resumes.
            self.train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="train_seconds")
            self.aux_head = None
            if train_config.aux_channel_weight > 0:
                self.aux_head = keras.layers.Conv2D(2 * scenario.num_rx, 1, name="aux_channel")
                features = model.get_layer("head_relu").output
                self._with_features = keras.Model(model.inputs, [model.output, features])
                self.aux_head.build(features.shape)
        self.checkpoint = tf.train.Checkpoint(**self._trackables())
        self.checkpoint_dir = os.path.join(workdir, "checkpoints")
        # Every worker saves and evaluates (reading synchronized variables is collective);
        # the workers but the chief write to a scratch directory and log nothing.
        self.scratch_dir = None if chief else tempfile.mkdtemp(prefix="deeprx-worker-")
        written = self.scratch_dir or workdir
        self.manager = tf.train.CheckpointManager(self.checkpoint, os.path.join(written, "checkpoints"),
                                                  max_to_keep=3)
        self.chief = chief
        if not chief:
            self.log = lambda *args, **kwargs: None
        self.stop_requested = threading.Event()  # set: checkpoint after this step and stop
        self.curve = None
        if train_config.curve_every:
            if not curve_sinr_db:
                raise ValueError("curve_every needs the SINR points of the learning curve (curve_sinr_db)")
            self.curve = curves.LearningCurve(model, scenario, curve_sinr_db, written)
        self._draw_slots = tf.function(self._slots)
        self._update = tf.function(self._apply, jit_compile=train_config.xla)
        self._train_step = tf.function(self._distributed_step)

    def _trackables(self):
        """What a checkpoint holds."""
        trackables = dict(model=self.model, optimizer=self.optimizer, step=self.step, train_seconds=self.train_seconds)
        if self.aux_head is not None:
            trackables["aux_head"] = self.aux_head
        return trackables

    @property
    def trainable_variables(self):
        extra = self.aux_head.trainable_variables if self.aux_head is not None else []
        return self.model.trainable_variables + extra

    @property
    def checked_variables(self):
        """What the collapse guard checks: the model's variables (batch-norm statistics
        included) and every other variable the run trains (the auxiliary head, a hint's adapter)."""
        variables = list(self.model.variables)
        known = {variable.ref() for variable in variables}
        return variables + [v for v in self.trainable_variables if v.ref() not in known]

    def _apply(self, inputs, bits, data_mask, channel=None):
        """One optimizer step on a (replica's) batch; returns the scalars to log, "loss" first.
        The gradient is scaled by 1/replicas, so the replicas' sum is the global batch's mean."""
        replicas = self.strategy.num_replicas_in_sync
        with tf.GradientTape() as tape:
            if self.aux_head is None:
                logits = self.model(inputs, training=True)
            else:
                logits, features = self._with_features(inputs, training=True)
            loss = losses.masked_bce(bits, logits, data_mask)
            scalars = {"loss": loss}
            total = loss
            if self.aux_head is not None:
                mse = tf.reduce_mean(tf.square(self.aux_head(features) - channel))
                scalars["channel_mse"] = mse
                total = loss + self.config.aux_channel_weight * mse
            scaled = total / replicas
        variables = self.trainable_variables
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        return scalars

    def draw(self, seed, replica=0):
        """The training slots of replica `replica` for the step of `seed` (an int64 tensor),
        through one tf.function: every step function that draws (the training step, a KD run's
        gradient diagnostics) calls its one trace of the slot generator."""
        return self._draw_slots(tf.bitwise.bitwise_xor(seed, tf.cast(replica, tf.int64)))

    def _slots(self, seed):
        sinr_db = None
        if self.config.sinr_sampling == "sinr":
            low, high = self.config.train_sinr_db
            sinr_db = tf.random.stateless_uniform([self.replica_batch_size], [seed, 1], low, high)
        return self.generator.draw(self.replica_batch_size, seed, sinr_db)

    def _replica_step(self, seed):
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        batch = self.draw(seed, replica)
        channel = channel_target(batch.h) if self.aux_head is not None else None
        # A nested tf.function may not hold a strategy's synchronization points (batch-norm
        # statistics, gradient all-reduce), even with one replica: under any strategy but the
        # default one the step's body runs directly.
        update = self._apply if tf.distribute.has_strategy() else self._update
        return update(batch.inputs, batch.bits, batch.data_mask, channel)

    def _distributed_step(self, seed):
        per_replica = self.strategy.run(self._replica_step, args=(seed,))
        scalars = {name: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
                   for name, value in per_replica.items()}
        self.step.assign_add(1)
        return scalars

    def run_step(self, step, seed):
        """Trains step `step` on the slots of `seed`; returns its scalars (tensors)."""
        del step
        return self._train_step(seed)

    def diagnostics(self, seed):
        """Extra scalars for the progress line of a checkpoint step, computed on the slots of
        `seed` (none here)."""
        return {}

    def restore(self):
        """Restores the latest checkpoint, if any; returns the step it holds."""
        latest = tf.train.latest_checkpoint(self.checkpoint_dir)
        if latest:
            status = self.checkpoint.restore(latest)
            if int(self.step.numpy()) >= self.config.steps:
                # A finished run makes no update, so Adam never creates the slots the checkpoint
                # holds; without this TF logs one "unrestored value" warning per slot at exit.
                status.expect_partial()
            else:
                status.assert_existing_objects_matched()
        return int(self.step.numpy())

    def _check_health(self, step, loss, best_loss):
        """Raises TrainingCollapsed, before the checkpoint at `step` is written, if the run has
        collapsed, naming the last good checkpoint."""
        problem = collapse_problem(loss, best_loss, self.checked_variables)
        if problem:
            last_good = tf.train.latest_checkpoint(self.checkpoint_dir)
            raise TrainingCollapsed(
                f"training collapsed at step {step}: {problem}. Not saved; the last checkpoint written is "
                f"{last_good or 'none'}. Resume with a lower learning rate (--learning_rate) or another "
                f"optimizer, or copy the run and resume it from that checkpoint.")

    def fit(self):
        """Trains from the restored step to config.steps; returns timing figures."""
        config = self.config
        with self.strategy.scope():
            # The optimizer's slots made now, not in the first step: a tf.function that creates
            # variables is traced twice, and a trace of the in-graph slot draw takes seconds.
            self.optimizer.build(self.trainable_variables)
        start_step = self.restore()
        if start_step:
            self.log(f"Resuming from checkpoint at step {start_step} ({start_step * config.batch_size:,} slots seen, "
                     f"{float(self.train_seconds.numpy()) / 3600:.2f} h of training)", flush=True)
        if self.curve is not None:
            self.curve.truncate(start_step)
        writer = (tf.summary.create_file_writer(os.path.join(self.workdir, "tb")) if self.chief
                  else tf.summary.create_noop_writer())
        start = last_time = time.time()
        last_step, sums, scalars, best_loss = start_step, {}, {}, None
        timed_from, stopped, stopped_total, stops = time.time(), 0.0, 0.0, stop_clock.StopClock()
        for step in range(start_step, config.steps):
            seed = tf.constant(data_lib.slot_seed("train", config.seed, step), tf.int64)
            step_start = time.time()
            for name, value in self.run_step(step, seed).items():
                sums[name] = sums.get(name, 0.0) + float(value)
            done = step + 1
            step_stopped = stops.stopped_seconds(time.time() - step_start)
            if step_stopped:
                stopped += step_stopped
                stopped_total += step_stopped
                last_time += step_stopped  # the progress line's rate counts training only
                self.log(f"step {done}: the process was stopped for {step_stopped:.0f} s (SIGSTOP); "
                         "not counted as training time", flush=True)
            if self.stop_requested.is_set() and done < config.steps:
                self.train_seconds.assign_add(time.time() - timed_from - stopped)
                self.manager.save(checkpoint_number=done)
                self.log(f"step {done}: asked to stop (SIGTERM or SIGUSR2); checkpoint saved, the same command "
                         "resumes from it", flush=True)
                raise TrainingStopped(f"stopped at step {done} of {config.steps}, checkpoint saved")
            checkpoint = done % config.checkpoint_every == 0 or done == config.steps
            if done % config.log_every == 0 or done == config.steps:
                # Losses are averaged over the steps since the last progress line.
                scalars = {name: total / (done - last_step) for name, total in sums.items()}
                if checkpoint:  # the costlier diagnostics at checkpoint steps only
                    scalars.update(self.diagnostics(seed))
                sums = {}
                now = time.time()
                steps_per_s = (done - last_step) / max(now - last_time, 1e-9)
                last_time, last_step = now, done
                lr = float(self.schedule(done))
                eta = (config.steps - done) / max(steps_per_s, 1e-9)
                losses_text = " | ".join(f"{name} {value:.4f}" for name, value in scalars.items())
                self.log(f"step {done}/{config.steps} | {losses_text} | {steps_per_s:.2f} steps/s | "
                         f"{steps_per_s * config.batch_size:.1f} slots/s | lr {lr:.2e} | "
                         f"ETA {int(eta // 3600)}:{time.strftime('%M:%S', time.gmtime(eta))}", flush=True)
                with writer.as_default(step=done):
                    for name, value in scalars.items():
                        tf.summary.scalar(name, value)
                    tf.summary.scalar("learning_rate", lr)
                    tf.summary.scalar("slots_per_s", steps_per_s * config.batch_size)
                    tf.summary.scalar("slots_seen", done * config.batch_size)
            curve_point = self.curve is not None and (done % config.curve_every == 0 or done == config.steps)
            if checkpoint or curve_point:
                self._check_health(done, scalars.get("loss"), best_loss)
                if scalars.get("loss") is not None:
                    best_loss = min(best_loss if best_loss is not None else math.inf, scalars["loss"])
                paused = time.time()
                self.train_seconds.assign_add(paused - timed_from - stopped)
                if checkpoint:
                    self.manager.save(checkpoint_number=done)
                if curve_point:
                    point = self.curve.add(done, done * config.batch_size, float(self.train_seconds.numpy()),
                                           scalars.get("loss"))
                    self.log(f"learning curve at step {done}: Geometric Mean BER {point['gm_ber']:.3f} "
                             f"({point['seconds']:.0f} s to evaluate)", flush=True)
                    with writer.as_default(step=done):
                        tf.summary.scalar("curve_gm_ber", point["gm_ber"])
                timed_from, stopped = time.time(), 0.0
                last_time += timed_from - paused  # the progress line's rate counts training only
        stops.close()
        writer.flush()
        seconds = time.time() - start
        trained = config.steps - start_step
        return {"steps": config.steps, "steps_this_run": trained, "seconds_this_run": round(seconds, 1),
                "stopped_seconds_this_run": round(stopped_total, 1),
                "slots_per_s": round(trained * config.batch_size / (seconds - stopped_total), 2) if trained else None,
                "slots_seen": config.steps * config.batch_size,
                "train_seconds_total": round(float(self.train_seconds.numpy()), 1),
                **{f"final_{name}": value for name, value in scalars.items()}}


def evaluate_model(model, name, scenario, evaluation, out_dir, preset_name, log=print):
    """The bench on `model`, ls_lmmse and perfect_lmmse; writes out_dir; returns summary."""
    receivers = [receivers_lib.KerasReceiver(name, model, scenario)]
    receivers += [receivers_lib.load(spec, scenario) for spec in receivers_lib.FINAL_EVAL_REFERENCES]
    return bench.run(receivers, preset_name, scenario, evaluation, out_dir, log=log)
