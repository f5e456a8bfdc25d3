"""LAMB, the layer-wise adaptive large-batch optimizer (You et al., "Large Batch Optimization
for Deep Learning: Training BERT in 76 minutes", ICLR 2020), for tf_keras, which has none.

The DeepRx paper trained with LAMB at learning rate 1e-2. Per variable w with gradient g:

    m = beta_1 m + (1 - beta_1) g            v = beta_2 v + (1 - beta_2) g^2
    r = m_hat / (sqrt(v_hat) + epsilon)      (m_hat, v_hat: bias-corrected m, v)
    w = w - lr * trust * r,   trust = ||w|| / ||r||  (1 where either norm is 0)

so every variable moves by lr x its own norm per step, whatever the gradient's scale.
No weight decay (DeepRx's training uses none).
"""

import tensorflow as tf
import tf_keras as keras


class Lamb(keras.optimizers.Optimizer):
    """LAMB without weight decay. Args as tf_keras' Adam: learning_rate (a float or a
    schedule), beta_1, beta_2, epsilon."""

    def __init__(self, learning_rate=1e-2, beta_1=0.9, beta_2=0.999, epsilon=1e-6, name="Lamb", **kwargs):
        super().__init__(name=name, **kwargs)
        self._learning_rate = self._build_learning_rate(learning_rate)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def build(self, var_list):
        super().build(var_list)
        if getattr(self, "_built", False):
            return
        self._built = True
        self._momentums = [self.add_variable_from_reference(model_variable=v, variable_name="m") for v in var_list]
        self._velocities = [self.add_variable_from_reference(model_variable=v, variable_name="v") for v in var_list]

    def update_step(self, gradient, variable):
        dtype = variable.dtype
        lr = tf.cast(self.learning_rate, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        index = self._index_dict[self._var_key(variable)]
        m, v = self._momentums[index], self._velocities[index]
        gradient = tf.convert_to_tensor(gradient)
        m.assign_add((gradient - m) * (1 - self.beta_1))
        v.assign_add((tf.square(gradient) - v) * (1 - self.beta_2))
        m_hat = m / (1 - tf.pow(tf.cast(self.beta_1, dtype), step))
        v_hat = v / (1 - tf.pow(tf.cast(self.beta_2, dtype), step))
        update = m_hat / (tf.sqrt(v_hat) + self.epsilon)
        w_norm, r_norm = tf.norm(variable), tf.norm(update)
        trust = tf.where((w_norm > 0) & (r_norm > 0), w_norm / tf.maximum(r_norm, 1e-30), tf.ones_like(w_norm))
        variable.assign_sub(lr * trust * update)

    def get_config(self):
        config = super().get_config()
        config.update({"learning_rate": self._serialize_hyperparameter(self._learning_rate),
                       "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config
