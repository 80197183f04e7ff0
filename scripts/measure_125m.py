#!/usr/bin/env python3
"""Steady training throughput of finished bla-train runs (docs/distributed.md,
docs/performance.md). For each RUN_DIR/GPUS pair: tokens/s over the logged
train intervals after the first (warm-up and compilation excluded), tokens/s
per GPU, MFU from parameter FLOPs (6 x parameters per token; attention-score
FLOPs not counted) against a bf16 peak, scaling efficiency against the first
run, and the share of training time spent waiting for all-reduces (where
the run measured it with BLA_DIST_TIMING=1).

usage: measure_125m.py [--peak-tflops 989] RUN_DIR:GPUS [RUN_DIR:GPUS ...]
"""
import argparse
import json
import os


def steady(run_dir):
    rows = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))]
    rows = [r for r in rows if r.get("split") == "train"]
    if len(rows) < 2:
        raise SystemExit(f"{run_dir}: needs at least two logged train steps")
    seconds = sum(r["log_interval_s"] for r in rows[1:])
    return (rows[-1]["tokens"] - rows[0]["tokens"]) / seconds, rows[-1]["elapsed_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR:GPUS")
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="dense bf16 peak per GPU (H100 SXM: 989)")
    args = parser.parse_args()
    base = None
    print(f"{'run':28s} {'gpus':>4s} {'tok/s':>10s} {'tok/s/gpu':>10s} {'MFU':>6s} {'scaling':>8s} {'ar wait':>8s}")
    for spec in args.runs:
        run_dir, gpus = spec.rsplit(":", 1)
        gpus = int(gpus)
        if not os.path.exists(os.path.join(run_dir, "metrics.jsonl")):
            print(f"{os.path.basename(run_dir):28s} missing")
            continue
        rate, train_seconds = steady(run_dir)
        summary = json.load(open(os.path.join(run_dir, "summary.json")))
        params = summary["parameters"]
        mfu = 6 * params * rate / (gpus * args.peak_tflops * 1e12)
        per_gpu = rate / gpus
        if base is None:
            base = per_gpu
        wait = summary.get("distributed", {}).get("allreduce_wait_s")
        wait_share = f"{wait / train_seconds:.1%}" if wait is not None else "-"
        print(f"{os.path.basename(run_dir):28s} {gpus:4d} {rate:10,.0f} {per_gpu:10,.0f} {mfu:6.1%} "
              f"{per_gpu / base:8.1%} {wait_share:>8s}")


if __name__ == "__main__":
    main()
