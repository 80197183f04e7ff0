"""The decoding states of the ops that keep more than one tensor (bla_train.ops and bla_train.naive
return and take them alike)."""

from typing import NamedTuple

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
