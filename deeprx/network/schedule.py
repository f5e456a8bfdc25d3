"""The training's optimizer and learning-rate schedule, from a config.TrainConfig: Adam or
LAMB (lamb.py), with linear warm-up then cosine or flat-then-linear decay."""

import math

import tensorflow as tf
import tf_keras as keras

from deeprx.core import config as config_lib
from deeprx.network import lamb


class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak`, then decay to `final_fraction` x `peak` at `total_steps`:
    "cosine", or "flat_linear" (flat until config.FLAT_FRACTION of the steps, then linear)."""

    def __init__(self, peak, warmup_steps, total_steps, final_fraction, shape="cosine"):
        super().__init__()
        self.peak, self.warmup_steps = float(peak), int(warmup_steps)
        self.total_steps, self.final_fraction, self.shape = int(total_steps), float(final_fraction), shape

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = self.peak * (step + 1.0) / max(self.warmup_steps, 1)
        if self.shape == "cosine":
            progress = tf.clip_by_value((step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1),
                                        0., 1.)
            decay = 0.5 * (1 + tf.cos(math.pi * progress))
        else:
            flat_end = max(self.warmup_steps, int(config_lib.FLAT_FRACTION * self.total_steps))
            decay = 1.0 - tf.clip_by_value((step - flat_end) / max(self.total_steps - flat_end, 1), 0., 1.)
        return tf.where(step < self.warmup_steps, warmup,
                        self.peak * (self.final_fraction + (1 - self.final_fraction) * decay))

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps,
                "final_fraction": self.final_fraction, "shape": self.shape}


def make_schedule(train_config):
    return WarmupDecay(train_config.learning_rate, train_config.warmup_steps, train_config.steps,
                       train_config.final_lr_fraction, train_config.schedule)


def make_optimizer(train_config, schedule):
    """The optimizer of `train_config` (Adam or LAMB) on the learning-rate `schedule`."""
    if train_config.optimizer == "lamb":
        return lamb.Lamb(learning_rate=schedule)
    return keras.optimizers.Adam(learning_rate=schedule)
