"""The decoding states of the ops (bla_train.ops and bla_train.naive return and take them alike), and
the empty state of each."""

from typing import NamedTuple, Optional

import torch
from torch import Tensor


class BlaState(NamedTuple):
    """N slots of keys (B, H, N, Dk) and values (B, H, N, Dv); tokens seen."""
    keys: Tensor
    values: Tensor
    position: int = 0


class GsaState(NamedTuple):
    """The m slots' keys (B, H, m, Dk) and values (B, H, m, Dv)."""
    keys: Tensor
    values: Tensor


class GatedWindowState(NamedTuple):
    """Rings of the last W tokens: keys (B, W, H, Dk), values (B, W, H, Dv), and per slot the log
    decay collected since it was written, gate_sums (B, W, H); slot t % W holds token t."""
    keys: Tensor
    values: Tensor
    gate_sums: Tensor
    position: int = 0


def _state_dtype(dtype: torch.dtype) -> torch.dtype:
    """GLA and GSA keep half and bfloat16 states in float32 (src/bla/ops/gla/decode.cpp, gsa/decode.cpp)."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def bla_initial_state(batch: int, heads: int, dk: int, dv: int, slots: int, dtype: torch.dtype = torch.float32,
                      device: Optional[torch.device] = None) -> BlaState:
    """Empty slots at position 0."""
    return BlaState(torch.zeros(batch, heads, slots, dk, dtype=dtype, device=device),
                    torch.zeros(batch, heads, slots, dv, dtype=dtype, device=device), 0)


def gla_initial_state(batch: int, heads: int, dk: int, dv: int, dtype: torch.dtype = torch.float32,
                      device: Optional[torch.device] = None) -> Tensor:
    """S = 0, (B, H, Dk, Dv)."""
    return torch.zeros(batch, heads, dk, dv, dtype=_state_dtype(dtype), device=device)


def gsa_initial_state(batch: int, heads: int, slots: int, dk: int, dv: int, dtype: torch.dtype = torch.float32,
                      device: Optional[torch.device] = None) -> GsaState:
    dtype = _state_dtype(dtype)
    return GsaState(torch.zeros(batch, heads, slots, dk, dtype=dtype, device=device),
                    torch.zeros(batch, heads, slots, dv, dtype=dtype, device=device))


def ssd_initial_state(batch: int, heads: int, d_state: int, head_dim: int, dtype: torch.dtype = torch.float32,
                      device: Optional[torch.device] = None) -> Tensor:
    """h = 0, (B, H, N, P)."""
    return torch.zeros(batch, heads, d_state, head_dim, dtype=dtype, device=device)


def gated_window_initial_state(batch: int, heads: int, dk: int, dv: int, window: int,
                               dtype: torch.dtype = torch.float32,
                               device: Optional[torch.device] = None) -> GatedWindowState:
    gate_dtype = torch.promote_types(dtype, torch.float32)
    return GatedWindowState(torch.zeros(batch, window, heads, dk, dtype=dtype, device=device),
                            torch.zeros(batch, window, heads, dv, dtype=dtype, device=device),
                            torch.zeros(batch, window, heads, dtype=gate_dtype, device=device), 0)
