"""Typed wrappers of torch.ops.bla.* (registered by libbla_torch_ops.so).

Sequences are (batch, seq, heads, dim) tensors; a decode step takes one token,
(batch, heads, dim), and a state, and returns the output and the next state
(the given state is left as it was). `scale <= 0` means 1/sqrt(key dim). Every
op is differentiable: its kernel is built from autograd-tracked LibTorch ops,
the chunked LibTorch form on the CPU and, in a CUDA build, the CUDA kernels
where they exist (BLA and SWA). The `*_reference` ops are the C++ token-by-token
recurrences, the yardsticks of the fast forms.
"""

import sys
from typing import Optional, Tuple

import torch
from torch import Tensor

from .states import (BlaState, GatedWindowState, GsaState, bla_initial_state, gated_window_initial_state,  # noqa: F401
                     gla_initial_state, gsa_initial_state, ssd_initial_state)

_ops = torch.ops.bla

# --------------------------------------------------------------------------- BLA


def blurry_window_attention(q: Tensor, k: Tensor, v: Tensor, window: int, slots: int, chunk: int = 64,
                            scale: float = 0.0) -> Tensor:
    """BLA: softmax over `slots` slots holding a blurred copy of the last `window` tokens."""
    return _ops.blurry_window_attention(q, k, v, window, slots, chunk, scale)


def blurry_window_attention_chunked(q: Tensor, k: Tensor, v: Tensor, window: int, slots: int, chunk: int = 64,
                                    scale: float = 0.0) -> Tensor:
    """The LibTorch chunked form only, never a CUDA kernel."""
    return _ops.blurry_window_attention_chunked(q, k, v, window, slots, chunk, scale)


def blurry_window_attention_reference(q: Tensor, k: Tensor, v: Tensor, window: int, slots: int, chunk: int = 64,
                                      scale: float = 0.0) -> Tensor:
    return _ops.blurry_window_attention_reference(q, k, v, window, slots, chunk, scale)


def blurry_window_attention_with_state(q: Tensor, k: Tensor, v: Tensor, state: Optional[BlaState], window: int,
                                       slots: int, chunk: int = 64, scale: float = 0.0) -> Tuple[Tensor, BlaState]:
    """The chunked form continuing from `state` (None: empty slots): a prefill."""
    keys, values, position = state if state is not None else (None, None, 0)
    out, keys, values = _ops.blurry_window_attention_with_state(q, k, v, keys, values, position, window, slots, chunk,
                                                                scale)
    return out, BlaState(keys, values, position + q.shape[1])


def bla_decode_step(q: Tensor, k: Tensor, v: Tensor, state: BlaState, window: int, slots: int, chunk: int = 64,
                    scale: float = 0.0) -> Tuple[Tensor, BlaState]:
    out, keys, values = _ops.bla_decode_step(q, k, v, state.keys, state.values, state.position, window, slots, chunk,
                                             scale)
    return out, BlaState(keys, values, state.position + 1)

# ---------------------------------------------------------- attention and SWA


def sliding_window_attention(q: Tensor, k: Tensor, v: Tensor, window: int = 0, scale: float = 0.0,
                             bias: Optional[Tensor] = None) -> Tensor:
    """Causal softmax attention over keys t-window < s <= t (window 0: all of them); `bias`
    (B, T, H) adds bias[t] - bias[s] to the logits."""
    return _ops.sliding_window_attention(q, k, v, window, scale, bias)


def sliding_window_attention_reference(q: Tensor, k: Tensor, v: Tensor, window: int = 0, scale: float = 0.0,
                                       bias: Optional[Tensor] = None) -> Tensor:
    return _ops.sliding_window_attention_reference(q, k, v, window, scale, bias)

# --------------------------------------------------------------------------- GLA


def gated_linear_attention(q: Tensor, k: Tensor, v: Tensor, g: Tensor, chunk: int = 64, scale: float = 0.0,
                           subchunk: int = 16) -> Tensor:
    """GLA: S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T, o_t = scale S_t^T q_t; g <= 0 (B, T, H, Dk)."""
    return _ops.gated_linear_attention(q, k, v, g, chunk, scale, subchunk)


def gated_linear_attention_reference(q: Tensor, k: Tensor, v: Tensor, g: Tensor, scale: float = 0.0) -> Tensor:
    return _ops.gated_linear_attention_reference(q, k, v, g, scale)


def gated_linear_attention_with_state(q: Tensor, k: Tensor, v: Tensor, g: Tensor, state: Tensor, chunk: int = 64,
                                      scale: float = 0.0, subchunk: int = 16) -> Tuple[Tensor, Tensor]:
    return tuple(_ops.gated_linear_attention_with_state(q, k, v, g, state, chunk, scale, subchunk))


def gla_decode_step(q: Tensor, k: Tensor, v: Tensor, g: Tensor, state: Tensor,
                    scale: float = 0.0) -> Tuple[Tensor, Tensor]:
    return tuple(_ops.gla_decode_step(q, k, v, g, state, scale))

# --------------------------------------------------------------------------- GSA


def gated_slot_attention(q: Tensor, k: Tensor, v: Tensor, f: Tensor, chunk: int = 64, scale: float = 1.0,
                         subchunk: int = 16) -> Tensor:
    """GSA over m slots with log forget gates f <= 0 (B, T, H, m)."""
    return _ops.gated_slot_attention(q, k, v, f, chunk, scale, subchunk)


def gated_slot_attention_reference(q: Tensor, k: Tensor, v: Tensor, f: Tensor, scale: float = 1.0) -> Tensor:
    return _ops.gated_slot_attention_reference(q, k, v, f, scale)


def gated_slot_attention_with_state(q: Tensor, k: Tensor, v: Tensor, f: Tensor, state: GsaState, chunk: int = 64,
                                    scale: float = 1.0, subchunk: int = 16) -> Tuple[Tensor, GsaState]:
    out, keys, values = _ops.gated_slot_attention_with_state(q, k, v, f, state.keys, state.values, chunk, scale,
                                                             subchunk)
    return out, GsaState(keys, values)


def gsa_decode_step(q: Tensor, k: Tensor, v: Tensor, f: Tensor, state: GsaState,
                    scale: float = 1.0) -> Tuple[Tensor, GsaState]:
    out, keys, values = _ops.gsa_decode_step(q, k, v, f, state.keys, state.values, scale)
    return out, GsaState(keys, values)

# --------------------------------------------------------------------------- SSD


def selective_state_space(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor] = None,
                          chunk: int = 64) -> Tensor:
    """Mamba2's SSD: h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t^T, y_t = C_t^T h_t + D x_t.
    x (B, T, H, P); dt (B, T, H) > 0; A (H) < 0; B, C (B, T, G, N); D (H) or None."""
    return _ops.selective_state_space(x, dt, A, B, C, D, chunk)


def selective_state_space_reference(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor,
                                    D: Optional[Tensor] = None) -> Tensor:
    return _ops.selective_state_space_reference(x, dt, A, B, C, D)


def selective_state_space_with_state(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor],
                                     state: Tensor, chunk: int = 64) -> Tuple[Tensor, Tensor]:
    return tuple(_ops.selective_state_space_with_state(x, dt, A, B, C, D, state, chunk))


def ssd_decode_step(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor],
                    state: Tensor) -> Tuple[Tensor, Tensor]:
    """x (B, H, P), dt (B, H), B, C (B, G, N)."""
    return tuple(_ops.ssd_decode_step(x, dt, A, B, C, D, state))

# ------------------------------------------------------------ gated window


def gated_window_attention(q: Tensor, k: Tensor, v: Tensor, log_gate: Tensor, window: int, scale: float = 0.0,
                           block: int = 64) -> Tensor:
    """GatedFWA's core: window softmax attention with logits + (G_t - G_s), G = cumsum(log_gate), log_gate (B, T, H) <= 0."""
    return _ops.gated_window_attention(q, k, v, log_gate, window, scale, block)


def gated_window_attention_reference(q: Tensor, k: Tensor, v: Tensor, log_gate: Tensor, window: int,
                                     scale: float = 0.0) -> Tensor:
    return _ops.gated_window_attention_reference(q, k, v, log_gate, window, scale)


def gated_window_decode_step(q: Tensor, k: Tensor, v: Tensor, log_gate: Tensor, state: GatedWindowState, window: int,
                             scale: float = 0.0) -> Tuple[Tensor, GatedWindowState]:
    """q, k (B, H, Dk), v (B, H, Dv), log_gate (B, H)."""
    out, keys, values, gate_sums = _ops.gated_window_decode_step(q, k, v, log_gate, state.keys, state.values,
                                                                 state.gate_sums, state.position, window, scale)
    return out, GatedWindowState(keys, values, gate_sums, state.position + 1)


FORMS = sys.modules[__name__]  # this module, for bla_train.forms to pick
