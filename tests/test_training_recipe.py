"""The training recipe's levers: LAMB, SINR sampling, the auxiliary channel loss, a narrower
training grid, learning curves, tf.distribute, saved-settings compatibility."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from conftest import REPO, free_ports, run_module
from deeprx.export import shipping
from deeprx.core import config
from deeprx.core import stop_clock
from deeprx.core import workdir
from deeprx.network import curves
from deeprx.network import lamb
from deeprx.network import model
from deeprx.network import training
from deeprx.core import io as io_lib
from edge import ber


def test_lamb_matches_its_formula():
    """Three LAMB steps on two variables against a NumPy transcription of You et al.'s update."""
    w0 = [np.array([[1.0, -2.0], [0.5, 3.0]], np.float32), np.array([0.1, -0.2, 0.3], np.float32)]
    grads = [[np.array([[0.3, -0.1], [0.2, 0.4]], np.float32) * (k + 1), np.array([1.0, 2.0, -1.0], np.float32) / (k + 1)]
             for k in range(3)]
    variables = [tf.Variable(w) for w in w0]
    optimizer = lamb.Lamb(learning_rate=0.05)
    for g in grads:
        optimizer.apply_gradients(zip([tf.constant(x) for x in g], variables))

    b1, b2, eps, lr = 0.9, 0.999, 1e-6, 0.05
    for i, w in enumerate(w0):
        w, m, v = w.astype(np.float64), np.zeros_like(w, np.float64), np.zeros_like(w, np.float64)
        for t, g in enumerate(grads, start=1):
            m = b1 * m + (1 - b1) * g[i]
            v = b2 * v + (1 - b2) * g[i] ** 2
            r = (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
            w = w - lr * np.linalg.norm(w) / np.linalg.norm(r) * r
        np.testing.assert_allclose(variables[i].numpy(), w, rtol=1e-5)
    # The trust ratio makes the step lr x ||w|| whatever the gradient's scale.
    v = tf.Variable(np.full(4, 2.0, np.float32))
    lamb.Lamb(learning_rate=0.1).apply_gradients([(tf.constant([1e-4, 1e-4, 1e-4, 1e-4]), v)])
    assert np.linalg.norm(v.numpy() - 2.0) == pytest.approx(0.1 * 4.0, rel=1e-3)


def _trainer(scenario, tmp_path, **settings):
    train_config = config.TrainConfig(**{"steps": 10, "batch_size": 64, "warmup_steps": 1, **settings})
    keras_model = model.build(model.DeepRxConfig(width_multiplier=0.125),
                              training.training_scenario(scenario, train_config))
    return training.Trainer(keras_model, scenario, train_config, str(tmp_path), log=lambda *a, **k: None)


def test_sinr_sampling_covers_the_range_uniformly_and_snr_sir_does_not(tiny, tmp_path):
    seed = tf.constant(123, tf.int64)
    sinr = _trainer(tiny, tmp_path / "a", sinr_sampling="sinr", train_sinr_db=(-8.0, 24.0)).draw(seed).sinr_db.numpy()
    assert sinr.min() >= -8.0 and sinr.max() <= 24.0
    # Uniform over 32 dB: a quarter of the slots in each 8 dB quarter, give or take.
    counts = np.histogram(sinr, bins=4, range=(-8, 24))[0]
    assert counts.min() >= 6, counts
    # Independent SNR (-4..32 dB) and SIR (10..30 dB): the interferer caps the SINR near 30 dB and
    # high SINR is rare; the drawn SINR is what the generator reports either way.
    legacy = _trainer(tiny, tmp_path / "b").draw(seed).sinr_db.numpy()
    assert legacy.max() <= 30.0 + 1e-3 and np.mean(legacy >= 20) < np.mean(sinr >= 16)
    # Replicas draw other slots from the same step seed.
    trainer = _trainer(tiny, tmp_path / "c", sinr_sampling="sinr", train_sinr_db=(-8.0, 24.0))
    assert not np.allclose(trainer.draw(seed, 0).inputs.numpy(), trainer.draw(seed, 1).inputs.numpy())


def test_aux_channel_head_learns_and_is_checkpointed(tiny, tmp_path):
    keras.utils.set_random_seed(0)
    trainer = _trainer(tiny, tmp_path, steps=12, batch_size=8, learning_rate=1e-2, aux_channel_weight=1.0,
                       checkpoint_every=12, log_every=12)
    head_before = [w.numpy().copy() for w in trainer.aux_head.weights]
    timing = trainer.fit()
    assert "final_channel_mse" in timing and timing["final_channel_mse"] > 0
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(head_before, trainer.aux_head.weights))
    names = [name for name, _ in tf.train.list_variables(os.path.join(tmp_path, "checkpoints", "ckpt-12"))]
    assert any(name.startswith("aux_head/") for name in names)
    # The latest checkpoint kept for a new machine resumes there at the same step and weights.
    kept = shipping.keep_checkpoint(str(tmp_path), "kept", checkpoints_dir=str(tmp_path / "keep"))
    assert sorted(os.listdir(os.path.join(kept, "checkpoints")))[0] == "checkpoint"
    again = _trainer(tiny, kept, steps=12, batch_size=8, learning_rate=1e-2, aux_channel_weight=1.0)
    assert again.restore() == 12
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(again.aux_head.weights, trainer.aux_head.weights))
    # The channel target the head regresses on is the true channel, real then imaginary parts.
    h = tf.complex(tf.ones([1, 14, 24, 2]), 2 * tf.ones([1, 14, 24, 2]))
    target = training.channel_target(h).numpy()
    assert target.shape == (1, 14, 24, 4) and (target[..., :2] == 1).all() and (target[..., 2:] == 2).all()


def test_levers_through_the_cli_narrow_grid_and_learning_curve(tmp_path):
    run_dir = str(tmp_path / "levers")
    result = run_module("deeprx.train", "--flagfile=smoke.flags", f"--workdir={run_dir}", "--optimizer=lamb",
                        "--schedule=flat_linear", "--sinr_sampling=sinr", "--aux_channel_weight=1",
                        "--train_num_prb=1", "--curve_every=3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "on 1 PRB" in result.stdout and "channel_mse" in result.stdout
    settings = workdir.RunDir(run_dir).settings["train"]
    assert settings["train_sinr_db"] == [-8.0, 24.0]  # the tiny grid -4..20 dB, +-4 dB
    assert (settings["optimizer"], settings["schedule"], settings["train_num_prb"]) == ("lamb", "flat_linear", 1)
    # Trained on 1 PRB, saved and evaluated on the scenario's 2 PRB, one output (no aux head).
    saved = keras.models.load_model(os.path.join(run_dir, "model.keras"), compile=False)
    assert saved.input_shape == (None, 14, 24, 10) and saved.output_shape == (None, 14, 24, 4)
    points = io_lib.read_csv(os.path.join(run_dir, curves.CURVE_FILENAME))
    assert [int(p["step"]) for p in points] == [3, 6]
    assert [int(p["slots_seen"]) for p in points] == [12, 24]
    assert float(points[1]["train_seconds"]) >= float(points[0]["train_seconds"]) > 0
    assert set(points[0]) >= {"gm_ber", "ber_-4dB", "ber_20dB"}
    train = json.loads(open(os.path.join(run_dir, "train.json")).read())
    assert train["slots_seen"] == 24 and "cpu" in train


def test_learning_curve_matches_the_bench_rule_and_truncates(tiny, tmp_path):
    keras_model = model.build(model.DeepRxConfig(width_multiplier=0.125), tiny)
    curve = curves.LearningCurve(keras_model, tiny, (0.0, 10.0), str(tmp_path), slots_per_point=3, batch_size=2)
    gm, points = curve.evaluate()
    assert [p[2] for p in points] == [3 * 13 * 24 * 4] * 2  # slots x data symbols x subcarriers x bits
    assert gm == pytest.approx(np.mean([np.log10(max(e / n, ber.GM_BER_FLOOR)) for _, e, n in points]))
    curve.add(5, 40, 1.0, 0.5)
    curve.add(10, 80, 2.0, None)
    curve.truncate(5)
    assert [int(r["step"]) for r in curve.rows()] == [5]
    curve.add(5, 40, 1.0, 0.4)  # a point redone after a resume replaces the old one
    assert [r["loss"] for r in curve.rows()] == ["0.4"]


def test_runs_saved_before_the_new_settings_still_resume(tmp_path):
    scenario = config.get_preset("tiny").scenario
    model_config = model.DeepRxConfig()
    new = workdir.run_config_dict("tiny", scenario, model_config, config.TrainConfig())
    old = json.loads(json.dumps(new))
    for key in ("optimizer", "schedule", "sinr_sampling", "train_sinr_db", "aux_channel_weight", "train_num_prb",
                "curve_every"):
        del old["train"][key]
    (tmp_path / "config.json").write_text(json.dumps(old))
    workdir.check_workdir(str(tmp_path), new)  # the defaults are the old behaviour
    workdir.check_workdir(str(tmp_path), workdir.run_config_dict(
        "tiny", scenario, model_config, config.TrainConfig(curve_every=100)))  # monitoring only
    with pytest.raises(ValueError, match="other settings"):
        workdir.check_workdir(str(tmp_path), workdir.run_config_dict(
            "tiny", scenario, model_config, config.TrainConfig(sinr_sampling="sinr", train_sinr_db=(0.0, 10.0))))


def test_pretrained_names_resolve_to_shipped_models_or_say_which_exist():
    assert workdir.resolve("runs/x") == "runs/x"
    with pytest.raises(ValueError, match="no shipped model 'nope'; shipped: "):
        workdir.resolve("pretrained:nope")
    for name in workdir.shipped_models():
        assert os.path.isfile(os.path.join(workdir.resolve("pretrained:" + name), "model.keras"))


# Two replicas on two logical CPUs (set before TensorFlow starts, hence a fresh process).
_DISTRIBUTED = textwrap.dedent("""
    import dataclasses, json, sys, tempfile
    import numpy as np
    from deeprx.core import config
    from deeprx.network import distribute
    from deeprx.network import model
    from deeprx.network import training
    strategy = distribute.make("mirrored", cpu_replicas=2)
    import tensorflow as tf, tf_keras as keras
    assert strategy.num_replicas_in_sync == 2
    scenario = config.get_preset("tiny").scenario
    mc = model.DeepRxConfig(width_multiplier=0.125)
    tc = config.TrainConfig(steps=30, batch_size=8, learning_rate=1e-2, warmup_steps=2, checkpoint_every=15,
                            log_every=30)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        mirrored = model.build(mc, scenario, synchronized_bn=True)
    single = model.build(mc, scenario)
    single.set_weights(mirrored.get_weights())
    out = {}
    a = training.Trainer(mirrored, scenario, tc, tempfile.mkdtemp(), log=lambda *x, **k: None, strategy=strategy)
    b = training.Trainer(single, scenario, tc, tempfile.mkdtemp(), log=lambda *x, **k: None)
    seed = tf.constant(7, tf.int64)
    initial = single.get_weights()
    halves = [a.draw(seed, r) for r in (0, 1)]
    a._train_step(seed)
    b._update(*[tf.concat([getattr(h, k) for h in halves], 0) for k in ("inputs", "bits", "data_mask")])
    out["max_weight_diff"] = max(float(np.max(np.abs(x - y)))
                                 for x, y in zip(mirrored.get_weights(), single.get_weights()))
    out["max_weight_change"] = max(float(np.max(np.abs(x - y)))
                                   for x, y in zip(mirrored.get_weights(), initial))
    # Train 2 replicas for 30 steps: the loss on held-out slots falls; then resume to 32.
    from deeprx.network import losses
    from deeprx.simulation import data
    held = data.SlotGenerator(scenario, "train")(32, seed=data.slot_seed("held-out"))
    loss = lambda m: float(losses.masked_bce(held.bits, m(held.inputs, training=False), held.data_mask))
    workdir = sys.argv[1]
    keras.utils.set_random_seed(1)
    with strategy.scope():
        fresh = model.build(mc, scenario, synchronized_bn=True)
    out["loss_before"] = loss(fresh)
    training.Trainer(fresh, scenario, tc, workdir, log=lambda *x, **k: None, strategy=strategy).fit()
    out["loss_after"] = loss(fresh)
    with strategy.scope():
        again = model.build(mc, scenario, synchronized_bn=True)
    resumed = training.Trainer(again, scenario, dataclasses.replace(tc, steps=32), workdir,
                               log=lambda *x, **k: None, strategy=strategy)
    out["restored_step"] = resumed.restore()
    out["restored_equal"] = all(np.array_equal(x, y) for x, y in zip(again.get_weights(), fresh.get_weights()))
    out["steps_this_run"] = resumed.fit()["steps_this_run"]
    print("RESULT " + json.dumps(out))
""")


def test_two_replicas_match_one_device_train_and_resume(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)
    result = subprocess.run([sys.executable, "-c", _DISTRIBUTED, str(tmp_path / "run")], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.split("RESULT ", 1)[1])
    # One 2-replica step (4 slots each, synchronized batch norm) equals one single-device step
    # on the 8 slots concatenated; the step itself moved the weights by far more.
    assert out["max_weight_change"] > 1e-3
    assert out["max_weight_diff"] < 1e-4, out
    assert out["loss_after"] < out["loss_before"] - 0.01, out
    assert out["restored_step"] == 30 and out["restored_equal"] and out["steps_this_run"] == 2


def test_multiworker_on_two_local_processes_trains_and_resumes(tmp_path):
    """Two workers on this machine's loopback (TF_CONFIG), as two nodes would run: worker 0 writes
    the run, both restore from it."""
    run_dir = str(tmp_path / "run")
    cluster = [f"localhost:{port}" for port in free_ports(2)]

    def train(steps):
        processes = []
        for index in (0, 1):
            env = dict(os.environ, PYTHONPATH=REPO, TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1",
                       TF_CONFIG=json.dumps({"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}}))
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "deeprx.train", "--flagfile=smoke.flags", f"--workdir={run_dir}",
                 "--distribute=multiworker", "--noeval", f"--steps={steps}"],
                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        outputs = [p.communicate(timeout=300) for p in processes]
        assert all(p.returncode == 0 for p in processes), [err[-2000:] for _, err in outputs]
        return [out for out, _ in outputs]

    chief, other = train(6)
    assert "on 2 replicas (multiworker)" in chief and "step 6/6" in chief and "step 6/6" not in other
    assert json.loads(open(os.path.join(run_dir, "train.json")).read())["replicas"] == 2
    chief, _ = train(9)
    assert "Resuming from checkpoint at step 6" in chief and "step 9/9" in chief
    assert os.path.isfile(os.path.join(run_dir, "checkpoints", "ckpt-9.index"))
    assert sorted(os.listdir(run_dir)) == ["checkpoints", "config.json", "flags.txt", "model.keras", "tb",
                                           "train.json"]


def test_ablation_trains_each_arm_and_draws_their_curves(tmp_path):
    arms = tmp_path / "arms"
    arms.mkdir()
    smoke = os.path.relpath(os.path.join(REPO, "smoke.flags"), arms)  # relative to the arm file, as nested flagfiles are
    (arms / "a-base.flags").write_text(f"--flagfile={smoke}\n--curve_every=3\n")
    (arms / "b-sinr.flags").write_text(f"# one lever\n--flagfile={smoke}\n--curve_every=3\n--sinr_sampling=sinr\n")
    out, work = tmp_path / "out", tmp_path / "work"
    result = run_module("deeprx.ablation", f"--arms={arms}", f"--workdir={work}", f"--out={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    points = io_lib.read_csv(str(out / "curves.csv"))
    assert [(p["arm"], p["step"]) for p in points] == [("a-base", "3"), ("a-base", "6"), ("b-sinr", "3"),
                                                       ("b-sinr", "6")]
    arm_rows = {row["arm"]: row for row in io_lib.read_csv(str(out / "arms.csv"))}
    assert arm_rows["b-sinr"]["flags"] == "--curve_every=3 --sinr_sampling=sinr" and arm_rows["a-base"]["flags"] == \
        "--curve_every=3"
    assert arm_rows["b-sinr"]["curve_gm_ber"] == points[-1]["gm_ber"]
    assert float(arm_rows["a-base"]["ls_lmmse_gm_ber"]) < 0 and (out / "curves.png").stat().st_size > 10000
    assert "GM BER" in result.stdout
    # A rerun trains nothing (both arms finished); an arm without a curve is refused up front.
    again = run_module("deeprx.ablation", f"--arms={arms}", f"--workdir={work}", f"--out={out}")
    assert again.returncode == 0 and again.stdout.count("finished earlier, skipped") == 2
    (arms / "c-bad.flags").write_text(f"--flagfile={smoke}\n")
    bad = run_module("deeprx.ablation", f"--arms={arms}", f"--workdir={work}", f"--out={out}")
    assert bad.returncode == 2 and "--arms: arm" in bad.stderr and "sets no --curve_every" in bad.stderr


def _busy(seconds):
    """This thread's CPU work of about `seconds` (a sleep would run on while the process is
    stopped; the process's CPU time would count other threads')."""
    end, total = time.thread_time() + seconds, 0
    while time.thread_time() < end:
        total += 1
    return total


def test_a_real_stop_is_measured_from_the_step_it_fell_in():
    clock = stop_clock.StopClock()
    try:
        start = time.perf_counter()
        _busy(0.4)
        assert clock.stopped_seconds(time.perf_counter() - start) == 0.0  # no SIGCONT: the usual step
        # A process stopped for 1 s in the middle of the next step, from outside, as `pkill -STOP` does.
        outside = subprocess.Popen(["sh", "-c", f"sleep 0.15; kill -STOP {os.getpid()}; sleep 1; kill -CONT {os.getpid()}"])
        start = time.perf_counter()
        _busy(0.4)
        stopped = clock.stopped_seconds(time.perf_counter() - start)
        outside.wait(timeout=10)
        assert 0.6 < stopped < 1.6
        assert clock.stopped_seconds(0.4) == 0.0  # counted once
    finally:
        clock.close()


def test_training_time_leaves_out_a_stop(tiny, tmp_path):
    """A step that took 2 s more and ended with SIGCONT (what a `kill -STOP` ... `kill -CONT`
    inside it looks like to the process): train.json's training time leaves those 2 s out,
    the wall time keeps them, and the log says so."""
    lines = []
    trainer = _trainer(tiny, tmp_path, steps=6, batch_size=4, log_every=1, checkpoint_every=6)
    trainer.log = lambda *a, **k: lines.append(" ".join(map(str, a)))
    step = trainer._train_step
    calls = []

    def stopped_at_the_fourth(seed):
        calls.append(seed)
        out = step(seed)
        if len(calls) == 4:
            time.sleep(2.0)
            os.kill(os.getpid(), signal.SIGCONT)
        return out
    trainer._train_step = stopped_at_the_fourth
    result = trainer.fit()
    assert result["stopped_seconds_this_run"] == pytest.approx(2.0, abs=0.5)
    assert result["train_seconds_total"] <= result["seconds_this_run"] - 1.5
    assert [line for line in lines if "stopped for" in line] == [
        "step 4: the process was stopped for 2 s (SIGSTOP); not counted as training time"]


def test_collapse_rules():
    # QAT models carry int32 variables (optimizer_step): they are skipped, not an error.
    ok = [tf.Variable([1.0, 2.0]), tf.Variable(3, dtype=tf.int32)]
    assert training.collapse_problem(0.30, 0.25, ok) is None
    assert training.collapse_problem(0.69, None, ok) is None  # an untrained start is not a collapse
    assert "ln 2" in training.collapse_problem(0.6932, 0.28, ok)
    assert "nan" in training.collapse_problem(float("nan"), 0.28, ok)
    assert "moving_variance" in training.collapse_problem(
        0.3, 0.28, ok + [tf.Variable([1.0, np.inf], name="bn/moving_variance")])


def test_the_collapse_guard_checks_the_variables_trained_beside_the_model(tiny, tmp_path):
    trainer = _trainer(tiny, tmp_path, aux_channel_weight=0.5)
    head_kernel = trainer.aux_head.kernel
    assert head_kernel.ref() in {v.ref() for v in trainer.checked_variables}
    assert len(trainer.checked_variables) == len(trainer.model.variables) + len(trainer.aux_head.variables)
    head_kernel.assign(tf.fill(head_kernel.shape, np.inf))
    with pytest.raises(training.TrainingCollapsed, match="variable kernel:0 holds non-finite values"):
        trainer._check_health(2, 0.3, 0.28)


def test_a_collapsed_run_stops_before_saving_and_names_the_last_checkpoint(tiny, tmp_path):
    trainer = _trainer(tiny, tmp_path, steps=4, batch_size=8, checkpoint_every=2, log_every=2)
    kernel = trainer.model.get_layer("head_conv").kernel  # the output conv
    train_step, calls = trainer._train_step, []

    def step_then_break_after_two(seed):
        calls.append(seed)
        if len(calls) == 3:  # every logit NaN from the third step on
            kernel.assign(tf.fill(kernel.shape, np.nan))
        return train_step(seed)

    trainer._train_step = step_then_break_after_two
    with pytest.raises(training.TrainingCollapsed, match=r"step 4: the loss is nan.*ckpt-2"):
        trainer.fit()
    assert tf.train.latest_checkpoint(trainer.checkpoint_dir).endswith("ckpt-2")


def test_a_one_device_mirrored_strategy_trains_as_the_default_one(tiny, tmp_path):
    """--distribute=mirrored where there is one device (the CPU, or one GPU): one replica, whose
    step is not a nested tf.function (that failed with "`merge_call` called while defining a
    new graph"), and moves the weights as the default strategy's step on the same slots."""
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    assert strategy.num_replicas_in_sync == 1
    mc = model.DeepRxConfig(width_multiplier=0.125)
    tc = config.TrainConfig(steps=2, batch_size=4, learning_rate=1e-2, warmup_steps=1, checkpoint_every=2,
                            log_every=2)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        mirrored = model.build(mc, tiny)
    single = model.build(mc, tiny)
    single.set_weights(mirrored.get_weights())
    initial = single.get_weights()
    quiet = lambda *x, **k: None  # noqa: E731
    a = training.Trainer(mirrored, tiny, tc, str(tmp_path / "a"), log=quiet, strategy=strategy)
    b = training.Trainer(single, tiny, tc, str(tmp_path / "b"), log=quiet)
    seed = tf.constant(7, tf.int64)
    a._train_step(seed)
    b._train_step(seed)
    assert max(float(np.max(np.abs(x - y))) for x, y in zip(single.get_weights(), initial)) > 1e-3
    assert max(float(np.max(np.abs(x - y))) for x, y in zip(mirrored.get_weights(), single.get_weights())) < 1e-5


def test_a_stop_request_checkpoints_the_step_reached_and_the_run_resumes_there(tiny, tmp_path):
    """Trainer.stop_requested (deeprx.train sets it on SIGTERM: a Slurm time limit, a sweep
    stopping): the step in progress finishes, a checkpoint of it is saved off the
    --checkpoint_every grid, and a new Trainer resumes from it."""
    mc = model.DeepRxConfig(width_multiplier=0.125)
    tc = config.TrainConfig(steps=6, batch_size=4, learning_rate=1e-2, warmup_steps=1, checkpoint_every=4,
                            log_every=1)
    lines = []
    trainer = training.Trainer(model.build(mc, tiny), tiny, tc, str(tmp_path), log=lambda line, **_: lines.append(line))
    trainer.stop_requested.set()
    with pytest.raises(training.TrainingStopped, match="stopped at step 1 of 6"):
        trainer.fit()
    assert any("asked to stop" in line for line in lines)
    resumed = training.Trainer(model.build(mc, tiny), tiny, tc, str(tmp_path), log=lambda *x, **k: None)
    assert resumed.restore() == 1
    assert resumed.fit()["steps_this_run"] == 5
