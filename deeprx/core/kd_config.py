"""Knowledge-distillation settings: the loss forms, their checks, the paper's alpha mapped onto
Hinton's form, and the defaults every CLI flag, the study and the Distiller take (no flags:
cli/kd_flags.py defines them)."""

import dataclasses

from deeprx.core.config import SettingError

KD_FORMS = ("paper", "hinton")
KD_REDUCTIONS = ("mean", "sum")


def kd_alpha_from_paper(alpha, temperature, data_bits):
    """The hinton-form alpha (KL averaged over data bits) whose loss is the paper form's at
    `alpha` (KL summed over a slot's `data_bits`), up to a constant factor: alpha T^2 / (alpha T^2 + N)."""
    return alpha * temperature ** 2 / (alpha * temperature ** 2 + data_bits)


def check_kd_settings(alpha, temperature, form, reduction):
    """Raises ValueError naming the bad setting (alpha, temperature, kd_form, kd_reduction)."""
    if form not in KD_FORMS:
        raise SettingError("kd_form", f"kd_form must be one of {', '.join(KD_FORMS)}, got {form!r}")
    if not temperature > 0:
        raise SettingError("temperature", f"temperature must be positive, got {temperature!r}")
    if not alpha >= 0:
        raise SettingError("alpha", f"alpha must be >= 0, got {alpha!r}")
    if form == "hinton" and alpha > 1:
        raise SettingError("alpha", f"alpha must be in [0, 1] for the hinton form, got {alpha!r}")
    if reduction not in KD_REDUCTIONS:
        raise SettingError("kd_reduction", f"kd_reduction must be one of {', '.join(KD_REDUCTIONS)}, got {reduction!r}")


@dataclasses.dataclass(frozen=True)
class KDConfig:
    """Knowledge distillation of a student from the teacher in directory `teacher`.

    The student's FLOPs per slot are `student_flops_ratio` x the teacher's (the paper's
    11/30). Loss forms and reductions: deeprx.network.distiller and deeprx.network.losses.
    `feature_weight` > 0 adds the distillation of the teacher's last features (a hint, as in
    FitNets) with that weight.
    """
    teacher: str
    alpha: float = 0.5
    temperature: float = 3.0
    form: str = "hinton"
    reduction: str = "mean"
    student_flops_ratio: float = 11 / 30
    feature_weight: float = 0.0

    def __post_init__(self):
        check_kd_settings(self.alpha, self.temperature, self.form, self.reduction)
        if not self.student_flops_ratio > 0:
            raise SettingError("student_flops_ratio", f"student_flops_ratio must be positive, got {self.student_flops_ratio!r}")
        if not self.feature_weight >= 0:
            raise SettingError("kd_feature_weight", f"kd_feature_weight must be >= 0, got {self.feature_weight!r}")


# The KD defaults, which every CLI flag, the study and the Distiller take: Hinton's form with
# alpha = 0.5 and the paper's T = 3 on a KL averaged over data bits, so that the KD term is a
# large share of the loss (about 3/4 at the end of training). The paper's alpha = 5e5 (its form
# L = alpha L_student + L_KD, KL summed over a slot's N data bits) is the same loss, up to scale,
# as the hinton form at alpha_h = alpha T^2 / (alpha T^2 + N) (kd_alpha_from_paper): 0.9989 on the
# cpu grid (N = 4,992 with 1 DMRS), where the KD term is 0.3% of the loss. Student at 11/30 of the teacher's FLOPs.
KD_DEFAULTS = KDConfig(teacher="")
