"""Learning curves: Geometric Mean BER of a model in training, on fixed test slots.

A training run with `curve_every` > 0 adds a point every that many steps to its
`curve.csv`: step, slots seen, training wall-clock (evaluations excluded), the training
loss of the last progress line, the Geometric Mean BER over the SINR grid and the BER of
each point. The slots are drawn once from the test channel models (the same for every
run of a scenario: fixed seeds), CURVE_SLOTS_PER_POINT per SINR point, so points of
different runs compare directly. The Geometric Mean BER is edge.ber's (zero errors count
as its GM_BER_FLOOR).
"""

import os

from deeprx.core import io as io_lib
from edge import ber as ber_lib

CURVE_SLOTS_PER_POINT = 32
CURVE_FILENAME = "curve.csv"
FIXED_COLUMNS = ("step", "slots_seen", "train_seconds", "loss", "gm_ber")


def ber_column(sinr_db):
    return f"ber_{sinr_db:g}dB"


class LearningCurve:
    """Evaluates `model` (weights shared with the training) on the test slots of `scenario`
    at `sinr_db` points and appends the result to WORKDIR/curve.csv."""

    def __init__(self, model, scenario, sinr_db, workdir, slots_per_point=CURVE_SLOTS_PER_POINT, batch_size=32):
        import tensorflow as tf
        import tf_keras as keras
        from deeprx.simulation import data as data_lib
        self.path = os.path.join(workdir, CURVE_FILENAME)
        self.sinr_db = tuple(sinr_db)
        self.columns = FIXED_COLUMNS + tuple(ber_column(s) for s in self.sinr_db)
        self._model = model
        grid = (*scenario.grid_shape, scenario.num_input_channels)
        self._eval_model = None  # a copy on the evaluation grid when the model trains on another
        if tuple(model.input_shape[1:]) != grid:
            self._eval_model = keras.models.clone_model(model, input_tensors=keras.Input(grid))
        generator = data_lib.SlotGenerator(scenario, "test")
        self._batches = []  # per SINR point: [(inputs, true bits, data mask of the bits)]
        for index, sinr in enumerate(self.sinr_db):
            batches, left = [], slots_per_point
            while left:
                size = min(batch_size, left)
                batch = generator(size, data_lib.slot_seed("curve", index, len(batches)), sinr_db=sinr)
                mask = tf.cast(batch.data_mask[..., None], tf.bool)
                batches.append((batch.inputs, batch.bits > 0.5, mask))
                left -= size
            self._batches.append(batches)
        self._bits = [sum(int(tf.math.count_nonzero(tf.broadcast_to(m, tf.shape(t)))) for _, t, m in batches)
                      for batches in self._batches]
        evaluated = self._eval_model or model
        self._predict = tf.function(lambda x: evaluated(x, training=False))

    def rows(self):
        return io_lib.read_csv(self.path) if os.path.isfile(self.path) else []

    def truncate(self, step):
        """Drops points after `step` (a run killed between a point and its checkpoint)."""
        rows = self.rows()
        kept = [row for row in rows if int(row["step"]) <= step]
        if len(kept) != len(rows):
            io_lib.write_table(self.path, kept, self.columns)

    def evaluate(self):
        """(Geometric Mean BER, [(sinr_db, bit_errors, bits)]) of the model as it is now."""
        import tensorflow as tf
        if self._eval_model is not None:
            self._eval_model.set_weights(self._model.get_weights())
        points = []
        for sinr, batches, bits in zip(self.sinr_db, self._batches, self._bits):
            errors = 0
            for inputs, truth, mask in batches:
                wrong = tf.logical_and(tf.not_equal(self._predict(inputs) > 0.0, truth), mask)
                errors += int(tf.math.count_nonzero(wrong))
            points.append((sinr, errors, bits))
        return ber_lib.geometric_mean_ber(points), points

    def add(self, step, slots_seen, train_seconds, loss):
        """Evaluates and appends one point; returns it (with "seconds", the time it took)."""
        import time
        start = time.time()
        gm_ber, points = self.evaluate()
        row = {"step": step, "slots_seen": slots_seen, "train_seconds": round(train_seconds, 1),
               "loss": "" if loss is None else round(loss, 6), "gm_ber": round(gm_ber, 6)}
        row.update({ber_column(s): "%.6e" % (e / n) for s, e, n in points})
        rows = [r for r in self.rows() if int(r["step"]) < step] + [row]
        io_lib.write_table(self.path, rows, self.columns)
        return dict(row, seconds=time.time() - start)
