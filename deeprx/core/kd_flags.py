"""The knowledge-distillation flags of deeprx.train and deeprx.study, with the defaults of
config.KD_DEFAULTS (the paper's alpha = 5e5, T = 3, student at 11/30 of the teacher's FLOPs).

A CLI calls `define_flags()` in its own define_flags(); `kd_config(FLAGS, teacher)` reads them.
"""

from absl import flags

from deeprx.core import config as config_lib

# Every flag of this module: a CLI that starts deeprx.train passes them on (cli.flag_args).
FLAG_NAMES = ("alpha", "temperature", "kd_form", "kd_reduction", "student_flops_ratio")


def define_flags():
    defaults = config_lib.KD_DEFAULTS
    flags.DEFINE_float("alpha", defaults.alpha, "KD: weight of the student loss")
    flags.DEFINE_float("temperature", defaults.temperature, "KD: temperature T")
    flags.DEFINE_string("kd_form", defaults.form, f"KD: {' or '.join(config_lib.KD_FORMS)} "
                        "(paper: alpha*L_student + L_KD)")
    flags.DEFINE_string("kd_reduction", defaults.reduction,
                        f"KD: {' or '.join(config_lib.KD_REDUCTIONS)} of the KL over a slot's data bits")
    flags.DEFINE_float("student_flops_ratio", defaults.student_flops_ratio,
                       "KD: student FLOPs per slot / teacher's (the paper's 11/30)")


def kd_config(values, teacher):
    """The KDConfig the flags describe (ValueError naming the bad setting first)."""
    return config_lib.KDConfig(teacher=teacher, alpha=values.alpha, temperature=values.temperature,
                               form=values.kd_form, reduction=values.kd_reduction,
                               student_flops_ratio=values.student_flops_ratio)
