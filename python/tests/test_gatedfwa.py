"""torch.ops.bla gated window ops (GatedFWA's core) against a plain float64 softmax written
here, finite differences, and the decode step against the full forward."""

import math

import pytest
import torch

from bla_train import ops

from conftest import close, log_gate, rand


def gated_window_plain(q, k, v, g, window, scale=0.0):
    """logits_{t,s} = scale q_t.k_s + G_t - G_s over t-W < s <= t, G = cumsum(g)."""
    T = q.shape[1]
    scale = scale if scale > 0 else 1.0 / math.sqrt(q.shape[-1])
    G = g.cumsum(1).permute(0, 2, 1)  # (B, H, T)
    logits = torch.einsum("bthd,bshd->bhts", q, k) * scale + G[..., :, None] - G[..., None, :]
    t, s = torch.arange(T)[:, None], torch.arange(T)[None, :]
    logits = logits.masked_fill((s > t) | (s <= t - window), float("-inf"))
    return torch.einsum("bhts,bshd->bthd", logits.softmax(-1), v)


@pytest.mark.parametrize("window,block,seq", [(4, 3, 17), (1, 64, 5), (8, 64, 30), (30, 4, 10)])
def test_blocked_form_equals_the_plain_softmax(window, block, seq):
    q, k, v, g = rand(2, seq, 3, 4), rand(2, seq, 3, 4), rand(2, seq, 3, 5), log_gate(2, seq, 3)
    expected = gated_window_plain(q, k, v, g, window)
    close(ops.gated_window_attention(q, k, v, g, window, 0.0, block), expected)
    close(ops.gated_window_attention_reference(q, k, v, g, window), expected)


def test_gradcheck():
    q, k, v = (rand(1, 6, 2, 2, grad=True) for _ in range(3))
    g = log_gate(1, 6, 2, grad=True)
    assert torch.autograd.gradcheck(lambda *x: ops.gated_window_attention(*x, 3, 0.0, 2), (q, k, v, g))


@pytest.mark.parametrize("window", [1, 4, 25])
def test_decode_steps_equal_the_forward(window):
    q, k, v, g = rand(2, 20, 2, 4), rand(2, 20, 2, 4), rand(2, 20, 2, 3), log_gate(2, 20, 2)
    full = ops.gated_window_attention(q, k, v, g, window)
    state = ops.gated_window_initial_state(2, 2, 4, 3, window, torch.float64)
    for t in range(20):
        out, state = ops.gated_window_decode_step(q[:, t], k[:, t], v[:, t], g[:, t], state, window)
        close(out, full[:, t])
    assert state.position == 20


def test_decode_step_leaves_its_input_rings_alone():
    state = ops.gated_window_initial_state(1, 1, 2, 2, 3, torch.float64)
    ops.gated_window_decode_step(rand(1, 1, 2), rand(1, 1, 2), rand(1, 1, 2), log_gate(1, 1), state, 3)
    assert state.keys.abs().sum() == 0 and state.values.abs().sum() == 0


def test_a_wrong_ring_is_a_value_error_naming_it():
    state = ops.gated_window_initial_state(1, 1, 2, 2, 3, torch.float64)
    with pytest.raises(ValueError, match=r"^bla: gated window state keys must be \(batch, window, heads, head_dim\) = "
                                         r"\[1, 4, 1, 2\]; got \[1, 3, 1, 2\]$"):
        ops.gated_window_decode_step(rand(1, 1, 2), rand(1, 1, 2), rand(1, 1, 2), log_gate(1, 1), state, 4)
