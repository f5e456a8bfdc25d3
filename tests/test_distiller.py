import dataclasses
import os

import numpy as np
import pytest
import tf_keras as keras

from deeprx.core import config
from deeprx.core import kd_config

from deeprx.simulation import data

from deeprx.network import distiller

from deeprx.network import losses

from deeprx.network import model


def numpy_tempered_kl(teacher, student, temperature, mask):
    pt = 1 / (1 + np.exp(-teacher / temperature))
    ps = 1 / (1 + np.exp(-student / temperature))
    kl = pt * np.log(pt / ps) + (1 - pt) * np.log((1 - pt) / (1 - ps))
    full_mask = np.broadcast_to(mask[..., None], kl.shape)
    return (kl * full_mask).sum() / full_mask.sum(), (kl * full_mask).sum() / kl.shape[0]


@pytest.fixture(scope="module")
def logits():
    rng = np.random.default_rng(0)
    shape = (3, 14, 24, 4)
    mask = np.ones(shape[:3], np.float32)
    mask[:, 2] = 0
    return (rng.normal(0, 3, shape).astype(np.float32), rng.normal(0, 3, shape).astype(np.float32), mask)


def test_kd_loss_is_zero_for_equal_logits_and_positive_otherwise(logits):
    teacher, student, mask = logits
    assert float(losses.tempered_bernoulli_kl(teacher, teacher, 3.0, mask)) == pytest.approx(0.0, abs=1e-7)
    assert float(losses.tempered_bernoulli_kl(teacher, student, 3.0, mask)) > 0.01


@pytest.mark.parametrize("temperature", [1.0, 3.0, 5.0])
def test_kd_loss_equals_numpy_reference(logits, temperature):
    teacher, student, mask = logits
    mean, per_slot_sum = numpy_tempered_kl(teacher.astype(np.float64), student.astype(np.float64), temperature, mask)
    got_mean = float(losses.tempered_bernoulli_kl(teacher, student, temperature, mask, "mean"))
    got_sum = float(losses.tempered_bernoulli_kl(teacher, student, temperature, mask, "sum"))
    assert got_mean == pytest.approx(mean, rel=1e-4)
    assert got_sum == pytest.approx(per_slot_sum, rel=1e-4)


def test_kd_ignores_non_data_res(logits):
    teacher, student, mask = logits
    changed = student.copy()
    changed[:, 2] += 10.0  # DMRS symbol: masked out
    assert float(losses.tempered_bernoulli_kl(teacher, changed, 3.0, mask)) == pytest.approx(
        float(losses.tempered_bernoulli_kl(teacher, student, 3.0, mask)))


@pytest.fixture()
def pair(tiny):
    teacher = model.build(model.DeepRxConfig(width_multiplier=0.25), tiny, name="teacher")
    student = model.build(model.DeepRxConfig(width_multiplier=0.125), tiny, name="student")
    return teacher, student


def _combine(pair, form, alpha, temperature):
    teacher, student = pair
    d = distiller.Distiller(student=student, teacher=teacher)
    d.compile(keras.optimizers.Adam(1e-3), alpha=alpha, temperature=temperature, form=form)
    return d.combine


def test_loss_forms_weigh_their_terms_as_the_paper_and_hinton_say(pair):
    """The paper's eq. 2: alpha weighs the student loss, the KD term has weight 1. Hinton's:
    alpha = 1 is the student loss alone, alpha = 0 the KD term alone times T^2 (its gradient
    scale), linear in alpha between."""
    paper = _combine(pair, "paper", 5e5, 3.0)
    assert paper(0.7, 0.0) == pytest.approx(5e5 * 0.7) and paper(0.0, 0.05) == pytest.approx(0.05)
    assert paper(0.7, 0.05) == pytest.approx(paper(0.7, 0.0) + paper(0.0, 0.05))
    only_student, only_kd = _combine(pair, "hinton", 1.0, 2.0), _combine(pair, "hinton", 0.0, 2.0)
    assert only_student(0.7, 0.05) == pytest.approx(0.7) and only_kd(0.7, 0.05) == pytest.approx(4 * 0.05)
    assert _combine(pair, "hinton", 0.3, 2.0)(0.7, 0.05) == pytest.approx(0.3 * 0.7 + 0.7 * 4 * 0.05)


def test_train_step_updates_the_student_and_never_the_teacher(pair, tiny):
    teacher, student = pair
    d = distiller.Distiller(student=student, teacher=teacher)
    d.compile(keras.optimizers.Adam(1e-2), alpha=1.0, temperature=3.0, form="paper", kd_reduction="sum")
    batch = data.SlotGenerator(tiny)(4, seed=0)
    teacher_before = [w.copy() for w in teacher.get_weights()]  # includes BN moving statistics
    student_before = [w.copy() for w in student.get_weights()]
    out = d.train_step((batch.inputs, batch.bits, batch.data_mask))
    assert {"loss", "student_loss", "distillation_loss"} <= set(out)
    assert float(out["distillation_loss"]) > 0
    for before, after in zip(teacher_before, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)
    changed = [not np.array_equal(b, a) for b, a in zip(student_before, student.get_weights())]
    assert all(changed[i] for i, v in enumerate(student.weights) if v.trainable)
    evaluation = d.test_step((batch.inputs, batch.bits, batch.data_mask))
    assert float(evaluation["student_loss"]) > 0
    # The KD term's share of the loss and of the gradient norm, as logged in training.
    loss, kd = float(out["loss"]), float(out["distillation_loss"])
    assert float(out["kd_share"]) == pytest.approx(kd / loss, rel=1e-5)
    share = float(d.gradient_shares((batch.inputs, batch.bits, batch.data_mask))["kd_grad_share"])
    assert 0.0 < share < 1.0
    d.compile(keras.optimizers.Adam(1e-2), alpha=1e6, temperature=3.0, form="paper", kd_reduction="mean")
    drowned = float(d.gradient_shares((batch.inputs, batch.bits, batch.data_mask))["kd_grad_share"])
    assert drowned < 1e-3 < share  # the paper's alpha on a mean-reduced KL leaves KD no say


def test_teacher_student_grid_mismatch_is_rejected(tiny):
    import dataclasses
    teacher = model.build(model.DeepRxConfig(width_multiplier=0.125), tiny)
    other = dataclasses.replace(tiny, modulation="qpsk")
    student = model.build(model.DeepRxConfig(width_multiplier=0.125), other)
    with pytest.raises(ValueError, match="disagree on the grid or bits per RE"):
        distiller.Distiller(student=student, teacher=teacher)


@pytest.mark.parametrize("kwargs, needle", [
    (dict(temperature=0.0), "temperature"), (dict(temperature=-1.0), "temperature"),
    (dict(alpha=-1.0), "alpha"), (dict(alpha=2.0, form="hinton"), "alpha"),
    (dict(form="softmax"), "kd_form"), (dict(kd_reduction="max"), "kd_reduction"),
])
def test_bad_kd_settings(kwargs, needle):
    settings = dict(alpha=5e5, temperature=3.0, form="paper", kd_reduction="mean", **{})
    settings.update(kwargs)
    with pytest.raises(ValueError, match=needle):
        kd_config.check_kd_settings(settings["alpha"], settings["temperature"], settings["form"],
                                    settings["kd_reduction"])


def test_feature_hint_trains_the_student_toward_the_teachers_features(tiny, tmp_path):
    import tensorflow as tf
    from deeprx.network import kd_training
    from deeprx.network import training
    teacher = model.build(model.DeepRxConfig(width_multiplier=0.25), tiny)
    student = model.build(model.DeepRxConfig(width_multiplier=0.125), tiny)
    with pytest.raises(ValueError, match="feature_layer"):
        distiller.Distiller(student=student, teacher=teacher).compile(keras.optimizers.Adam(), feature_weight=1.0)
    # Logits off (alpha 0, a KL that cannot move them at T huge): only the hint teaches.
    kd = kd_config.KDConfig(teacher="", alpha=0.0, temperature=1e6, form="paper", reduction="mean", feature_weight=1.0)
    d = distiller.Distiller(student=student, teacher=teacher, feature_layer="head_relu")
    assert d.adapter.kernel.shape[-2:] == (student.get_layer("head_relu").output.shape[-1],
                                           teacher.get_layer("head_relu").output.shape[-1])
    train_config = config.TrainConfig(steps=30, batch_size=4, learning_rate=1e-2, warmup_steps=1,
                                      checkpoint_every=30, log_every=30)
    trainer = kd_training.DistillationTrainer(d, kd, tiny, train_config, str(tmp_path), log=lambda *a, **k: None)
    batch = data.SlotGenerator(tiny)(4, seed=99)

    def hint_loss():
        _, s = d._student_features(batch.inputs, training=False)
        _, t = d._teacher_features(batch.inputs, training=False)
        return float(d.feature_loss(s, t))
    before = hint_loss()
    timing = trainer.fit()
    assert hint_loss() < 0.8 * before, (before, hint_loss())
    assert 0.9 < timing["final_feature_share"] <= 1.0
    # The adapter is in the checkpoint: it resumes with the student.
    saved = dict(tf.train.list_variables(tf.train.latest_checkpoint(trainer.checkpoint_dir)))
    assert any(name.startswith("feature_adapter/") for name in saved), sorted(saved)[:10]
    # The collapse guard watches the adapter too.
    d.adapter.kernel.assign(tf.fill(d.adapter.kernel.shape, np.nan))
    with pytest.raises(training.TrainingCollapsed, match="holds non-finite values"):
        trainer._check_health(30, 0.3, 0.28)


def test_paper_alpha_maps_onto_the_hinton_form(pair, logits):
    """The paper's loss (alpha L_student + KL summed over a slot's N data bits) is the hinton
    form's (KL averaged) at kd_alpha_from_paper, times a constant: the same gradient direction."""
    teacher_logits, student_logits, mask = logits
    bits = (teacher_logits > 0).astype(np.float32)
    n = int(mask[0].sum()) * teacher_logits.shape[-1]  # data bits per slot
    student_loss = float(losses.masked_bce(bits, student_logits, mask))
    d = distiller.Distiller(student=pair[1], teacher=pair[0])
    totals = []
    for form, reduction, alpha in (("paper", "sum", 5e5), ("hinton", "mean", kd_config.kd_alpha_from_paper(5e5, 3.0, n))):
        d.compile(keras.optimizers.Adam(), alpha=alpha, temperature=3.0, form=form, kd_reduction=reduction)
        kl = float(losses.tempered_bernoulli_kl(teacher_logits, student_logits, 3.0, mask, reduction))
        totals.append((float(d.combine(student_loss, kl)), alpha))
    (paper, alpha_p), (hinton, alpha_h) = totals
    assert paper / hinton == pytest.approx(alpha_p / alpha_h, rel=1e-4)
    assert kd_config.KD_DEFAULTS.form == "hinton" and kd_config.KD_DEFAULTS.reduction == "mean"


def test_a_teacher_cache_gives_the_live_teachers_training_and_spares_its_forward_pass(tiny, tmp_path):
    """Two students from the same initial weights on the same slots: one writing the cache (its
    logits the teacher's on each step's slots), one reading it, which never runs the teacher's
    step and ends with the same weights; another seed is another cache."""
    import tensorflow as tf
    from deeprx.network import kd_training
    from deeprx.network import teacher_cache
    keras.utils.set_random_seed(7)
    teacher_model = model.build(model.DeepRxConfig(width_multiplier=0.25), tiny, name="teacher")
    teacher_path = str(tmp_path / "teacher.keras")
    teacher_model.save(teacher_path)
    kd = kd_config.KDConfig(teacher="")
    train_config = config.TrainConfig(steps=3, batch_size=2, learning_rate=1e-2, warmup_steps=1,
                                      checkpoint_every=3, log_every=3)
    key = teacher_cache.cache_key(teacher_path, tiny, train_config)

    def train(name, cache):
        keras.utils.set_random_seed(0)
        student = model.build(model.DeepRxConfig(width_multiplier=0.125), tiny, name="student")
        d = distiller.Distiller(student=student, teacher=teacher_model)
        trainer = kd_training.DistillationTrainer(d, kd, tiny, train_config, str(tmp_path / name), teacher_cache=cache,
                                                  log=lambda *a, **k: None)
        timing = trainer.fit()
        return student.get_weights(), timing, trainer

    writer_cache = teacher_cache.TeacherCache(str(tmp_path / "cache"), key)
    written, timing, trainer = train("writer", writer_cache)
    assert (timing["teacher_cache_hits"], timing["teacher_cache_misses"]) == (0, 3)
    assert sorted(os.listdir(writer_cache.path)) == ["key.json", "step-000000.npy", "step-000001.npy",
                                                     "step-000002.npy"]
    cached = np.load(os.path.join(writer_cache.path, "step-000001.npy"))
    slots = trainer.draw(tf.constant(data.slot_seed("train", train_config.seed, 1), tf.int64))  # step 1's
    np.testing.assert_allclose(cached, teacher_model(slots.inputs, training=False).numpy(), atol=1e-5)
    read, timing, _ = train("reader", teacher_cache.TeacherCache(str(tmp_path / "cache"), key))
    assert (timing["teacher_cache_hits"], timing["teacher_cache_misses"]) == (3, 0)
    for a, b in zip(written, read):
        np.testing.assert_allclose(a, b, atol=1e-5)
    other_seed = teacher_cache.cache_key(teacher_path, tiny, dataclasses.replace(train_config, seed=1))
    assert teacher_cache.TeacherCache(str(tmp_path / "cache"), other_seed).path != writer_cache.path
