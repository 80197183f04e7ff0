#!/usr/bin/env python3
"""One Markdown table of the mixer ops' times: bla-bench's JSON lines (ours)
beside the anchor benchmark's results.json (the public kernels, measured in
the same device call by scripts/gpu_op_table.sh), with anchor / ours for
forward and forward+backward (above 1: ours is faster).

    python3 scripts/op_table.py OURS.jsonl [ANCHORS/results.json]

Each of our ops is set against the public kernel that does its job: SWA
against FlexAttention at the same window, full causal attention against
cuDNN SDPA, GLA against FLA's chunk_gla, GSA (64 slots) against FLA's
chunk_gsa, the SSD against mamba_ssm's Triton kernel (one group per head,
N = D; "ssd" is training's dispatch, the kernel's forward with the
LibTorch form's backward, "ssd kernel-bwd" the kernels' three-pass
backward), BLA (64 slots, window 512) against chunk_gsa with 64 slots (the
other bounded softmax-over-slots mixer) and GatedFWA against FlexAttention
SWA (no public GatedFWA kernel).
"""
import json
import math
import os
import sys


def our_key(run):
    op, window, slots = run["op"], run.get("window", 0), run.get("slots", 0)
    if op == "swa":
        return f"swa W{window}"
    if op == "bla":
        return f"bla N{slots} W{window}"
    if op == "gsa":
        return f"gsa N{slots}"
    if op == "gatedfwa":
        return f"gatedfwa W{window}"
    if op == "ssd" and run.get("kernel_backward"):
        return "ssd kernel-bwd"
    return op


ANCHOR_OF = {
    "swa W512": "flex_swa_W512",
    "swa W2048": "flex_swa_W2048",
    "attention": "sdpa_cudnn",
    "gla": "fla_chunk_gla",
    "gsa N64": "fla_chunk_gsa_M64",
    "ssd": "mamba2_ssd_G=H_N=D",
    "ssd kernel-bwd": "mamba2_ssd_G=H_N=D",
    "bla N64 W512": "fla_chunk_gsa_M64",
    "gatedfwa W512": "flex_swa_W512",
}


def read_ours(path):
    rows = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            run = json.loads(line)
            shape = f"B{run['batch']}_T{run['seq']}_H{run['heads']}_D{run['dim']}"
            times = {r["pass"]: r["ms"] for r in run["results"] if r["ms"] is not None}
            impl = run["results"][0]["impl"] if run["results"] else ""
            rows[(our_key(run), shape)] = (impl, times.get("fwd"), times.get("fwd+bwd"))
    return rows


def read_anchors(path):
    if not path or not os.path.isfile(path):
        return {}
    with open(path) as f:
        results = json.load(f)["results"]
    return {(r["op"], r["shape"]): (r.get("fwd_ms"), r.get("fwdbwd_ms")) for r in results if "fwd_ms" in r}


def ms(x):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def ratio(anchor, ours):
    if anchor is None or ours is None or ours <= 0:
        return "-"
    return f"{anchor / ours:.2f}"


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[5], file=sys.stderr)
        return 2
    ours = read_ours(argv[1])
    anchors = read_anchors(argv[2] if len(argv) == 3 else "")
    print("| op | shape | ours (impl) | fwd ms | fwd+bwd ms | anchor | fwd ms | fwd+bwd ms | anchor/ours fwd | "
          "anchor/ours fwd+bwd |")
    print("| --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    for (key, shape), (impl, fwd, fb) in sorted(ours.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        anchor = ANCHOR_OF.get(key, "")
        a_fwd, a_fb = anchors.get((anchor, shape), (None, None))
        print(f"| {key} | {shape} | {impl} | {ms(fwd)} | {ms(fb)} | {anchor or '-'} | {ms(a_fwd)} | {ms(a_fb)} | "
              f"{ratio(a_fwd, fwd)} | {ratio(a_fb, fb)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
