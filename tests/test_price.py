"""python -m deeprx.price on the session's smoke run: int8 export, float and int8 BER on the same
slots, the preflight and the runner's speed, gathered in price.json."""

import os

from conftest import run_module
from deeprx.core import io as io_lib


def test_price_gathers_what_its_commands_wrote(smoke_run, tmp_path):
    out = str(tmp_path / "price")
    name = os.path.basename(smoke_run["workdir"])
    result = run_module("deeprx.price", f"--models={smoke_run['workdir']}", "--preset=tiny", "--count=20",
                        "--passes=2", "--max_bits=4000", "--energy_source=cputime:5", f"--out={out}", timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    price = io_lib.read_json(os.path.join(out, "price.json"))
    entry = price["models"][name]
    # BER: the float run and its int8 export, read back from the evaluation they were scored in.
    summary = io_lib.read_json(os.path.join(out, "ber", "summary.json"))
    assert entry["float"]["gm_ber"] == summary[name]["gm_ber"]
    assert entry["int8"]["gm_ber"] == summary[f"{name}_int8"]["gm_ber"]
    assert entry["int8_file"] == f"{name}_int8.tflite" and os.path.isfile(os.path.join(out, entry["int8_file"]))
    record = io_lib.read_json(os.path.join(out, f"{name}_int8.json"))
    assert record["model_config"]["width_multiplier"] == 0.125 and entry["shape"] == "paper-w0.125-d2"
    preflight = io_lib.read_json(os.path.join(out, f"{name}_int8.preflight.json"))
    assert entry["edgetpu"] == {"operators": len(preflight["operators"]), "mapped": preflight["mapped"],
                                "cut_at": preflight["cut_at"]}
    # Speed: one shape, float and int8, the median of two passes of the runner at cputime:5.
    speed = price["shapes"]["paper-w0.125-d2"]
    for fmt in ("float", "int8"):
        passes = [io_lib.read_json(os.path.join(out, "runner", f"paper-w0.125-d2_{fmt}", f"pass{n}", "runner.json"))
                  for n in (1, 2)]
        rates = sorted(p["timing"]["inferences_per_s"] for p in passes)
        assert speed[fmt]["inferences_per_s"] == rates[0]  # the lower middle of two
        assert len(speed[fmt]["inferences_per_s_passes"]) == 2
        assert speed[fmt]["energy_mj_per_inference"] > 0
    assert price["energy_source"].startswith("process CPU time x 5 W per busy core")
    assert len(price["commands"]) == 2 + 1 + 1 + 4  # quantize, compile, float export; evaluate; 2 passes x 2
    assert sum(c.startswith("python -m edge.runner") for c in price["commands"]) == 4


def test_price_refuses_a_predictor_directory_without_a_predictor(smoke_run, tmp_path):
    result = run_module("deeprx.price", f"--models={smoke_run['workdir']}", "--preset=tiny",
                        f"--predictor={tmp_path}", f"--out={tmp_path / 'p'}", timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: --predictor: no predictor.joblib")
