#!/usr/bin/env python3
"""Aggregate training throughput of E models of one config on one GPU, three
ways, in one call (docs/performance.md, "Ensembles"):

  ensemble     one bla-train process training the E members as one batched
               model (run.seed: [0, ..., E-1])
  separate     E bla-train processes side by side, each with the default
               (graph-captured) step
  separate_old E processes side by side with every part of the fast step off
               (no graph, unfused optimizer and head, no prefetch, a host
               sync every step, no model kernels): the step before the
               training-step work
  solo         one process alone, the default step
  one_model    one model trained on the E members' tokens together
               (train.batch_size x E): what the GPU gives this much work
               in one model, the ceiling for the ensemble

The aggregate is the sum over runs of steps/s measured between log lines
after the first (warm-up and capture excluded). Prints a table and writes
every number to --json.

usage: bench_ensemble.py [--build build] [--members 16] [--modes ensemble,separate,solo]
                         [--json out.json] CONFIG [--set k=v ...]
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

OLD_STEP = (["train.cuda_graph=off", "train.fused_optimizer=off", "train.fused_head=off", "train.prefetch=0"],
            {"BLA_SYNC_EVERY_STEP": "1", "BLA_MODEL_KERNELS": "0"})


def steady_steps_per_s(run_dir):
    rows = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))]
    rows = [r for r in rows if r.get("split") == "train"][1:]  # the first interval holds warm-up and capture
    if len(rows) < 2:
        raise SystemExit(f"{run_dir}: needs at least three logged train steps")
    seconds = sum(r["log_interval_s"] for r in rows[1:])
    return (rows[-1]["step"] - rows[0]["step"]) / seconds, rows[-1]["loss"]


def start(build, config, out, sets, env):
    cmd = [os.path.join(build, "src", "bla-train"), config, "--out", out]
    for s in sets:
        cmd += ["--set", s]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                            env=dict(os.environ, **env))


def finish(procs):
    errors = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            errors.append(out[-1500:])
    return errors


def run_mode(mode, build, config, members, sets):
    root = tempfile.mkdtemp(prefix=f"bench-{mode}-")
    began = time.time()
    if mode == "ensemble":
        seeds = "[" + ", ".join(str(s) for s in range(members)) + "]"
        errors = finish([start(build, config, root, sets + [f"run.seed={seeds}"], {})])
        dirs = [os.path.join(root, f"seed-{s}") for s in range(members)]
    elif mode == "one_model":
        batch = int(next((s.split("=", 1)[1] for s in sets if s.startswith("train.batch_size=")), "256"))
        errors = finish([start(build, config, root, sets + [f"train.batch_size={batch * members}"], {})])
        dirs = [root]
    else:
        count = 1 if mode == "solo" else members
        extra, env = OLD_STEP if mode == "separate_old" else ([], {})
        dirs = [os.path.join(root, f"run-{i}") for i in range(count)]
        errors = finish([start(build, config, d, sets + extra + [f"run.seed={i}"], env) for i, d in enumerate(dirs)])
    wall = time.time() - began
    if errors:
        return {"mode": mode, "error": errors[0]}
    rates = [steady_steps_per_s(d) for d in dirs]
    if mode == "one_model":  # its step holds the tokens of E members' steps
        rates = [(r * members, l) for r, l in rates]
    summary = json.load(open(os.path.join(dirs[0], "summary.json")))
    return {"mode": mode, "runs": len(dirs), "aggregate_steps_per_s": round(sum(r for r, _ in rates), 2),
            "steps_per_s_each": [round(r, 2) for r, _ in rates], "last_losses": [round(l, 4) for _, l in rates],
            "wall_s": round(wall, 1), "peak_mem_gib": round(summary.get("peak_memory_bytes", 0) / 2**30, 2),
            "step": summary.get("step")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--build", default="build")
    ap.add_argument("--members", type=int, default=16)
    ap.add_argument("--modes", default="ensemble,separate,separate_old,solo,one_model")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    rows = []
    print(f"{a.config} {' '.join(a.sets)}, {a.members} models")
    print(f"{'mode':14s} {'runs':>5s} {'agg steps/s':>12s} {'wall s':>8s} {'peak GiB':>9s}  step")
    for mode in a.modes.split(","):
        r = run_mode(mode, a.build, a.config, a.members, a.sets)
        r["config"] = a.config + (" " + " ".join(a.sets) if a.sets else "")
        rows.append(r)
        if "error" in r:
            print(f"{mode:14s} error: {r['error'].strip().splitlines()[-1] if r['error'].strip() else '?'}", flush=True)
            continue
        print(f"{mode:14s} {r['runs']:5d} {r['aggregate_steps_per_s']:12.2f} {r['wall_s']:8.1f} {r['peak_mem_gib']:9.2f}"
              f"  {r['step']}", flush=True)
    by = {r["mode"]: r for r in rows if "error" not in r}
    if "ensemble" in by:
        for other in ("separate", "separate_old", "solo", "one_model"):
            if other in by:
                print(f"ensemble / {other}: {by['ensemble']['aggregate_steps_per_s'] / by[other]['aggregate_steps_per_s']:.2f}x")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
