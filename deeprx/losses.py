"""Losses on bit logits, counted on data REs only."""

import tensorflow as tf


def masked_bce(bits, logits, data_mask):
    """Mean binary cross-entropy with logits over the data bits of a batch.

    bits, logits: [B, 14, K, m]; data_mask: [B, 14, K] (1 on data REs).
    """
    per_bit = tf.nn.sigmoid_cross_entropy_with_logits(labels=bits, logits=logits)
    mask = tf.broadcast_to(data_mask[..., None], tf.shape(per_bit))
    return tf.reduce_sum(per_bit * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)
