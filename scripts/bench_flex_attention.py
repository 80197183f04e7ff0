#!/usr/bin/env python3
"""Reference timings for bla-bench: PyTorch FlexAttention (sliding window) and
SDPA (full causal, cuDNN where available), on the GPU machine.

Same conventions as bla-bench: (B, T, H, D) shapes, bf16 by default, CUDA
events after warm-up, the median over --reps repetitions cycling through
--sets random input sets, FLOPs counted over visible (query, key) pairs
(4*D per pair forward, 3.5x that for forward+backward).

    python3 scripts/bench_flex_attention.py --window 512 2048 0 --json out.json

window 0 times SDPA's causal attention instead of FlexAttention.
"""
import argparse
import json
import statistics
import sys

import torch


def median_ms(fn, sets, warmup, reps):
    for i in range(warmup):
        fn(i % sets)
    torch.cuda.synchronize()
    times = []
    for r in range(reps):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        fn(r % sets)
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def visible_pairs(seq, window):
    if window <= 0 or window >= seq:
        return seq * (seq + 1) / 2
    return window * (window + 1) / 2 + (seq - window) * window


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=8192)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--window", type=int, nargs="+", default=[512, 2048, 0])
    ap.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--sets", type=int, default=4)
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("bench_flex_attention: CUDA is unavailable", file=sys.stderr)
        return 2

    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    B, T, H, D = args.batch, args.seq, args.heads, args.dim
    scale = D ** -0.5
    torch.manual_seed(0)
    # (B, H, T, D) views of (B, T, H, D) storage, as the C++ side lays them out.
    sets = []
    for _ in range(args.sets):
        q, k, v, g = (torch.randn(B, T, H, D, device="cuda", dtype=dtype).transpose(1, 2) for _ in range(4))
        sets.append((q, k, v, g))
    flex = torch.compile(flex_attention, dynamic=False)
    elt = 2 if dtype == torch.bfloat16 else 4
    tensor_bytes = B * T * H * D * elt
    rows = []
    device = torch.cuda.get_device_name()

    for window in args.window:
        causal = window <= 0 or window >= T
        fwd_flops = 4.0 * D * visible_pairs(T, window) * B * H
        if causal:
            name = "sdpa-cudnn"

            def op(q, k, v):
                return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)

            def run(fn):
                try:
                    with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
                        return fn()
                except RuntimeError:
                    return fn()
        else:
            name = "flex"
            w = window

            def band(b, h, q_idx, kv_idx):
                return (q_idx >= kv_idx) & (q_idx - kv_idx < w)

            block_mask = create_block_mask(band, None, None, T, T, device="cuda")

            def op(q, k, v, block_mask=block_mask):
                return flex(q, k, v, block_mask=block_mask, scale=scale)

            def run(fn):
                return fn()

        def fwd(i):
            q, k, v, _ = sets[i]
            with torch.no_grad():
                op(q, k, v)

        leaves = [tuple(t.detach().requires_grad_(True) for t in s[:3]) for s in sets]

        def fwdbwd(i):
            q, k, v = leaves[i]
            out = op(q, k, v)
            torch.autograd.grad(out, (q, k, v), sets[i][3])

        for pass_name, fn, flops, nbytes in (("fwd", fwd, fwd_flops, 4 * tensor_bytes),
                                             ("fwd+bwd", fwdbwd, 3.5 * fwd_flops, 12 * tensor_bytes)):
            ms = run(lambda: median_ms(fn, args.sets, args.warmup, args.reps))
            rows.append(dict(impl=name, window=window, pass_=pass_name, ms=ms, tflops=flops / (ms * 1e9),
                             gbps=nbytes / (ms * 1e6)))

    print(f"bench_flex_attention: B={B} T={T} H={H} D={D} {args.dtype} on {device}, torch {torch.__version__}")
    print(f"{'impl':12s} {'window':>6s} {'pass':8s} {'ms':>9s} {'TFLOP/s':>9s} {'GB/s':>8s}")
    for r in rows:
        print(f"{r['impl']:12s} {r['window']:6d} {r['pass_']:8s} {r['ms']:9.3f} {r['tflops']:9.1f} {r['gbps']:8.0f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(device=device, torch=torch.__version__, batch=B, seq=T, heads=H, dim=D, dtype=args.dtype,
                           results=[{("pass" if k == "pass_" else k): v for k, v in r.items()} for r in rows]), f,
                      indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
