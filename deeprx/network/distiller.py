"""Knowledge distillation of a bit-logit receiver, in the keras-io `Distiller` shape.

The teacher runs outside the gradient tape and is never updated; only the student
learns. Losses count data REs only. Data: (inputs, bits, data_mask) as
(x, y, sample_weight).
"""

import tensorflow as tf
import tf_keras as keras

from deeprx.core import kd_config
from deeprx.network import losses


class Distiller(keras.Model):
    """Trains `student` from a frozen `teacher`; both map inputs to bit logits.

    feature_layer: the name of a layer both networks have (DeepRx: "head_relu", the features
    the output conv reads). If given, compile's feature_weight > 0 adds a hint loss (FitNets,
    Romero et al. 2015): the student's features through a trained 1x1 conv `adapter` (to the
    teacher's channel count) against the teacher's, MSE normalized by the teacher features'
    mean square. The adapter only trains; the deployed student does not have it."""

    def __init__(self, student, teacher, feature_layer=None, **kwargs):
        super().__init__(**kwargs)
        for what in ("input_shape", "output_shape"):
            if tuple(getattr(student, what)[1:]) != tuple(getattr(teacher, what)[1:]):
                raise ValueError(f"teacher and student disagree on the grid or bits per RE: teacher "
                                 f"{what} {getattr(teacher, what)}, student {getattr(student, what)}")
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.adapter = None
        if feature_layer:
            self._student_features = keras.Model(student.inputs, [student.output,
                                                                  student.get_layer(feature_layer).output])
            self._teacher_features = keras.Model(teacher.inputs, [teacher.output,
                                                                  teacher.get_layer(feature_layer).output])
            teacher_channels = teacher.get_layer(feature_layer).output.shape[-1]
            self.adapter = keras.layers.Conv2D(teacher_channels, 1, name="feature_adapter")
            self.adapter.build(student.get_layer(feature_layer).output.shape)

    def compile(self, optimizer, metrics=None, student_loss_fn=losses.masked_bce,
                distillation_loss_fn=losses.tempered_bernoulli_kl, alpha=kd_config.KD_DEFAULTS.alpha,
                temperature=kd_config.KD_DEFAULTS.temperature, form=kd_config.KD_DEFAULTS.form,
                kd_reduction=kd_config.KD_DEFAULTS.reduction, feature_weight=kd_config.KD_DEFAULTS.feature_weight):
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
          feature_weight: weight of the feature hint loss, added to the total (needs the
            Distiller's feature_layer).
        """
        kd_config.check_kd_settings(alpha, temperature, form, kd_reduction)
        if feature_weight and self.adapter is None:
            raise ValueError("feature_weight needs a Distiller built with a feature_layer")
        self.feature_weight = float(feature_weight)
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

    def feature_loss(self, student_features, teacher_features):
        """The hint loss: mean square of adapter(student features) - teacher features, over the
        teacher features' mean square (so that the weight does not depend on their scale)."""
        error = self.adapter(student_features) - teacher_features
        return tf.reduce_mean(tf.square(error)) / (tf.reduce_mean(tf.square(teacher_features)) + 1e-6)

    @property
    def trained_variables(self):
        """What train_step updates: the student's weights, and the hint's adapter when it has weight."""
        return self.student.trainable_variables + (self.adapter.trainable_variables if self.feature_weight > 0 else [])

    def train_step(self, data, teacher_logits=None):
        """One step on `data`; `teacher_logits`, if given, are the teacher's on these inputs
        (read from a teacher_cache instead of computed; not with a feature hint)."""
        inputs, bits, data_mask = keras.utils.unpack_x_y_sample_weight(data)
        hint = self.feature_weight > 0
        if hint:
            if teacher_logits is not None:
                raise ValueError("a feature hint needs the teacher's features: its logits alone are not enough")
            teacher_logits, teacher_features = self._teacher_features(inputs, training=False)
        elif teacher_logits is None:
            teacher_logits = self.teacher(inputs, training=False)
        with tf.GradientTape() as tape:
            if hint:
                student_logits, student_features = self._student_features(inputs, training=True)
            else:
                student_logits = self.student(inputs, training=True)
            student_loss = self.student_loss_fn(bits, student_logits, data_mask)
            distillation_loss = self.distillation_loss_fn(teacher_logits, student_logits, self.temperature,
                                                          data_mask, self.kd_reduction)
            loss = self.combine(student_loss, distillation_loss)
            if hint:
                feature_loss = self.feature_loss(student_features, teacher_features)
                loss += self.feature_weight * feature_loss
            # Under a tf.distribute strategy the replicas' gradients are summed: scale each by
            # 1/replicas so that the sum is the global batch's mean, as on one device.
            scaled = loss / tf.distribute.get_strategy().num_replicas_in_sync
        variables = self.trained_variables
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        self.compiled_metrics.update_state(bits, student_logits)
        extra = {"feature_loss": feature_loss, "feature_share": self.feature_weight * feature_loss / loss} if hint else {}
        return {"loss": loss, "student_loss": student_loss, "distillation_loss": distillation_loss,
                "kd_share": self.kd_term(distillation_loss) / loss, **extra,
                **{m.name: m.result() for m in self.metrics}}

    def test_step(self, data):
        inputs, bits, data_mask = keras.utils.unpack_x_y_sample_weight(data)
        student_logits = self.student(inputs, training=False)
        self.compiled_metrics.update_state(bits, student_logits)
        return {"student_loss": self.student_loss_fn(bits, student_logits, data_mask),
                **{m.name: m.result() for m in self.metrics}}

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

