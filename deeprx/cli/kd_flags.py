"""The knowledge-distillation flags of deeprx.train and deeprx.study, with the defaults of
kd_config.KD_DEFAULTS (hinton form, alpha = 0.5, T = 3, KL averaged; student at 11/30 of the
teacher's FLOPs).

A CLI calls `define_flags()` in its own define_flags(); `kd_config(FLAGS, teacher)` reads them.
"""

from absl import flags

from deeprx.core import kd_config as settings

# Every flag of this module: a CLI that starts deeprx.train passes them on (cli.flag_args).
FLAG_NAMES = ("alpha", "temperature", "kd_form", "kd_reduction", "student_flops_ratio", "kd_feature_weight")


def define_flags():
    defaults = settings.KD_DEFAULTS
    flags.DEFINE_float("alpha", defaults.alpha, "KD: weight of the student loss")
    flags.DEFINE_float("temperature", defaults.temperature, "KD: temperature T")
    flags.DEFINE_string("kd_form", defaults.form, f"KD: {' or '.join(settings.KD_FORMS)} "
                        "(paper: alpha*L_student + L_KD)")
    flags.DEFINE_string("kd_reduction", defaults.reduction,
                        f"KD: {' or '.join(settings.KD_REDUCTIONS)} of the KL over a slot's data bits")
    flags.DEFINE_float("student_flops_ratio", defaults.student_flops_ratio,
                       "KD: student FLOPs per slot / teacher's (the paper's 11/30)")
    flags.DEFINE_float("kd_feature_weight", defaults.feature_weight,
                       "KD beyond the paper: weight of the teacher's last features as a hint (normalized MSE "
                       "through a 1x1 adapter on the student's); 0: logits only")


def kd_config(values, teacher):
    """The KDConfig the flags describe (ValueError naming the bad setting first)."""
    return settings.KDConfig(teacher=teacher, alpha=values.alpha, temperature=values.temperature,
                             form=values.kd_form, reduction=values.kd_reduction,
                             student_flops_ratio=values.student_flops_ratio,
                             feature_weight=values.kd_feature_weight)
