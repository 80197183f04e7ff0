"""Every mixer op in plain PyTorch: the forms the layers fall back to where torch.ops.bla is not loaded.

Each function has the signature of its namesake in bla_train.ops and returns
the same state types, so a layer runs on either (bla_train.forms picks). The
forward of a recurrent op is its decode step applied token by token, as the
op's definition reads (docs/bla.md, docs/mixers.md); softmax attention is the
masked (T, T) softmax. Slow, O(T) Python steps, but exact to rounding and
needing nothing but torch: a Hugging Face export loads and runs anywhere.
Chunk and sub-chunk arguments are accepted and ignored: they change how the
fast forms compute, not what.
"""

import math
import sys
from typing import Optional, Tuple

import torch
from torch import Tensor

from .states import (BlaState, GatedWindowState, GsaState, bla_initial_state, gated_window_initial_state,  # noqa: F401
                     gla_initial_state, gsa_initial_state, ssd_initial_state)


def _scale(scale: float, dim: int) -> float:
    return scale if scale > 0 else 1.0 / math.sqrt(dim)


# --------------------------------------------------------------------------- BLA


def _dirichlet(n: int, u: float) -> float:
    """P_N(u), the Dirichlet kernel of the N lowest frequencies (docs/bla.md, "The interpolation kernel")."""
    highest = (n - 1) // 2 if n % 2 else n // 2 - 1
    total = 1.0 + sum(2.0 * math.cos(2.0 * math.pi * m * u / n) for m in range(1, highest + 1))
    if n % 2 == 0:
        total += math.cos(math.pi * u)
    return total / n


_TRANSITIONS = {}


def slot_transition(window: int, slots: int) -> Tuple[Tensor, Tensor]:
    """A = Shift (I - p g^T) and b = e_0 / r, float64 (docs/bla.md, "One step of the slot memory")."""
    key = (window, slots)
    if key not in _TRANSITIONS:
        n, r = slots, window / slots
        delta = 1.0 / r
        read = torch.tensor([_dirichlet(n, n - delta - j) for j in range(n)], dtype=torch.float64)
        write = torch.tensor([_dirichlet(n, j - n + delta) / r for j in range(n)], dtype=torch.float64)
        shift = torch.tensor([[_dirichlet(n, j - l - delta) for l in range(n)] for j in range(n)], dtype=torch.float64)
        A = shift @ (torch.eye(n, dtype=torch.float64) - torch.outer(write, read))
        b = torch.zeros(n, dtype=torch.float64)
        b[0] = 1.0 / r
        _TRANSITIONS[key] = (A, b)
    return _TRANSITIONS[key]


def bla_decode_step(q: Tensor, k: Tensor, v: Tensor, state: BlaState, window: int, slots: int, chunk: int = 64,
                    scale: float = 0.0) -> Tuple[Tensor, BlaState]:
    """S <- A S + b x^T for keys and values; softmax over the slots not older than the sequence."""
    A, b = (t.to(q.dtype).to(q.device) for t in slot_transition(window, slots))
    keys = A @ state.keys + b[:, None] * k[:, :, None, :]
    values = A @ state.values + b[:, None] * v[:, :, None, :]
    scores = (keys @ q[..., None]).squeeze(-1) * _scale(scale, q.shape[-1])  # (B, H, N)
    too_old = torch.arange(slots, device=q.device) * window > state.position * slots
    weights = scores.masked_fill(too_old, float("-inf")).softmax(-1)
    return (weights[..., None, :] @ values).squeeze(-2), BlaState(keys, values, state.position + 1)


def blurry_window_attention(q: Tensor, k: Tensor, v: Tensor, window: int, slots: int, chunk: int = 64,
                            scale: float = 0.0) -> Tensor:
    B, T, H, Dk = q.shape
    state = bla_initial_state(B, H, Dk, v.shape[-1], slots, q.dtype, q.device)
    out = []
    for t in range(T):
        o, state = bla_decode_step(q[:, t], k[:, t], v[:, t], state, window, slots, chunk, scale)
        out.append(o)
    return torch.stack(out, 1)

# ---------------------------------------------------------- attention and SWA


def sliding_window_attention(q: Tensor, k: Tensor, v: Tensor, window: int = 0, scale: float = 0.0,
                             bias: Optional[Tensor] = None) -> Tensor:
    """Causal softmax over keys t-window < s <= t (window 0: all); bias (B, T, H) adds bias[t] - bias[s]."""
    T = q.shape[1]
    logits = torch.einsum("bthd,bshd->bhts", q, k) * _scale(scale, q.shape[-1])
    if bias is not None:
        b = bias.permute(0, 2, 1).to(logits.dtype)
        logits = logits + b[..., :, None] - b[..., None, :]
    t = torch.arange(T, device=q.device)[:, None]
    s = torch.arange(T, device=q.device)[None, :]
    hidden = (s > t) | ((s <= t - window) if window > 0 else torch.zeros_like(s > t))
    weights = logits.masked_fill(hidden, float("-inf")).softmax(-1)
    return torch.einsum("bhts,bshd->bthd", weights, v)

# --------------------------------------------------------------------------- GLA


def gla_decode_step(q: Tensor, k: Tensor, v: Tensor, g: Tensor, state: Tensor,
                    scale: float = 0.0) -> Tuple[Tensor, Tensor]:
    """S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T, o_t = scale S_t^T q_t."""
    sd = state.dtype
    S = g.to(sd).exp()[..., None] * state + k.to(sd)[..., :, None] * v.to(sd)[..., None, :]
    o = _scale(scale, q.shape[-1]) * (q.to(sd)[..., None, :] @ S).squeeze(-2)
    return o.to(q.dtype), S


def gated_linear_attention(q: Tensor, k: Tensor, v: Tensor, g: Tensor, chunk: int = 64, scale: float = 0.0,
                           subchunk: int = 16) -> Tensor:
    B, T, H, Dk = q.shape
    S = gla_initial_state(B, H, Dk, v.shape[-1], q.dtype, q.device)
    out = []
    for t in range(T):
        o, S = gla_decode_step(q[:, t], k[:, t], v[:, t], g[:, t], S, scale)
        out.append(o)
    return torch.stack(out, 1)

# --------------------------------------------------------------------------- GSA


def gsa_decode_step(q: Tensor, k: Tensor, v: Tensor, f: Tensor, state: GsaState,
                    scale: float = 1.0) -> Tuple[Tensor, GsaState]:
    """K~ = diag(a) K~ + (1 - a) k^T (V~ alike), a = exp(f); o = V~^T softmax(scale K~ q)."""
    sd = state.keys.dtype
    alpha = f.to(sd).exp()[..., None]  # (B, H, m, 1)
    keys = alpha * state.keys + (1 - alpha) * k.to(sd)[..., None, :]
    values = alpha * state.values + (1 - alpha) * v.to(sd)[..., None, :]
    weights = (scale * (keys @ q.to(sd)[..., None]).squeeze(-1)).softmax(-1)
    return (weights[..., None, :] @ values).squeeze(-2).to(q.dtype), GsaState(keys, values)


def gated_slot_attention(q: Tensor, k: Tensor, v: Tensor, f: Tensor, chunk: int = 64, scale: float = 1.0,
                         subchunk: int = 16) -> Tensor:
    B, T, H, Dk = q.shape
    state = gsa_initial_state(B, H, f.shape[-1], Dk, v.shape[-1], q.dtype, q.device)
    out = []
    for t in range(T):
        o, state = gsa_decode_step(q[:, t], k[:, t], v[:, t], f[:, t], state, scale)
        out.append(o)
    return torch.stack(out, 1)

# --------------------------------------------------------------------------- SSD


def ssd_decode_step(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor],
                    state: Tensor) -> Tuple[Tensor, Tensor]:
    """h = exp(dt A) h + dt B x^T, y = C^T h + D x; x (B, H, P), dt (B, H), B, C (B, G, N); head h reads
    group h // (H / G)."""
    H, G = x.shape[1], B.shape[1]
    group = torch.arange(H, device=x.device) // (H // G)
    decay = (dt * A).exp()[..., None, None]
    h = decay * state + dt[..., None, None] * B[:, group, :, None] * x[:, :, None, :]
    y = (C[:, group, None, :] @ h).squeeze(-2)
    if D is not None:
        y = y + D[:, None] * x
    return y, h


def selective_state_space(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor] = None,
                          chunk: int = 64) -> Tensor:
    Bsz, T, H, P = x.shape
    h = ssd_initial_state(Bsz, H, B.shape[-1], P, x.dtype, x.device)
    out = []
    for t in range(T):
        y, h = ssd_decode_step(x[:, t], dt[:, t], A, B[:, t], C[:, t], D, h)
        out.append(y)
    return torch.stack(out, 1)

# ------------------------------------------------------------ gated window


def gated_window_attention(q: Tensor, k: Tensor, v: Tensor, log_gate: Tensor, window: int, scale: float = 0.0,
                           block: int = 64) -> Tensor:
    """Window softmax with logits + G_t - G_s, G = cumsum(log_gate) (B, T, H)."""
    return sliding_window_attention(q, k, v, window, scale, log_gate.cumsum(1))


def gated_window_decode_step(q: Tensor, k: Tensor, v: Tensor, log_gate: Tensor, state: GatedWindowState, window: int,
                             scale: float = 0.0) -> Tuple[Tensor, GatedWindowState]:
    """Ring slot t % W takes token t; every held key's gate sum gains this token's gate, the new one starts at 0."""
    slot = state.position % window
    gate_sums = state.gate_sums + log_gate.to(state.gate_sums.dtype)[:, None, :]
    gate_sums[:, slot] = 0
    keys, values = state.keys.clone(), state.values.clone()
    keys[:, slot] = k
    values[:, slot] = v
    logits = (keys * q[:, None]).sum(-1).to(gate_sums.dtype) * _scale(scale, q.shape[-1]) + gate_sums  # (B, W, H)
    filled = min(state.position + 1, window)
    if filled < window:
        logits[:, filled:] = float("-inf")
    p = logits.softmax(1).to(values.dtype)
    out = (p[..., None] * values).sum(1).to(v.dtype)
    return out, GatedWindowState(keys, values, gate_sums, state.position + 1)


FORMS = sys.modules[__name__]  # this module, for bla_train.forms to pick
