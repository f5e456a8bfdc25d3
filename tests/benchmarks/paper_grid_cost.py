"""Estimate (no GPU here, nothing measured on one): what the paper's grid costs on a GPU
cluster, per run, from the FLOPs per slot the model code counts and a stated GPU throughput.

Example usage (from the repository root; seconds, no training):
  python tests/benchmarks/paper_grid_cost.py
  python tests/benchmarks/paper_grid_cost.py --gpu="A100 40GB" --effective_tflops=4.9 --out=data/results/cluster-cost

A training step costs 3 forward passes of the model per slot (forward, and backward at about
twice the forward's FLOPs), a KD step one forward pass of the teacher more. GPU hours =
steps x batch x FLOPs per step and slot / (effective TFLOP/s x 3600). The effective
throughput is an assumption the reader can change: the default, 25% of an A100's 19.5
TFLOP/s FP32 peak, stands for a network of depthwise and 1x1 convolutions in float32 (the
code trains in float32; no mixed precision). The in-graph Sionna generator is not counted: on
this machine's CPU it costs about 1% of a training step (data/results/train-throughput), on a
GPU that is unverified. Writes OUT/paper_grid.json.
"""

import argparse
import json
import os
import platform
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MAP_RATIOS = (0.03, 0.1, 0.18, 11 / 30)  # the student-size map (sweep-kd-map-2dmrs.flags, issue 37)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", default="NVIDIA A100 40GB (FP32 peak 19.5 TFLOP/s)")
    parser.add_argument("--effective_tflops", type=float, default=4.9, help="assumed sustained FP32 TFLOP/s per GPU")
    parser.add_argument("--teacher_steps", type=int, default=250_000, help="the paper's training length")
    parser.add_argument("--student_steps", type=int, default=250_000)
    parser.add_argument("--batch_size", type=int, default=16, help="slots per step (teacher.flags' batch)")
    parser.add_argument("--student_flops_ratio", type=float, default=11 / 30, help="the paper's 11/30")
    parser.add_argument("--out", default=None, help="directory for paper_grid.json (default: print only)")
    args = parser.parse_args()

    from deeprx.core import config
    from deeprx.network import model

    scenario = config.get_preset("paper").scenario
    teacher = model.DeepRxConfig(width_multiplier=1.0, variant="paper")
    teacher_flops = model.flops_per_slot(teacher, scenario)
    student = model.student_config(teacher, scenario, args.student_flops_ratio, "edge")
    student_flops = model.flops_per_slot(student, scenario)
    rate = args.effective_tflops * 1e12
    map_flops = [model.flops_per_slot(model.student_config(teacher, scenario, ratio, "edge"), scenario)
                 for ratio in MAP_RATIOS]

    def gpu_hours(steps, flops_per_slot):
        return steps * args.batch_size * flops_per_slot / rate / 3600

    runs = {  # per run, GPU hours
        "gpu_hours_teacher": gpu_hours(args.teacher_steps, 3 * teacher_flops),  # paper variant, width x1
        "gpu_hours_scratch_student": gpu_hours(args.student_steps, 3 * student_flops),  # edge variant
        "gpu_hours_kd_student": gpu_hours(args.student_steps, 3 * student_flops + teacher_flops),
    }
    result = {
        "what": "estimate, not a measurement: FLOPs counted by deeprx.network.model, throughput assumed",
        "preset": "paper", "scenario": "26 PRB, 256-QAM, CDL, 2 Rx",
        "gpu": args.gpu, "effective_tflops_assumed": args.effective_tflops, "batch_size": args.batch_size,
        "teacher_gflops_per_slot": round(teacher_flops / 1e9, 3),
        "student_gflops_per_slot": round(student_flops / 1e9, 3),
        "teacher_steps": args.teacher_steps, "student_steps": args.student_steps,
        **{name: round(hours, 1) for name, hours in runs.items()},
        "kd_map_gpu_hours": round(sum(
            3 * (gpu_hours(args.student_steps, 3 * flops) + gpu_hours(args.student_steps, 3 * flops + teacher_flops))
            for flops in map_flops), 0),
        "kd_map": f"sweep-kd-map-2dmrs.flags' sizes {', '.join(f'{r:.0%}' for r in MAP_RATIOS)} of the teacher's "
                  "FLOPs, KD and scratch, 3 seeds each",
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, Python {platform.python_version()}",
    }
    print(json.dumps(result, indent=2))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "paper_grid.json"), "w") as f:
            f.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
