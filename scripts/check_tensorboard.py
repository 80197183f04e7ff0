#!/usr/bin/env python3
"""Reads a run's TensorBoard event file with TensorBoard's own reader and checks
that it holds every number of the run's metrics.jsonl (tag split/key, same step,
float32 precision).

    python3 scripts/check_tensorboard.py runs/mqar_bla

Exit 0 when every value is there, 1 when one is missing or differs, 2 on bad
use, 4 when the tensorboard package is not installed (nothing was checked).
"""
import json
import math
import os
import sys


def expected_scalars(run_dir):
    scalars = {}
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            record = json.loads(line)
            split, step = record.get("split"), record.get("step")
            for key, value in record.items():
                if key in ("split", "step") or isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                scalars[(f"{split}/{key}", int(step))] = float(value)
    return scalars


def main(argv):
    if len(argv) != 2 or not os.path.isfile(os.path.join(argv[1], "metrics.jsonl")):
        print("usage: check_tensorboard.py RUN_DIR (a bla-train run folder with metrics.jsonl)", file=sys.stderr)
        return 2
    try:
        from tensorboard.backend.event_processing import event_accumulator
    except ImportError:
        print("tensorboard is not installed: nothing checked")
        return 4
    run_dir = argv[1]
    reader = event_accumulator.EventAccumulator(run_dir, size_guidance={event_accumulator.SCALARS: 0})
    reader.Reload()
    found = {}
    for tag in reader.Tags()["scalars"]:
        for event in reader.Scalars(tag):
            found[(tag, event.step)] = event.value
    wanted = expected_scalars(run_dir)
    bad = []
    for (tag, step), value in sorted(wanted.items()):
        got = found.get((tag, step))
        if got is None or not math.isclose(got, value, rel_tol=1e-6, abs_tol=1e-30):
            bad.append(f"{tag} step {step}: metrics.jsonl {value!r}, TensorBoard {got!r}")
    print(f"{run_dir}: TensorBoard's reader found {len(found)} scalars under {len(reader.Tags()['scalars'])} tags; "
          f"{len(wanted) - len(bad)} of {len(wanted)} metrics.jsonl values match")
    for line in bad[:20]:
        print("  " + line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
