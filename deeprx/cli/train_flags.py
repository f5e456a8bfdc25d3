"""The flags of python -m deeprx.train that a parent command (a sweep, an ablation, a study)
passes on to the runs it starts: one list, so that a parent and deeprx.train agree."""

from deeprx.cli import kd_flags
from deeprx.cli import scenario_flags

# The flags of python -m deeprx.train that a parent (a sweep, an ablation) passes on to its runs.
TRAIN_FLAGS = ("steps", "batch_size", "learning_rate", "warmup_steps", "final_lr_fraction",
               "checkpoint_every", "log_every", "seed", "xla", "optimizer", "schedule", "sinr_sampling",
               "train_sinr_db", "aux_channel_weight", "train_num_prb", "curve_every")
TEACHER_FLAGS = (*scenario_flags.FLAG_NAMES, "model_variant",
                 "width_multiplier", "model_mflops", "depth_multiplier", *TRAIN_FLAGS, "eval", "eval_max_bits")
STUDENT_FLAGS = tuple(name for name in TEACHER_FLAGS if name != "seed") + ("seed",)
KD_FLAGS = ("teacher", "student_variant", *kd_flags.FLAG_NAMES, "teacher_cache")
