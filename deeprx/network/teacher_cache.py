"""The teacher's logits of every training step, shared by the KD runs that see the same slots.

A seed's training slots are the same at every student size (the draw depends only on the seed,
the step and the training grid), so KD students of one teacher and seed, whatever their size,
alpha or T, get the same teacher logits at each step. For a small student the teacher's forward
pass is most of a KD step: the first run of a seed writes each step's logits here, the later
ones read them. A step not in the cache is computed live (and written), so a cache is never
needed for correctness: runs may share one in any order, concurrently too.

Layout: DIR/<key>/key.json (what the logits depend on: the teacher's weights, the training
grid's scenario, the seed, batch size and SINR sampling) and DIR/<key>/step-<N>.npy, each
written to a temporary name and renamed into place.
"""

import hashlib
import json
import os

import numpy as np

from deeprx.core import config as config_lib
from deeprx.core import io as io_lib


def cache_key(teacher_model_path, train_scenario, train_config):
    """What a step's teacher logits depend on, as a dict (hashed into the cache's folder name)."""
    digest = hashlib.sha256()
    with open(teacher_model_path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return {"teacher_sha256": digest.hexdigest(), "scenario": config_lib.to_dict(train_scenario),
            "seed": train_config.seed, "batch_size": train_config.batch_size,
            "sinr_sampling": train_config.sinr_sampling,
            "train_sinr_db": list(train_config.train_sinr_db) if train_config.train_sinr_db else None}


class TeacherCache:
    """Teacher logits per training step in DIR/<hash of key>/."""

    def __init__(self, root, key):
        text = json.dumps(key, sort_keys=True)
        self.path = os.path.join(root, hashlib.sha256(text.encode()).hexdigest()[:16])
        os.makedirs(self.path, exist_ok=True)
        key_path = os.path.join(self.path, "key.json")
        if not os.path.isfile(key_path):
            io_lib.atomic_write(key_path, lambda f: f.write(text + "\n"))
        self.hits = self.misses = 0

    def _step_path(self, step):
        return os.path.join(self.path, f"step-{step:06d}.npy")

    def get(self, step):
        """The teacher logits of `step` (float32 array), or None if no run has written them."""
        try:
            logits = np.load(self._step_path(step))
        except (OSError, ValueError):
            self.misses += 1
            return None
        self.hits += 1
        return logits

    def put(self, step, logits):
        """Writes the teacher logits of `step` (unless another run has)."""
        path = self._step_path(step)
        if not os.path.isfile(path):
            io_lib.atomic_write(path, lambda f: np.save(f, np.asarray(logits, np.float32)), binary=True)
