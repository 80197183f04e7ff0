"""The language model of src/bla/model/lm.cpp as an nn.Module, built from bla-export's description.

Token embedding; per layer x + mixer([short conv](RMSNorm(x))), then
x + SwiGLU(RMSNorm(x)) (mlp: none skips it); final RMSNorm; LM head, the
embedding's matrix when tied. Parameter names are the C++ module names
(embedding.weight, blocks.0.mixer.q_proj.weight, ...), so bla-export's
model.safetensors loads with load_state_dict(strict=True). The model decodes
like bla-generate: `initial_state(batch)` then `step(token)` per token, each
layer keeping its mixer's bounded state (and the short convolution's last
inputs). Needs nothing but torch (the layers fall back to plain PyTorch ops),
so it is one of the files of a Hugging Face export.
"""

import json
from pathlib import Path
from typing import List, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import causal_depthwise_conv, layer_from_export

# The keys of a model description (bla-export's config.json, or the Hugging Face config.json).
DESCRIPTION_KEYS = ("vocab_size", "d_model", "layers", "heads", "mlp", "mlp_ratio", "short_conv", "norm_eps",
                    "tie_embeddings", "layer_mixers")


class RMSNorm(nn.Module):
    """x / rms(x) * weight, the statistics in float32 at least (rms_norm_libtorch in lm.cpp)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        acc = x if x.dtype == torch.float64 else x.float()
        normed = acc * torch.rsqrt(acc.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.to(x.dtype) * self.weight.to(x.dtype)


class ShortConv(nn.Module):
    """`model.short_conv: K`: a causal depthwise convolution before the mixer (common/short_conv.h)."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.kernel = kernel
        self.weight = nn.Parameter(torch.zeros(channels, kernel))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return causal_depthwise_conv(F.pad(x, (0, 0, self.kernel - 1, 0)), x.shape[1], self.weight, self.bias)

    def initial_state(self, batch: int, dtype: torch.dtype, device=None) -> Tensor:
        """The last K-1 inputs, zeros at first: (B, K-1, C)."""
        return torch.zeros(batch, self.kernel - 1, self.weight.shape[0], dtype=dtype, device=device)

    def step(self, x: Tensor, cache: Tensor):
        window = torch.cat([cache.to(x.dtype), x.unsqueeze(1)], 1)
        return causal_depthwise_conv(window, 1, self.weight, self.bias).squeeze(1), window[:, 1:]


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, hidden: int):
        super().__init__()
        self.gate = nn.Linear(d_model, hidden, bias=False)
        self.up = nn.Linear(d_model, hidden, bias=False)
        self.down = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


def swiglu_hidden(d_model: int, mlp_ratio: float) -> int:
    """LLaMA's sizing, as lm.cpp: 2/3 of mlp_ratio * d_model, rounded (half away from zero) up to a multiple of 8."""
    exact = mlp_ratio * d_model * 2.0 / 3.0
    hidden = int(exact + 0.5) if exact >= 0 else -int(-exact + 0.5)
    return (hidden + 7) // 8 * 8


class Block(nn.Module):
    def __init__(self, description: dict, mixer_params: dict):
        super().__init__()
        d_model, eps = description["d_model"], description["norm_eps"]
        self.mixer_norm = RMSNorm(d_model, eps)
        kernel = description.get("short_conv", 0) or 0
        self.short_conv = ShortConv(d_model, kernel) if kernel > 0 else None
        self.mixer = layer_from_export(mixer_params, d_model)
        if description["mlp"] == "swiglu":
            self.mlp_norm = RMSNorm(d_model, eps)
            self.mlp = SwiGLU(d_model, swiglu_hidden(d_model, description["mlp_ratio"]))
        elif description["mlp"] == "none":
            self.mlp_norm, self.mlp = None, None
        else:
            raise ValueError(f"mlp '{description['mlp']}': this model knows swiglu and none")

    def _mlp(self, x: Tensor) -> Tensor:
        return x + self.mlp(self.mlp_norm(x)) if self.mlp is not None else x

    def forward(self, x: Tensor) -> Tensor:
        h = self.mixer_norm(x)
        if self.short_conv is not None:
            h = self.short_conv(h)
        return self._mlp(x + self.mixer(h))

    def initial_state(self, batch: int, dtype: torch.dtype, device=None):
        conv = self.short_conv.initial_state(batch, dtype, device) if self.short_conv is not None else None
        return conv, self.mixer.initial_state(batch, dtype, device)

    def step(self, x: Tensor, state):
        conv, mixer_state = state
        h = self.mixer_norm(x)
        if self.short_conv is not None:
            h, conv = self.short_conv.step(h, conv)
        out, mixer_state = self.mixer.step(h, mixer_state)
        return self._mlp(x + out), (conv, mixer_state)


def check_description(description: dict) -> None:
    missing = [key for key in DESCRIPTION_KEYS if key not in description and key != "short_conv"]
    if missing:
        raise ValueError(f"model description lacks {', '.join(missing)}: give bla-export's config.json "
                         "(format 'bla-train model 1') or an export of --format hf")
    if len(description["layer_mixers"]) != description["layers"]:
        raise ValueError(f"model description has {len(description['layer_mixers'])} layer_mixers for "
                         f"{description['layers']} layers")


class LanguageModel(nn.Module):
    """tokens (B, T) int64 -> logits (B, T, vocab), from a description holding DESCRIPTION_KEYS."""

    def __init__(self, description: dict):
        super().__init__()
        check_description(description)
        self.embedding = nn.Embedding(description["vocab_size"], description["d_model"])
        self.blocks = nn.ModuleList(Block(description, entry["params"]) for entry in description["layer_mixers"])
        self.final_norm = RMSNorm(description["d_model"], description["norm_eps"])
        self.head = None if description["tie_embeddings"] else nn.Linear(description["d_model"],
                                                                           description["vocab_size"], bias=False)

    def logits(self, hidden: Tensor) -> Tensor:
        return self.head(hidden) if self.head is not None else hidden @ self.embedding.weight.to(hidden.dtype).t()

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.embedding(tokens)
        for block in self.blocks:
            x = block(x)
        return self.logits(self.final_norm(x))

    def initial_state(self, batch: int, dtype: Optional[torch.dtype] = None, device=None) -> List:
        """One state per layer for `batch` sequences; dtype and device default to the embedding's."""
        dtype = dtype or self.embedding.weight.dtype
        device = device or self.embedding.weight.device
        return [block.initial_state(batch, dtype, device) for block in self.blocks]

    def step(self, token: Tensor, state: List):
        """token (B,) int64 -> (logits (B, vocab) for the next token, next state)."""
        x = self.embedding(token)
        next_state = []
        for block, layer_state in zip(self.blocks, state):
            x, layer_state = block.step(x, layer_state)
            next_state.append(layer_state)
        return self.logits(self.final_norm(x)), next_state

    def prefill(self, tokens: Tensor, state: Optional[List] = None):
        """tokens (B, T) through step, from `state` (None: empty): (logits (B, T, vocab), the state after them)."""
        if state is None:
            state = self.initial_state(tokens.shape[0])
        logits = []
        for t in range(tokens.shape[1]):
            out, state = self.step(tokens[:, t], state)
            logits.append(out)
        return torch.stack(logits, 1), state

    @torch.no_grad()
    def greedy(self, prompt: Tensor, max_new_tokens: int) -> Tensor:
        """bla-generate --temperature 0: the prompt (B, T) through the steps, then the most likely token each
        step; returns the new tokens (B, max_new_tokens)."""
        logits, state = self.prefill(prompt)
        last, new = logits[:, -1], []
        for _ in range(max_new_tokens):
            token = last.argmax(-1)
            new.append(token)
            last, state = self.step(token, state)
        return torch.stack(new, 1) if new else prompt.new_zeros(prompt.shape[0], 0)


def read_safetensors(path: Union[str, Path]) -> dict:
    """Every tensor of a .safetensors file (the safetensors package when installed, else bla's own reader)."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        from .safetensors import load_file
    return load_file(str(path))


def load_export(folder: Union[str, Path], prefix: str = "") -> LanguageModel:
    """The model of a bla-export folder (config.json and model.safetensors, either format); `prefix` is what the
    weights' names carry before the C++ names ("model." in a --format hf export)."""
    folder = Path(folder)
    description = json.loads((folder / "config.json").read_text())
    if "short_conv" not in description:  # --format bla keeps it in the model section only
        description["short_conv"] = description.get("model_config", {}).get("short_conv", 0)
    model = LanguageModel(description)
    weights = read_safetensors(folder / "model.safetensors")
    model.load_state_dict({name[len(prefix):]: t for name, t in weights.items() if name.startswith(prefix)},
                          strict=True)
    return model.eval()
