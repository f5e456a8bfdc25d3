"""Losses on bit logits, counted on data REs only."""

import tensorflow as tf


def _masked_sum_and_count(per_bit, data_mask):
    """Sum of per_bit [B, 14, K, m] over data REs, and the number of data bits."""
    mask = tf.broadcast_to(tf.cast(data_mask, per_bit.dtype)[..., None], tf.shape(per_bit))
    return tf.reduce_sum(per_bit * mask), tf.maximum(tf.reduce_sum(mask), 1.0)


def masked_bce(bits, logits, data_mask):
    """Mean binary cross-entropy with logits over the data bits of a batch.

    bits, logits: [B, 14, K, m]; data_mask: [B, 14, K] (1 on data REs).
    """
    total, count = _masked_sum_and_count(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=bits, logits=logits), data_mask)
    return total / count


def tempered_bernoulli_kl(teacher_logits, student_logits, temperature, data_mask, reduction="mean"):
    """KL(p_teacher || p_student) of the per-bit Bernoulli pairs p = sigmoid(z / T).

    PAPER.md eq. 2 with softmax over the two values of one bit. "mean" averages over
    the data bits of the batch (the scale of `masked_bce`); "sum" adds them up per slot
    and averages over slots, the scale at which the paper's alpha = 5e5 leaves the KD
    term a say next to alpha x the (mean) student loss.
    """
    dtype = student_logits.dtype
    t = tf.cast(temperature, dtype)
    zt, zs = teacher_logits / t, student_logits / t
    p_teacher = tf.sigmoid(zt)
    per_bit = (p_teacher * (tf.math.log_sigmoid(zt) - tf.math.log_sigmoid(zs))
               + (1.0 - p_teacher) * (tf.math.log_sigmoid(-zt) - tf.math.log_sigmoid(-zs)))
    total, count = _masked_sum_and_count(per_bit, data_mask)
    if reduction == "sum":
        return total / tf.cast(tf.shape(per_bit)[0], dtype)
    return total / count
