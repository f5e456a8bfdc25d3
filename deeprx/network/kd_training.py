"""The training of a KD student: DistillationTrainer, the Trainer of a Distiller's student,
reading the teacher's logits from a teacher cache where one is given."""

import tensorflow as tf

from deeprx.network import training


class DistillationTrainer(training.Trainer):
    """Trains the student of `distiller` from its frozen teacher, with the same data,
    checkpoints, resume and progress as Trainer (the checkpoint holds the student);
    keyword arguments as Trainer's.

    teacher_cache: a teacher_cache.TeacherCache of this teacher and these training slots, or
      None: each step reads the teacher's logits from it if there, else computes and writes
      them (one device, no feature hint)."""

    def __init__(self, distiller, kd_config, scenario, train_config, workdir, teacher_cache=None, **kwargs):
        if train_config.aux_channel_weight:
            raise ValueError("aux_channel_weight is for training from scratch: a distilled student learns "
                             "from the teacher's LLRs")
        self.distiller = distiller
        super().__init__(distiller.student, scenario, train_config, workdir, **kwargs)
        self._gradient_shares = None
        distiller.compile(self.optimizer, alpha=kd_config.alpha, temperature=kd_config.temperature,
                          form=kd_config.form, kd_reduction=kd_config.reduction,
                          feature_weight=kd_config.feature_weight)
        self.teacher_cache = teacher_cache
        if teacher_cache is not None:
            if self.strategy.num_replicas_in_sync > 1 or kd_config.feature_weight:
                raise ValueError("a teacher cache is for one device and logits-only KD (no --distribute, "
                                 "no feature hint)")
            self._step_from_cache = tf.function(self._cached_step)
            self._step_writing_cache = tf.function(self._live_step)

    def _trackables(self):
        trackables = super()._trackables()
        if self.distiller.adapter is not None:  # the hint's adapter trains with the student
            trackables["feature_adapter"] = self.distiller.adapter
        return trackables

    @property
    def trainable_variables(self):
        return self.distiller.trained_variables

    def _apply(self, inputs, bits, data_mask, channel=None):
        return self._scalars(self.distiller.train_step((inputs, bits, data_mask)))

    def _scalars(self, out):
        return {"loss": out["student_loss"], "distillation_loss": out["distillation_loss"],
                "total_loss": out["loss"], "kd_share": out["kd_share"],
                **{k: out[k] for k in ("feature_loss", "feature_share") if k in out}}

    def _cached_step(self, seed, teacher_logits):
        batch = self.draw(seed)
        scalars = self._scalars(self.distiller.train_step((batch.inputs, batch.bits, batch.data_mask), teacher_logits))
        self.step.assign_add(1)
        return scalars

    def _live_step(self, seed):
        batch = self.draw(seed)
        teacher_logits = self.distiller.teacher(batch.inputs, training=False)
        scalars = self._scalars(self.distiller.train_step((batch.inputs, batch.bits, batch.data_mask), teacher_logits))
        self.step.assign_add(1)
        return scalars, teacher_logits

    def run_step(self, step, seed):
        if self.teacher_cache is None:
            return super().run_step(step, seed)
        cached = self.teacher_cache.get(step)
        if cached is not None:
            return self._step_from_cache(seed, tf.constant(cached))
        scalars, teacher_logits = self._step_writing_cache(seed)
        self.teacher_cache.put(step, teacher_logits.numpy())
        return scalars

    def fit(self):
        timing = super().fit()
        if self.teacher_cache is not None:
            cache = self.teacher_cache
            timing.update(teacher_cache=cache.path, teacher_cache_hits=cache.hits, teacher_cache_misses=cache.misses)
            self.log(f"teacher logits: {cache.hits} steps read from {cache.path}, {cache.misses} computed and "
                     "written", flush=True)
        return timing

    def diagnostics(self, seed):
        """The KD term's share of the gradient norm on the slots of `seed` (at log steps)."""
        if self._gradient_shares is None:  # Batch starts with inputs, bits, data_mask
            self._gradient_shares = tf.function(lambda s: self.distiller.gradient_shares(tuple(self.draw(s))[:3]))
        return {name: float(value) for name, value in self._gradient_shares(seed).items()}
