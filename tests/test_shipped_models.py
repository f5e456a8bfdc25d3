"""Shipped pretrained models (data/models): each loads by name and beats ls_lmmse at high SINR."""


import os

import pytest

from conftest import run_module
from deeprx.export import shipping
from deeprx.core import config
from deeprx.core import workdir
from deeprx.core import io as io_lib
from edge import ber


@pytest.mark.parametrize("name", workdir.shipped_models())
def test_a_shipped_model_is_a_finished_run_with_its_evaluation(name):
    """A sweep or study given pretrained:NAME uses it as it is, never trains into it."""
    run = workdir.RunDir("pretrained:" + name)
    assert run.finished()
    # Its summary is what its own BER table gives by edge/ber.py's rules, recounted here.
    recounted = ber.summarize(run.ber_rows(["ls_lmmse", name]))
    assert set(recounted) == {"ls_lmmse", name}
    for receiver in recounted:
        for key in ("gm_ber", "sinr_at_ber_1e-2", "sinr_at_ber_1e-3"):
            assert recounted[receiver][key] == pytest.approx(
                io_lib.read_json(os.path.join(run.path, "summary.json"))[receiver][key], abs=1e-6), (receiver, key)
    assert run.result()["parameters"] == io_lib.read_json(os.path.join(run.path, "train.json"))["parameters"]


@pytest.mark.parametrize("name", workdir.shipped_models())
def test_shipped_model_beats_ls_lmmse_at_high_sinr(name, tmp_path):
    run = workdir.RunDir("pretrained:" + name)
    settings = run.settings
    preset = config.get_preset(settings["preset"])
    top = max(preset.evaluation.sinr_db)
    # Bits for about 150 ls_lmmse errors a point by the model's own evaluation (2 DMRS: ls_lmmse
    # does not floor, 1.4e-4 at 28 dB), at least 200,000.
    ls_ber = min(float(r["ber"]) for r in run.ber_rows(["ls_lmmse"]) if float(r["sinr_db"]) >= top - 4)
    bits = max(200_000, int(150 / ls_ber))
    out = str(tmp_path / "eval")
    result = run_module("deeprx.evaluate", f"--preset={settings['preset']}",
                        f"--num_dmrs={settings['scenario']['dmrs']['num_symbols']}",
                        f"--receivers=pretrained:{name},ls_lmmse", f"--out={out}", f"--sinr_db={top - 4:g}:{top:g}:4",
                        f"--max_bits={bits}", "--batch_size=32")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = io_lib.read_csv(os.path.join(out, "ber.csv"))
    for sinr in (top - 4, top):
        by = {r["receiver"]: r for r in rows if float(r["sinr_db"]) == sinr}
        assert int(by["ls_lmmse"]["bit_errors"]) >= 100  # enough errors for the comparison to mean something
        assert float(by[name]["ber"]) < float(by["ls_lmmse"]["ber"]), by


def test_ship_writes_a_model_card(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "eval").mkdir(parents=True)
    scenario = config.get_preset("tiny").scenario
    from deeprx.network import model
    settings = workdir.run_config_dict("tiny", scenario, model.DeepRxConfig(width_multiplier=0.125),
                                       config.TrainConfig(steps=6, batch_size=4))
    io_lib.write_json(str(run_dir / "config.json"), settings)
    io_lib.write_json(str(run_dir / "train.json"), {
        "parameters": 27748, "flops_per_slot": 17.9e6, "steps": 6, "steps_this_run": 6, "seconds_this_run": 7.2,
        "slots_seen": 24, "train_seconds_total": 7.2, "command": "python -m deeprx.train --flagfile=smoke.flags",
        "commit": "abc1234", "machine": "x86_64, 2 CPUs", "cpu": "Some CPU (avx2)"})
    (run_dir / "model.keras").write_bytes(b"weights")
    rows = [ber.make_row(r, s, e, 1000) for r, s, e in
            (("run", 0.0, 300), ("ls_lmmse", 0.0, 350), ("run", 10.0, 5), ("ls_lmmse", 10.0, 40))]
    ber.write_csv(str(run_dir / "eval" / "ber.csv"), rows)
    io_lib.write_json(str(run_dir / "eval" / "summary.json"), ber.summarize(rows))
    dest = shipping.ship(str(run_dir), "tiny-teacher", models_dir=str(tmp_path / "models"))
    card = open(os.path.join(dest, "MODEL.md")).read()
    for needle in ("# tiny-teacher", "`python -m deeprx.train --flagfile=smoke.flags`", "| commit | abc1234 |",
                   "| slots seen | 24 |", "Some CPU (avx2)", "| parameters | 27,748 |", "17.9 M",
                   "--receivers=pretrained:tiny-teacher,ls_lmmse,perfect_lmmse", "| 10 | 5.00e-03 | 4.00e-02 |"):
        assert needle in card, needle
    assert sorted(os.listdir(dest)) == sorted(["MODEL.md", "model.keras", "config.json", "train.json", "ber.csv",
                                                "summary.json"])
    # The run "run" answers to its shipped name in the evaluation files (RunDir("pretrained:NAME").name).
    assert set(io_lib.read_json(os.path.join(dest, "summary.json"))) == {"tiny-teacher", "ls_lmmse"}
    assert [r["receiver"] for r in io_lib.read_csv(os.path.join(dest, "ber.csv"))] == [
        "tiny-teacher", "ls_lmmse", "tiny-teacher", "ls_lmmse"]
    assert "trained from scratch" in card
    with pytest.raises(ValueError, match="not a finished run"):
        shipping.ship(str(tmp_path / "models"), "x", models_dir=str(tmp_path / "m2"))

    # A distilled student, shipped with its int8 export, its export record and preflight report.
    # A training records the path it loaded a pretrained:NAME teacher from; the card names the spec.
    io_lib.write_json(str(run_dir / "config.json"), dict(settings, kd={
        "teacher": os.path.join(workdir.MODELS_DIR, "tiny-teacher"), "alpha": 0.5, "temperature": 3.0,
        "form": "hinton"}))
    export = tmp_path / "edge_out" / "student_int8.tflite"
    export.parent.mkdir()
    export.write_bytes(b"TFL3")
    with pytest.raises(ValueError, match="no export record"):
        shipping.ship(str(run_dir), "tiny-student", models_dir=str(tmp_path / "models"), tflite=[str(export)])
    command = "python -m deeprx.quantize --model=runs/student --preset=demo --method=qat --out=edge_out"
    io_lib.write_json(str(export).replace(".tflite", ".json"), {
        "model": "student_int8.tflite", "method": "qat", "size_bytes": 248272, "preset": "demo",
        "scenario": {"carrier": {"num_prb": 4}}, "command": command,
        "input": {"dtype": "int8", "shape": [1, 14, 48, 10]}})
    with pytest.raises(ValueError, match="no preflight report: run python -m deeprx.compile"):
        shipping.ship(str(run_dir), "tiny-student", models_dir=str(tmp_path / "models"), tflite=[str(export)])
    io_lib.write_json(str(export).replace(".tflite", ".preflight.json"), {"mapped": 129, "cpu": 0, "cut_at": None})
    dest = shipping.ship(str(run_dir), "tiny-student", models_dir=str(tmp_path / "models"), tflite=[str(export)])
    card = open(os.path.join(dest, "MODEL.md")).read()
    assert "distilled from the teacher `pretrained:tiny-teacher` (alpha 0.5, T 3, hinton form)" in card
    # Shipped under a name that says its grid, with the grid and the command in the card.
    shipped = "tiny-student_4prb_int8_qat"
    assert f"| {shipped}.tflite | qat | 4 PRB (`demo`) | int8 1x14x48x10 | 248 kB | 129 / 0 | none |" in card
    assert command in card
    assert {f"{shipped}.tflite", f"{shipped}.json", f"{shipped}.preflight.json"} <= set(os.listdir(dest))
    assert io_lib.read_json(os.path.join(dest, f"{shipped}.json"))["model"] == f"{shipped}.tflite"
    assert open(os.path.join(dest, f"{shipped}.tflite"), "rb").read() == b"TFL3"

    # Shipped again in place: without --tflite the card keeps the exports; with, they replace them.
    assert shipping.ship(dest, "tiny-student", models_dir=str(tmp_path / "models")) == dest
    assert open(os.path.join(dest, "MODEL.md")).read() == card
    io_lib.write_json(str(export).replace(".tflite", ".json"), {
        "model": "student_int8.tflite", "method": "ptq", "size_bytes": 248272, "preset": "cpu",
        "scenario": {"carrier": {"num_prb": 8}}, "input": {"dtype": "int8", "shape": [1, 14, 96, 10]}})
    shipping.ship(dest, "tiny-student", models_dir=str(tmp_path / "models"), tflite=[str(export)])
    exports = sorted(e for e in os.listdir(dest) if e.startswith("tiny-student_"))
    assert exports == ["tiny-student_8prb_int8.json", "tiny-student_8prb_int8.preflight.json",
                       "tiny-student_8prb_int8.tflite"]
    assert "| tiny-student_8prb_int8.tflite | ptq | 8 PRB (`cpu`) | int8 1x14x96x10 |" in \
        open(os.path.join(dest, "MODEL.md")).read()

