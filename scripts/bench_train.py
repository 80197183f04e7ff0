#!/usr/bin/env python3
"""Training throughput of bla-train beside the plain-PyTorch anchor, in one call
(docs/performance.md). For each config: one bla-train run per variant, every
part of the fast step on ("all"), then each part turned off in turn, and the
anchor (`lm_baseline.py`, eager and torch.compile) with the same model shape.
Prints a table (steps/s, tokens/s, MFU from 6 x parameters per token against a
989 TFLOP/s bf16 peak, peak memory) and writes every number to --json.

usage: bench_train.py [--build build] [--anchors DIR] [--variants all,no_graph,...]
                      [--json out.json] CONFIG [CONFIG ...]

Variants (bla-train --set overrides or environment):
  all          every part on (the defaults)
  no_graph     train.cuda_graph=off
  no_fused_opt train.fused_optimizer=off (implies no graph)
  no_fused_head train.fused_head=off
  fused_head   train.fused_head=on (the LM head fused whatever the size)
  no_prefetch  train.prefetch=0
  no_kernels   BLA_KERNELS=0 (mixer and model kernels)
  sync         BLA_SYNC_EVERY_STEP=1 (the host reads the step's numbers every step)
  baseline     all of the above off: the step as it was before these parts
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

VARIANTS = {
    "all": ([], {}),
    "no_graph": (["train.cuda_graph=off"], {}),
    "no_fused_opt": (["train.fused_optimizer=off", "train.cuda_graph=off"], {}),
    "no_fused_head": (["train.fused_head=off"], {}),
    "fused_head": (["train.fused_head=on"], {}),
    "no_prefetch": (["train.prefetch=0"], {}),
    "no_kernels": ([], {"BLA_KERNELS": "0"}),
    "sync": (["train.cuda_graph=off"], {"BLA_SYNC_EVERY_STEP": "1"}),
    "baseline": (["train.cuda_graph=off", "train.fused_optimizer=off", "train.fused_head=off", "train.prefetch=0"],
                 {"BLA_SYNC_EVERY_STEP": "1", "BLA_MODEL_KERNELS": "0"}),
}
PEAK_TFLOPS = 989.0


def steady_rate(run_dir):
    rows = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))]
    rows = [r for r in rows if r.get("split") == "train"]
    if len(rows) < 3:
        raise SystemExit(f"{run_dir}: needs at least three logged train steps")
    rows = rows[1:]  # the first interval holds warm-up and the graph capture
    seconds = sum(r["log_interval_s"] for r in rows[1:])
    tokens = rows[-1]["tokens"] - rows[0]["tokens"]
    steps = tokens / (rows[-1]["tokens"] / rows[-1]["step"])
    return tokens / seconds, steps / seconds, rows[-1]["loss"]


def run_ours(build, config, variant, extra_sets):
    sets, env = VARIANTS[variant]
    out = tempfile.mkdtemp(prefix="bench-")
    cmd = [os.path.join(build, "src", "bla-train"), config, "--out", out]
    for s in sets + extra_sets:
        cmd += ["--set", s]
    full_env = dict(os.environ, **env)
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=full_env)
    if proc.returncode != 0:
        return {"variant": variant, "error": (proc.stdout + proc.stderr)[-2000:]}
    summary = json.load(open(os.path.join(out, "summary.json")))
    tok, steps, loss = steady_rate(out)
    params = summary["parameters"]
    return {"variant": variant, "tokens_per_s": round(tok), "steps_per_s": round(steps, 2),
            "mfu": round(6 * params * tok / (PEAK_TFLOPS * 1e12), 4), "params": params,
            "peak_mem_gib": round(summary.get("peak_memory_bytes", 0) / 2**30, 2), "loss_last": loss,
            "step": summary.get("step"), "log_tail": proc.stdout.splitlines()[-3:]}


def run_anchor(anchors, args, compile_):
    cmd = [sys.executable, os.path.join(anchors, "lm_baseline.py"), "attention"] + args
    if compile_:
        cmd.append("--compile")
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        return {"variant": "anchor_compile" if compile_ else "anchor_eager", "error": proc.stderr[-2000:]}
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r["variant"] = "anchor_compile" if compile_ else "anchor_eager"
    r["mfu"] = round(6 * r["params"] * r["tokens_per_s"] / (PEAK_TFLOPS * 1e12), 4)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("configs", nargs="+", help="CONFIG[:anchor args, comma-separated][:--set items, comma-separated]")
    ap.add_argument("--build", default="build")
    ap.add_argument("--anchors", default="")
    ap.add_argument("--variants", default="all,no_graph,no_fused_head,no_fused_opt,sync,baseline")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    results = []
    for spec in a.configs:
        parts = spec.split(":")
        config = parts[0]
        anchor_args = parts[1].split(",") if len(parts) > 1 and parts[1] else []
        sets = parts[2].split(",") if len(parts) > 2 and parts[2] else []
        rows = [run_ours(a.build, config, v, sets) for v in a.variants.split(",")]
        if a.anchors and anchor_args != ["none"]:
            rows += [run_anchor(a.anchors, anchor_args, False), run_anchor(a.anchors, anchor_args, True)]
        for r in rows:
            r["config"] = config + (" " + " ".join(sets) if sets else "")
        results += rows
        print(f"\n{config} {' '.join(sets)}")
        print(f"{'variant':16s} {'steps/s':>9s} {'tokens/s':>11s} {'MFU':>6s} {'peak GiB':>9s}  note")
        for r in rows:
            if "error" in r:
                print(f"{r['variant']:16s} error: {r['error'].strip().splitlines()[-1] if r['error'].strip() else '?'}")
                continue
            note = r.get("step") or ""
            print(f"{r['variant']:16s} {r['steps_per_s']:9.2f} {r['tokens_per_s']:11,d} {r['mfu']:6.1%} "
                  f"{r.get('peak_mem_gib', 0):9.2f}  {note}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
