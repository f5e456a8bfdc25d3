"""The study's settings (python -m deeprx.study): sizes per preset and the checked config.

No TensorFlow here: everything is checked before the first stage starts.
"""

import dataclasses
import os
from typing import Tuple

from deeprx.core import config as config_lib
from deeprx.core.config import SettingError
from deeprx.core import kd_config
from deeprx.core import workdir as workdir_lib
from deeprx.network import model as model_lib
from deeprx.network import saved


@dataclasses.dataclass(frozen=True)
class StudySize:
    """How big each stage is: the preset's defaults, each overridable by the study flag of
    the same name."""
    teacher_width: float          # the teacher's width multiplier
    teacher_steps: int
    student_steps: int            # scratch and KD students alike
    batch_size: int
    learning_rate: float
    warmup_steps: int
    checkpoint_every: int
    log_every: int
    eval_max_bits: int            # data bits per SINR point of the BER stage
    calibration_slots: int        # int8 export
    vector_slots: int             # runner: test slots per SINR point
    runner_count: int             # runner: timed invokes
    energy_count: int             # energy: inferences per measured run
    energy_base_seconds: float    # energy: quiet seconds before each run (base power)
    energy_peak_seconds: float    # energy: this machine's matmul peak
    energy_train_steps: int       # energy: measured training steps
    energy_layer_min_seconds: float

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type is int and (not isinstance(value, int) or value < 1):
                raise SettingError(field.name, f"{field.name} must be a positive integer, got {value!r}")
            if field.type is float and not value > 0:
                raise SettingError(field.name, f"{field.name} must be positive, got {value!r}")


SIZES = {
    "tiny": StudySize(teacher_width=0.125, teacher_steps=6, student_steps=6, batch_size=4, learning_rate=1e-2,
                      warmup_steps=2, checkpoint_every=3, log_every=2, eval_max_bits=2000, calibration_slots=8,
                      vector_slots=2, runner_count=20, energy_count=20, energy_base_seconds=0.2,
                      energy_peak_seconds=0.2, energy_train_steps=1, energy_layer_min_seconds=0.005),
    "demo": StudySize(teacher_width=0.5, teacher_steps=400, student_steps=400, batch_size=16, learning_rate=2e-3,
                      warmup_steps=50, checkpoint_every=100, log_every=50, eval_max_bits=100_000,
                      calibration_slots=64, vector_slots=8, runner_count=200, energy_count=100,
                      energy_base_seconds=2.0, energy_peak_seconds=1.0, energy_train_steps=2,
                      energy_layer_min_seconds=0.02),
    "cpu": StudySize(teacher_width=0.5, teacher_steps=4500, student_steps=1000, batch_size=16, learning_rate=2e-3,
                     warmup_steps=100, checkpoint_every=250, log_every=50, eval_max_bits=2_000_000,
                     calibration_slots=256, vector_slots=16, runner_count=500, energy_count=300,
                     energy_base_seconds=5.0, energy_peak_seconds=3.0, energy_train_steps=5,
                     energy_layer_min_seconds=0.1),
    # The paper's grid on a GPU node (docs/cluster.md): its teacher width and 250,000 steps;
    # checked here as flags, never run on 2 CPU cores.
    "paper": StudySize(teacher_width=1.0, teacher_steps=250_000, student_steps=250_000, batch_size=16,
                       learning_rate=2e-3, warmup_steps=1000, checkpoint_every=2000, log_every=500,
                       eval_max_bits=10_000_000, calibration_slots=512, vector_slots=32, runner_count=1000,
                       energy_count=500, energy_base_seconds=10.0, energy_peak_seconds=3.0, energy_train_steps=10,
                       energy_layer_min_seconds=0.1),
}
SIZE_FIELDS = tuple(field.name for field in dataclasses.fields(StudySize))

TRAIN_TEACHER = "train"


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """Everything the study's stages need, checked."""
    workdir: str
    preset_name: str
    scenario: object              # config.ScenarioConfig, overrides applied
    scenario_args: Tuple[str, ...]  # the same scenario for the stages' CLIs
    size: StudySize
    teacher: str = TRAIN_TEACHER  # "train", or a trained model: pretrained:NAME or a run directory
    teacher_variant: str = "paper"  # of a teacher the study trains
    student_variant: str = "edge"
    student_flops_ratio: float = kd_config.KD_DEFAULTS.student_flops_ratio
    alpha: float = kd_config.KD_DEFAULTS.alpha
    temperature: float = kd_config.KD_DEFAULTS.temperature
    kd_form: str = kd_config.KD_DEFAULTS.form
    kd_reduction: str = kd_config.KD_DEFAULTS.reduction
    seed: int = 0
    energy_source: str = "cputime"
    threads: int = 2

    def __post_init__(self):
        kd_config.check_kd_settings(self.alpha, self.temperature, self.kd_form, self.kd_reduction)
        if not self.student_flops_ratio > 0:
            raise SettingError("student_flops_ratio", f"student_flops_ratio must be positive, got {self.student_flops_ratio!r}")
        if self.threads < 1:
            raise SettingError("threads", f"threads must be a positive integer, got {self.threads}")
        if self.seed < 0:
            raise SettingError("seed", f"seed must be >= 0, got {self.seed}")
        if not self.trains_teacher:
            try:
                teacher = workdir_lib.RunDir(self.teacher)
                teacher.check(self.scenario)
            except ValueError as error:  # none shipped, no model there, or another scenario
                raise SettingError("teacher", f"teacher {self.teacher!r}: {error}") from None
            if not os.path.isfile(teacher.file("train.json")):
                raise SettingError("teacher", f"teacher {self.teacher!r}: no train.json in {teacher.path!r}: give a finished run "
                                 "of python -m deeprx.train or a shipped model (pretrained:NAME)")
        self.student_config  # sizes the student: ValueError if the budget is too small

    @property
    def trains_teacher(self):
        return self.teacher == TRAIN_TEACHER

    @property
    def teacher_config(self):
        if not self.trains_teacher:
            return saved.model_config(workdir_lib.RunDir(self.teacher))
        return model_lib.DeepRxConfig(width_multiplier=self.size.teacher_width, variant=self.teacher_variant)

    @property
    def teacher_flops(self):
        return model_lib.flops_per_slot(self.teacher_config, self.scenario)

    @property
    def student_config(self):
        """The student both scratch and KD train (deeprx.train sizes a KD student the same way)."""
        return model_lib.student_config(self.teacher_config, self.scenario, self.student_flops_ratio,
                                        self.student_variant)

    def settings(self):
        """What must not change between runs in one workdir (DIR/study.json)."""
        settings = config_lib.to_dict(self)
        del settings["workdir"]
        return settings
