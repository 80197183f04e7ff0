"""nn.Module mixer layers over torch.ops.bla, mirroring src/bla/mixers/*/*_layer.cpp.

Parameter names and shapes are the C++ layers' (q_proj.weight, ...), so the
weights of one mixer from bla-export's model.safetensors, the keys under
`blocks.<i>.mixer.`, load with load_state_dict. Each layer maps x (B, T, d_model)
to (B, T, d_model); the math lives in the ops, the layers hold projections,
gates and norms, as in C++. The ops are torch.ops.bla's (bla_train.ops) where
the library is loaded, else their plain PyTorch forms (bla_train.naive;
bla_train.forms picks). Every layer also decodes: `initial_state(batch, dtype,
device)` gives the empty state of `batch` sequences and `step(x, state)` maps
one token x (B, d_model) to (output (B, d_model), next state), as the C++
layers' step (the state it was given is left as it was).
"""

import math
from typing import List, NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .forms import current as _ops
from .states import BlaState, GatedWindowState, GsaState

_NORM_EPS = 1e-5


def _projection(d_in: int, d_out: int, std: float = 0.02) -> nn.Linear:
    """A bias-free linear layer initialised N(0, std), like make_projection (common/heads.cpp)."""
    linear = nn.Linear(d_in, d_out, bias=False)
    nn.init.normal_(linear.weight, 0.0, std)
    return linear


def _split_heads(x: Tensor, heads: int) -> Tensor:
    return x.reshape(*x.shape[:-1], heads, x.shape[-1] // heads)


def _merge_heads(x: Tensor) -> Tensor:
    return x.flatten(-2)


def apply_rotary(x: Tensor, start: int, base: float) -> Tensor:
    """Rotary embedding (rotate-half form) on x (B, T, H, D), first token at position `start`
    (apply_rotary_libtorch in common/heads.cpp)."""
    T, D = x.shape[1], x.shape[3]
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    inv_freq = torch.pow(base, -torch.arange(0, D, 2, dtype=dtype, device=x.device) / D)
    angles = torch.outer(torch.arange(start, start + T, dtype=dtype, device=x.device), inv_freq)
    cos = torch.cat([angles.cos(), angles.cos()], -1).view(1, T, 1, D).to(x.dtype)
    sin = torch.cat([angles.sin(), angles.sin()], -1).view(1, T, 1, D).to(x.dtype)
    first, second = x.chunk(2, -1)
    return x * cos + torch.cat([-second, first], -1) * sin


def causal_depthwise_conv(window: Tensor, length: int, weight: Tensor, bias: Tensor) -> Tensor:
    """y_t[c] = bias[c] + sum_k weight[c, k] * window[t + k][c] for t < length, window (B, K-1+length, C):
    the terms in the order of causal_depthwise_conv (common/short_conv.cpp), so decoding repeats the forward."""
    out = bias.to(window.dtype).expand(*window.shape[:-2], length, window.shape[-1])
    for i in range(weight.shape[-1]):
        out = out + window[..., i:i + length, :] * weight[:, i].to(window.dtype)
    return out


def _rms_normalise(x: Tensor) -> Tensor:
    """x / rms(x) over the last axis, in float32 at least (as the C++ layers)."""
    acc = x if x.dtype == torch.float64 else x.float()
    return (acc * torch.rsqrt(acc.pow(2).mean(-1, keepdim=True) + _NORM_EPS)).to(x.dtype)


class _HeadProjections(nn.Module):
    """q_proj, k_proj, v_proj, o_proj of the softmax-attention family, heads of head_dim."""

    def __init__(self, d_model: int, heads: int, head_dim: Optional[int], rope: bool, rope_base: float):
        super().__init__()
        if head_dim is None:
            if d_model % heads != 0:
                raise ValueError(f"d_model ({d_model}) is not divisible by heads ({heads}); set head_dim explicitly")
            head_dim = d_model // heads
        if rope and head_dim % 2 != 0:
            raise ValueError("rotary embedding needs an even head_dim; set rope=False")
        self.heads, self.head_dim, self.rope, self.rope_base = heads, head_dim, rope, rope_base
        self.q_proj = _projection(d_model, heads * head_dim)
        self.k_proj = _projection(d_model, heads * head_dim)
        self.v_proj = _projection(d_model, heads * head_dim)
        self.o_proj = _projection(heads * head_dim, d_model)

    def project_heads(self, x: Tensor, start: int = 0):
        q, k, v = (_split_heads(p(x), self.heads) for p in (self.q_proj, self.k_proj, self.v_proj))
        if self.rope:
            q, k = apply_rotary(q, start, self.rope_base), apply_rotary(k, start, self.rope_base)
        return q, k, v


class AttentionState(NamedTuple):
    """The keys (B, S, H, D) and values (B, S, H, Dv) kept (all of them, or the last `window`); tokens seen."""
    keys: Tensor
    values: Tensor
    position: int = 0


class AttentionLayer(_HeadProjections):
    """`attention` (window 0) and `swa` (window W): causal softmax attention, rotary on by default."""

    def __init__(self, d_model: int, heads: int, window: int = 0, head_dim: Optional[int] = None, rope: bool = True,
                 rope_base: float = 10000.0):
        super().__init__(d_model, heads, head_dim, rope, rope_base)
        self.window = window

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.project_heads(x)
        return self.o_proj(_merge_heads(_ops().sliding_window_attention(q, k, v, self.window)))

    def initial_state(self, batch: int, dtype: torch.dtype = torch.float32,
                      device: Optional[torch.device] = None) -> AttentionState:
        empty = torch.zeros(batch, 0, self.heads, self.head_dim, dtype=dtype, device=device)
        return AttentionState(empty, empty.clone(), 0)

    def step(self, x: Tensor, state: AttentionState):
        """One token against the kept keys (attention_layer.cpp's step)."""
        q, k, v = self.project_heads(x.unsqueeze(1), start=state.position)
        keys, values = torch.cat([state.keys, k], 1), torch.cat([state.values, v], 1)
        if self.window > 0:
            keys, values = keys[:, -self.window:], values[:, -self.window:]
        logits = (keys * q).sum(-1) / math.sqrt(self.head_dim)  # (B, S, H)
        acc = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
        weights = acc.softmax(1).to(values.dtype)
        o = (weights.unsqueeze(-1) * values).sum(1)
        return self.o_proj(_merge_heads(o)), AttentionState(keys, values, state.position + 1)


class BlaLayer(_HeadProjections):
    """`bla`: Blurry Window Attention; `windows` gives one window per equal group of heads."""

    def __init__(self, d_model: int, heads: int, windows: Sequence[int], slots: int, chunk: int = 64,
                 head_dim: Optional[int] = None, rope: bool = False, rope_base: float = 10000.0):
        super().__init__(d_model, heads, head_dim, rope, rope_base)
        self.windows: List[int] = [windows] if isinstance(windows, int) else list(windows)
        if not self.windows or heads % len(self.windows) != 0:
            raise ValueError(f"bla: heads ({heads}) must be divisible by the number of windows ({len(self.windows)}); "
                             "give one window per head group")
        self.slots, self.chunk = slots, chunk

    def _groups(self, t: Tensor, head_axis: int):
        return t.chunk(len(self.windows), head_axis)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.project_heads(x)
        outputs = [_ops().blurry_window_attention(qg, kg, vg, w, self.slots, self.chunk)
                   for w, qg, kg, vg in zip(self.windows, *(self._groups(t, 2) for t in (q, k, v)))]
        return self.o_proj(_merge_heads(torch.cat(outputs, 2)))

    def initial_state(self, batch: int, dtype: torch.dtype = torch.float32,
                      device: Optional[torch.device] = None) -> List[BlaState]:
        """One BlaState per head group."""
        per_group = self.heads // len(self.windows)
        return [_ops().bla_initial_state(batch, per_group, self.head_dim, self.head_dim, self.slots, dtype, device)
                for _ in self.windows]

    def step(self, x: Tensor, state: List[BlaState]):
        """One token x (B, d_model) -> (output (B, d_model), next state)."""
        q, k, v = (t.squeeze(1) for t in self.project_heads(x.unsqueeze(1), start=state[0].position))
        outputs, next_state = [], []
        for w, s, qg, kg, vg in zip(self.windows, state, *(self._groups(t, 1) for t in (q, k, v))):
            out, s = _ops().bla_decode_step(qg, kg, vg, s, w, self.slots, self.chunk)
            outputs.append(out)
            next_state.append(s)
        return self.o_proj(_merge_heads(torch.cat(outputs, 1))), next_state


class GatedFwaLayer(_HeadProjections):
    """`gatedfwa`: SWA with a per-head cumulative log gate on the logits; gate_proj (with bias) makes it."""

    def __init__(self, d_model: int, heads: int, window: int, head_dim: Optional[int] = None, rope: bool = True,
                 rope_base: float = 10000.0, block: int = 64, gate_init_min: float = 0.001,
                 gate_init_max: float = 0.1):
        super().__init__(d_model, heads, head_dim, rope, rope_base)
        self.window, self.block = window, block
        self.gate_proj = nn.Linear(d_model, heads)
        nn.init.normal_(self.gate_proj.weight, 0.0, 0.02)
        # Per-head decays log-spaced over [gate_init_min, gate_init_max] at zero input:
        # bias = -log(expm1(decay)), as gatedfwa_layer.cpp.
        position = torch.full((1,), 0.5, dtype=torch.float64) if heads == 1 else torch.linspace(0, 1, heads,
                                                                                                dtype=torch.float64)
        decay = torch.exp(math.log(gate_init_min) + position * (math.log(gate_init_max) - math.log(gate_init_min)))
        with torch.no_grad():
            self.gate_proj.bias.copy_(-torch.log(torch.expm1(decay)))

    def log_gate(self, x: Tensor) -> Tensor:
        logits = self.gate_proj(x)
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()
        return F.logsigmoid(logits)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.project_heads(x)
        o = _ops().gated_window_attention(q, k, v, self.log_gate(x), self.window, 0.0, self.block)
        return self.o_proj(_merge_heads(o))

    def initial_state(self, batch: int, dtype: torch.dtype = torch.float32,
                      device: Optional[torch.device] = None) -> GatedWindowState:
        return _ops().gated_window_initial_state(batch, self.heads, self.head_dim, self.head_dim, self.window, dtype,
                                                 device)

    def step(self, x: Tensor, state: GatedWindowState):
        q, k, v = (t.squeeze(1) for t in self.project_heads(x.unsqueeze(1), start=state.position))
        o, state = _ops().gated_window_decode_step(q, k, v, self.log_gate(x), state, self.window)
        return self.o_proj(_merge_heads(o)), state


def _gla_subchunk(chunk: int) -> int:
    return chunk if chunk < 16 else 16  # ops::gla_subchunk (src/bla/ops/gla/gla.h)


class GlaLayer(nn.Module):
    """`gla`: gated linear attention, low-rank data-dependent decay, RMS norm and swish output gate."""

    def __init__(self, d_model: int, heads: int, expand_k: float = 0.5, expand_v: float = 1.0, gate_rank: int = 16,
                 gate_normalizer: float = 16.0, chunk: int = 64):
        super().__init__()
        key_width, value_width = round(expand_k * d_model), round(expand_v * d_model)
        if key_width % heads or value_width % heads:
            raise ValueError(f"expand_k * d_model ({key_width}) and expand_v * d_model ({value_width}) must be whole "
                             f"multiples of heads ({heads})")
        self.heads, self.gate_normalizer, self.chunk = heads, gate_normalizer, chunk
        self.q_proj = _projection(d_model, key_width)
        self.k_proj = _projection(d_model, key_width)
        self.v_proj = _projection(d_model, value_width)
        self.o_proj = _projection(value_width, d_model)
        self.gate_down = _projection(d_model, gate_rank)
        self.gate_up = nn.Linear(gate_rank, key_width)
        nn.init.normal_(self.gate_up.weight, 0.0, 0.02)
        nn.init.zeros_(self.gate_up.bias)
        self.output_gate = _projection(d_model, value_width)
        self.norm_weight = nn.Parameter(torch.ones(value_width // heads))

    def _inputs(self, x: Tensor):
        H = self.heads
        q, k, v = (_split_heads(p(x), H) for p in (self.q_proj, self.k_proj, self.v_proj))
        g = _split_heads(F.logsigmoid(self.gate_up(self.gate_down(x))) / self.gate_normalizer, H)
        return q, k, v, g

    def _output(self, o: Tensor, x: Tensor) -> Tensor:
        gated = _merge_heads(_rms_normalise(o) * self.norm_weight.to(o.dtype)) * F.silu(self.output_gate(x))
        return self.o_proj(gated)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v, g = self._inputs(x)
        return self._output(_ops().gated_linear_attention(q, k, v, g, self.chunk, 0.0, _gla_subchunk(self.chunk)), x)

    def initial_state(self, batch: int, dtype: torch.dtype = torch.float32,
                      device: Optional[torch.device] = None) -> Tensor:
        """S (B, H, Dk, Dv)."""
        dk, dv = self.q_proj.out_features // self.heads, self.v_proj.out_features // self.heads
        return _ops().gla_initial_state(batch, self.heads, dk, dv, dtype, device)

    def step(self, x: Tensor, state: Tensor):
        q, k, v, g = self._inputs(x)
        o, state = _ops().gla_decode_step(q, k, v, g, state)
        return self._output(o, x), state


class GsaLayer(nn.Module):
    """`gsa`: gated slot attention over `slots` slots, swish feature map, RMS norm on the output."""

    def __init__(self, d_model: int, heads: int, slots: int = 64, gate_normalizer: float = 8.0, chunk: int = 64):
        super().__init__()
        if d_model % heads != 0:
            raise ValueError(f"d_model ({d_model}) is not divisible by heads ({heads}); pick a divisor of d_model")
        self.heads, self.slots, self.gate_normalizer, self.chunk = heads, slots, gate_normalizer, chunk
        self.q_proj = _projection(d_model, d_model)
        self.k_proj = _projection(d_model, d_model)
        self.v_proj = _projection(d_model, d_model)
        self.o_proj = _projection(d_model, d_model)
        self.forget_proj = _projection(d_model, heads * slots)
        self.norm_weight = nn.Parameter(torch.ones(d_model // heads))

    def _inputs(self, x: Tensor):
        H = self.heads
        q = F.silu(_split_heads(self.q_proj(x), H))
        k = F.silu(_split_heads(self.k_proj(x), H))
        v = _split_heads(self.v_proj(x), H)
        f = _split_heads(F.logsigmoid(self.forget_proj(x)) / self.gate_normalizer, H)
        return q, k, v, f

    def _output(self, o: Tensor) -> Tensor:
        normed = _rms_normalise(F.silu(o))
        return self.o_proj(_merge_heads(normed * self.norm_weight.to(o.dtype)))

    def forward(self, x: Tensor) -> Tensor:
        q, k, v, f = self._inputs(x)
        return self._output(_ops().gated_slot_attention(q, k, v, f, self.chunk, 1.0, _gla_subchunk(self.chunk)))

    def initial_state(self, batch: int, dtype: torch.dtype = torch.float32,
                      device: Optional[torch.device] = None) -> GsaState:
        head_dim = self.q_proj.out_features // self.heads
        return _ops().gsa_initial_state(batch, self.heads, self.slots, head_dim, head_dim, dtype, device)

    def step(self, x: Tensor, state: GsaState):
        q, k, v, f = self._inputs(x)
        o, state = _ops().gsa_decode_step(q, k, v, f, state, 1.0)
        return self._output(o), state


class Mamba2State(NamedTuple):
    """The convolution's last K-1 inputs (B, K-1, channels) and the SSM state h (B, H, N, P)."""
    conv: Tensor
    ssm: Tensor


class Mamba2Layer(nn.Module):
    """`mamba2`: in_proj to (z, x B C, dt), causal depthwise conv, SSD, gated grouped RMS norm, out_proj."""

    def __init__(self, d_model: int, expand: int = 2, d_state: int = 64, head_dim: int = 64, ngroups: int = 1,
                 conv_kernel: int = 4, chunk: int = 64):
        super().__init__()
        self.d_inner = expand * d_model
        if self.d_inner % head_dim != 0 or (self.d_inner // head_dim) % ngroups != 0:
            raise ValueError(f"head_dim ({head_dim}) must divide d_inner ({self.d_inner}) and ngroups ({ngroups}) "
                             "the head count")
        self.heads = self.d_inner // head_dim
        self.d_state, self.head_dim, self.ngroups, self.conv_kernel, self.chunk = (
            d_state, head_dim, ngroups, conv_kernel, chunk)
        channels = self.d_inner + 2 * ngroups * d_state
        self.in_proj = _projection(d_model, self.d_inner + channels + self.heads)
        self.out_proj = _projection(self.d_inner, d_model)
        bound = 1.0 / math.sqrt(conv_kernel)
        self.conv_weight = nn.Parameter(torch.empty(channels, conv_kernel).uniform_(-bound, bound))
        self.conv_bias = nn.Parameter(torch.empty(channels).uniform_(-bound, bound))
        dt0 = torch.exp(torch.rand(self.heads, dtype=torch.float64) * (math.log(0.1) - math.log(0.001))
                        + math.log(0.001)).clamp_min(1e-4)
        self.dt_bias = nn.Parameter((dt0 + torch.log(-torch.expm1(-dt0))).float())
        self.A_log = nn.Parameter(torch.empty(self.heads, dtype=torch.float64).uniform_(1, 16).log().float())
        self.D = nn.Parameter(torch.ones(self.heads))
        self.norm_weight = nn.Parameter(torch.ones(self.d_inner))

    def _gated_output(self, y: Tensor, z: Tensor) -> Tensor:
        gated = y * F.silu(z)
        acc = gated if gated.dtype == torch.float64 else gated.float()
        grouped = acc.view(*acc.shape[:-1], self.ngroups, self.d_inner // self.ngroups)
        normed = (grouped * torch.rsqrt(grouped.pow(2).mean(-1, keepdim=True) + _NORM_EPS)).view(acc.shape)
        return self.out_proj(normed.to(y.dtype) * self.norm_weight.to(y.dtype))

    def forward(self, x: Tensor) -> Tensor:
        Bsz, T = x.shape[:2]
        G, N, P, K = self.ngroups, self.d_state, self.head_dim, self.conv_kernel
        z, xBC, dt_raw = self.in_proj(x).split([self.d_inner, self.conv_weight.shape[0], self.heads], -1)
        padded = F.pad(xBC, (0, 0, K - 1, 0))  # K-1 zeros before the first token
        xs, Bm, Cm = F.silu(causal_depthwise_conv(padded, T, self.conv_weight, self.conv_bias)).split(
            [self.d_inner, G * N, G * N], -1)
        dt = F.softplus(dt_raw + self.dt_bias)
        y = _ops().selective_state_space(xs.reshape(Bsz, T, self.heads, P), dt, -torch.exp(self.A_log),
                                         Bm.reshape(Bsz, T, G, N), Cm.reshape(Bsz, T, G, N), self.D, self.chunk)
        return self._gated_output(y.reshape(Bsz, T, self.d_inner), z)

    def initial_state(self, batch: int, dtype: torch.dtype = torch.float32,
                      device: Optional[torch.device] = None) -> Mamba2State:
        conv = torch.zeros(batch, self.conv_kernel - 1, self.conv_weight.shape[0], dtype=dtype, device=device)
        return Mamba2State(conv, _ops().ssd_initial_state(batch, self.heads, self.d_state, self.head_dim, dtype,
                                                          device))

    def step(self, x: Tensor, state: Mamba2State):
        Bsz = x.shape[0]
        G, N, P = self.ngroups, self.d_state, self.head_dim
        z, xBC, dt_raw = self.in_proj(x).split([self.d_inner, self.conv_weight.shape[0], self.heads], -1)
        window = torch.cat([state.conv.to(x.dtype), xBC.unsqueeze(1)], 1)  # (B, K, channels)
        conv = causal_depthwise_conv(window, 1, self.conv_weight, self.conv_bias).squeeze(1)
        xs, Bm, Cm = F.silu(conv).split([self.d_inner, G * N, G * N], -1)
        dt = F.softplus(dt_raw + self.dt_bias)
        y, ssm = _ops().ssd_decode_step(xs.reshape(Bsz, self.heads, P), dt, -torch.exp(self.A_log),
                                        Bm.reshape(Bsz, G, N), Cm.reshape(Bsz, G, N), self.D, state.ssm)
        return self._gated_output(y.reshape(Bsz, self.d_inner), z), Mamba2State(window[:, 1:], ssm)


def layer_from_export(params: dict, d_model: int) -> nn.Module:
    """The layer one entry of bla-export's config.json `layer_mixers[i].params` describes."""
    kind = params["type"]
    if kind in ("attention", "swa"):
        return AttentionLayer(d_model, params["heads"], params.get("window", 0), params["head_dim"], params["rope"],
                              params["rope_base"])
    if kind == "bla":
        windows = params["windows"] if "windows" in params else [params["window"]]
        return BlaLayer(d_model, params["heads"], windows, params["slots"], params["chunk"], params["head_dim"],
                        params["rope"], params["rope_base"])
    if kind == "gatedfwa":
        return GatedFwaLayer(d_model, params["heads"], params["window"], params["head_dim"], params["rope"],
                             params["rope_base"], params["block"], params["gate_init_min"], params["gate_init_max"])
    if kind == "gla":
        return GlaLayer(d_model, params["heads"], params["expand_k"], params["expand_v"], params["gate_rank"],
                        params["gate_normalizer"], params["chunk"])
    if kind == "gsa":
        return GsaLayer(d_model, params["heads"], params["slots"], params["gate_normalizer"], params["chunk"])
    if kind == "mamba2":
        return Mamba2Layer(d_model, params["expand"], params["d_state"], params["head_dim"], params["ngroups"],
                           params["conv_kernel"], params["chunk"])
    raise ValueError(f"unknown mixer type '{kind}'; bla_train.layers has attention, swa, bla, gatedfwa, gla, gsa, "
                     "mamba2")
