"""One 5G LDPC transport block per slot, for coded evaluation (BLER beside BER).

`SlotCode(scenario, coderate)` fills a slot's data REs with one transport block of Sionna's
5G NR chain (TS 38.212/38.214: TB CRC, code-block segmentation, LDPC, rate matching to the
slot's coded bits, scrambling): `encode(batch_size, seed)` gives the coded bits on the grid
[B, 14, K, m] (0 off data REs), `decode(llrs)` runs Sionna's TB decoder (belief
propagation) on a receiver's LLRs [B, 14, K, m] and returns which blocks came out right:
CRC passed and every information bit equal to the one sent (CRC alone is not enough: zero
LLRs decode to the all-zero block, whose CRC passes).
Every receiver's LLRs go to the same decoder unchanged (logits: > 0 means bit 1, as the
receivers and Sionna define them). The information bits come from a stateless RNG of the
slot seed, so the channels, noise and interferer of a slot are the same coded or not.
"""

import numpy as np
import tensorflow as tf
from sionna.phy.nr import TBDecoder, TBEncoder
from sionna.phy.nr.utils import calculate_tb_size

NUM_BP_ITERATIONS = 20
INFO_BITS_STREAM = 7  # the stateless RNG stream of the information bits (any fixed number)


class SlotCode:

    def __init__(self, scenario, coderate, data_mask):
        if not 0.0 < coderate < 1.0:
            raise ValueError(f"coderate must be in (0, 1), got {coderate!r}")
        m = scenario.bits_per_symbol
        self.grid_shape = tuple(scenario.grid_shape)
        self.bits_per_symbol = m
        self.re_indices = tf.constant(np.argwhere(np.asarray(data_mask) > 0), tf.int32)  # [REs, 2]
        self.num_coded_bits = int(self.re_indices.shape[0]) * m
        tb_size = int(calculate_tb_size(modulation_order=m, target_coderate=coderate,
                                        num_coded_bits=self.num_coded_bits)[0])
        self.encoder = TBEncoder(target_tb_size=tb_size, num_coded_bits=self.num_coded_bits,
                                 target_coderate=coderate, num_bits_per_symbol=m)
        self.decoder = TBDecoder(self.encoder, num_bp_iter=NUM_BP_ITERATIONS)
        self.tb_size = int(self.encoder.tb_size)
        self.coderate = self.tb_size / self.num_coded_bits
        self._decode = tf.function(self._decode_graph)

    def describe(self):
        return {"tb_size": self.tb_size, "num_coded_bits": self.num_coded_bits, "coderate": round(self.coderate, 4),
                "code_blocks": int(self.encoder.num_cbs), "bp_iterations": NUM_BP_ITERATIONS}

    def info_bits(self, batch_size, seed):
        """The information bits of the slots of `seed`: [B, tb_size] float32."""
        seed = tf.stack([tf.cast(seed, tf.int64), tf.constant(INFO_BITS_STREAM, tf.int64)])
        info = tf.random.stateless_uniform([batch_size, self.tb_size], seed, minval=0, maxval=2, dtype=tf.int32)
        return tf.cast(info, tf.float32)

    def encode(self, batch_size, seed):
        """Coded bits of the transport blocks of `seed` on the grid [B, 14, K, m] (float32)."""
        coded = tf.reshape(self.encoder(self.info_bits(batch_size, seed)), [batch_size, -1, self.bits_per_symbol])
        per_re = tf.transpose(coded, [1, 0, 2])  # [REs, B, m]: scatter along the RE axis
        grid = tf.scatter_nd(self.re_indices, per_re, [*self.grid_shape, batch_size, self.bits_per_symbol])
        return tf.transpose(grid, [2, 0, 1, 3])

    def _decode_graph(self, llrs, seed):
        batch_size = tf.shape(llrs)[0]
        per_re = tf.gather_nd(tf.transpose(llrs, [1, 2, 0, 3]), self.re_indices)  # [REs, B, m]
        coded = tf.reshape(tf.transpose(per_re, [1, 0, 2]), [batch_size, self.num_coded_bits])
        decoded, crc_ok = self.decoder(coded)
        sent = self.info_bits(llrs.shape[0], seed)
        return tf.logical_and(crc_ok, tf.reduce_all(tf.equal(decoded, sent), axis=-1))

    def decode(self, llrs, seed):
        """Which transport blocks of the slots of `seed` come out right from a receiver's LLRs
        [B, 14, K, m]: bool numpy [B]."""
        return self._decode(tf.convert_to_tensor(llrs, tf.float32), tf.convert_to_tensor(seed, tf.int64)).numpy()
