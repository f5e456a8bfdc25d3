"""Knowledge distillation of a bit-logit receiver, in the keras-io `Distiller` shape.

The teacher runs outside the gradient tape and is never updated; only the student
learns. Losses count data REs only. Data: (inputs, bits, data_mask) as
(x, y, sample_weight).
"""

import tensorflow as tf
import tf_keras as keras

from deeprx.core import config as config_lib
from deeprx.network import losses


class Distiller(keras.Model):
    """Trains `student` from a frozen `teacher`; both map inputs to bit logits."""

    def __init__(self, student, teacher, **kwargs):
        super().__init__(**kwargs)
        for what in ("input_shape", "output_shape"):
            if tuple(getattr(student, what)[1:]) != tuple(getattr(teacher, what)[1:]):
                raise ValueError(f"teacher and student disagree on the grid or bits per RE: teacher "
                                 f"{what} {getattr(teacher, what)}, student {getattr(student, what)}")
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False

    def compile(self, optimizer, metrics=None, student_loss_fn=losses.masked_bce,
                distillation_loss_fn=losses.tempered_bernoulli_kl, alpha=config_lib.KD_DEFAULTS.alpha,
                temperature=config_lib.KD_DEFAULTS.temperature, form=config_lib.KD_DEFAULTS.form,
                kd_reduction=config_lib.KD_DEFAULTS.reduction):
        """Configures distillation.

        Args:
          optimizer: optimizer of the student's weights.
          metrics: Keras metrics of the student's logits against the bits.
          student_loss_fn: (bits, logits, data_mask) -> loss on the true bits.
          distillation_loss_fn: (teacher_logits, student_logits, temperature, data_mask,
            reduction) -> KD loss.
          alpha: weight of the student loss. "paper": L = alpha * L_student + L_KD
            (PAPER.md eq. 2); "hinton": L = alpha * L_student + (1 - alpha) * T^2 * L_KD,
            alpha in [0, 1].
          temperature: T > 0, the logits are divided by it in the KD loss.
          form: "paper" or "hinton".
          kd_reduction: "mean" or "sum" over the data bits of a slot (losses module).
        """
        config_lib.check_kd_settings(alpha, temperature, form, kd_reduction)
        super().compile(optimizer=optimizer, metrics=metrics)
        self.student_loss_fn = student_loss_fn
        self.distillation_loss_fn = distillation_loss_fn
        self.alpha, self.temperature = float(alpha), float(temperature)
        self.form, self.kd_reduction = form, kd_reduction

    def combine(self, student_loss, distillation_loss):
        """The total loss of the chosen form: alpha x the student loss + the KD term."""
        return self.alpha * student_loss + self.kd_term(distillation_loss)

    def kd_term(self, distillation_loss):
        """The KD term as it enters the total loss of the chosen form."""
        if self.form == "paper":
            return distillation_loss
        return (1.0 - self.alpha) * self.temperature ** 2 * distillation_loss

    def gradient_shares(self, data):
        """{"kd_grad_share": ||grad KD term|| / (||grad student term|| + ||grad KD term||)} on a
        batch, the student's weights unchanged (two backward passes: for logging, not every step)."""
        inputs, bits, data_mask = keras.utils.unpack_x_y_sample_weight(data)
        teacher_logits = self.teacher(inputs, training=False)
        with tf.GradientTape(persistent=True) as tape:
            student_logits = self.student(inputs, training=False)
            student_loss = self.student_loss_fn(bits, student_logits, data_mask)
            kd = self.kd_term(self.distillation_loss_fn(teacher_logits, student_logits, self.temperature,
                                                        data_mask, self.kd_reduction))
            student_term = self.alpha * student_loss
        variables = self.student.trainable_variables
        norm_student = tf.linalg.global_norm(tape.gradient(student_term, variables))
        norm_kd = tf.linalg.global_norm(tape.gradient(kd, variables))
        del tape
        return {"kd_grad_share": norm_kd / tf.maximum(norm_student + norm_kd, 1e-30)}

    def train_step(self, data):
        inputs, bits, data_mask = keras.utils.unpack_x_y_sample_weight(data)
        teacher_logits = self.teacher(inputs, training=False)
        with tf.GradientTape() as tape:
            student_logits = self.student(inputs, training=True)
            student_loss = self.student_loss_fn(bits, student_logits, data_mask)
            distillation_loss = self.distillation_loss_fn(teacher_logits, student_logits, self.temperature,
                                                          data_mask, self.kd_reduction)
            loss = self.combine(student_loss, distillation_loss)
            # Under a tf.distribute strategy the replicas' gradients are summed: scale each by
            # 1/replicas so that the sum is the global batch's mean, as on one device.
            scaled = loss / tf.distribute.get_strategy().num_replicas_in_sync
        variables = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        self.compiled_metrics.update_state(bits, student_logits)
        return {"loss": loss, "student_loss": student_loss, "distillation_loss": distillation_loss,
                "kd_share": self.kd_term(distillation_loss) / loss, **{m.name: m.result() for m in self.metrics}}

    def test_step(self, data):
        inputs, bits, data_mask = keras.utils.unpack_x_y_sample_weight(data)
        student_logits = self.student(inputs, training=False)
        self.compiled_metrics.update_state(bits, student_logits)
        return {"student_loss": self.student_loss_fn(bits, student_logits, data_mask),
                **{m.name: m.result() for m in self.metrics}}

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

