"""torch.ops.bla.sliding_window_attention (softmax attention, windowed, with a logit bias)
against a plain float64 softmax written here, the C++ reference and finite differences."""

import math

import pytest
import torch

from bla_train import ops

from conftest import close, rand


def attention_plain(q, k, v, window=0, scale=0.0, bias=None):
    T = q.shape[1]
    scale = scale if scale > 0 else 1.0 / math.sqrt(q.shape[-1])
    logits = torch.einsum("bthd,bshd->bhts", q, k) * scale
    if bias is not None:
        b = bias.permute(0, 2, 1)  # (B, H, T)
        logits = logits + b[..., :, None] - b[..., None, :]
    t, s = torch.arange(T)[:, None], torch.arange(T)[None, :]
    hidden = s > t
    if window > 0:
        hidden = hidden | (s <= t - window)
    return torch.einsum("bhts,bshd->bthd", logits.masked_fill(hidden, float("-inf")).softmax(-1), v)


@pytest.mark.parametrize("window", [0, 1, 4, 50])
@pytest.mark.parametrize("with_bias", [False, True])
def test_equals_the_plain_softmax(window, with_bias):
    q, k, v = rand(2, 13, 3, 4), rand(2, 13, 3, 4), rand(2, 13, 3, 6)
    bias = rand(2, 13, 3) if with_bias else None
    expected = attention_plain(q, k, v, window, 0.0, bias)
    close(ops.sliding_window_attention(q, k, v, window, 0.0, bias), expected)
    close(ops.sliding_window_attention_reference(q, k, v, window, 0.0, bias), expected)


def test_scale_is_passed_through():
    q, k, v = rand(1, 9, 2, 4), rand(1, 9, 2, 4), rand(1, 9, 2, 4)
    close(ops.sliding_window_attention(q, k, v, 3, 0.7), attention_plain(q, k, v, 3, 0.7))


@pytest.mark.parametrize("window", [0, 3])
def test_gradcheck(window):
    q, k, v = (rand(1, 6, 2, 2, grad=True) for _ in range(3))
    bias = rand(1, 6, 2, grad=True)
    assert torch.autograd.gradcheck(
        lambda q, k, v, bias: ops.sliding_window_attention(q, k, v, window, 0.0, bias), (q, k, v, bias))


def test_bad_inputs_are_value_errors_with_the_ops_message():
    q = rand(1, 4, 1, 2)
    with pytest.raises(ValueError, match=r"^attention: window \(-1\) must be >= 0 \(0 = full causal\)$"):
        ops.sliding_window_attention(q, q, q, -1)
    with pytest.raises(ValueError, match=r"^attention: bias must be \(batch, seq, heads\)$"):
        ops.sliding_window_attention(q, q, q, 2, 0.0, rand(1, 4))
