"""torch.ops.bla GLA ops against the recurrence written here in float64, finite differences,
and the decode step against the full forward."""

import math

import pytest
import torch

from bla_train import ops

from conftest import close, log_gate, rand


def gla_recurrence(q, k, v, g, scale=0.0, state=None):
    """S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T, o_t = scale S_t^T q_t."""
    B, T, H, Dk = q.shape
    scale = scale if scale > 0 else 1.0 / math.sqrt(Dk)
    S = torch.zeros(B, H, Dk, v.shape[-1], dtype=q.dtype) if state is None else state
    out = []
    for t in range(T):
        S = g[:, t].exp()[..., None] * S + k[:, t, :, :, None] * v[:, t, :, None, :]
        out.append(scale * (q[:, t, :, None, :] @ S).squeeze(-2))
    return torch.stack(out, 1), S


# (chunk, subchunk, seq)
CHUNKINGS = [(8, 4, 21), (16, 16, 16), (4, 4, 3), (64, 16, 70)]


@pytest.mark.parametrize("chunk,subchunk,seq", CHUNKINGS)
def test_chunked_form_equals_the_recurrence(chunk, subchunk, seq):
    q, k, v, g = rand(2, seq, 2, 4), rand(2, seq, 2, 4), rand(2, seq, 2, 3), log_gate(2, seq, 2, 4)
    expected, _ = gla_recurrence(q, k, v, g)
    close(ops.gated_linear_attention(q, k, v, g, chunk, 0.0, subchunk), expected)
    close(ops.gated_linear_attention_reference(q, k, v, g), expected)


def test_scale_is_passed_through():
    q, k, v, g = rand(1, 9, 1, 4), rand(1, 9, 1, 4), rand(1, 9, 1, 4), log_gate(1, 9, 1, 4)
    close(ops.gated_linear_attention(q, k, v, g, 4, 0.25, 4), gla_recurrence(q, k, v, g, 0.25)[0])


def test_gradcheck():
    q, k, v = (rand(1, 6, 1, 2, grad=True) for _ in range(3))
    g = log_gate(1, 6, 1, 2, grad=True)
    assert torch.autograd.gradcheck(lambda *x: ops.gated_linear_attention(*x, 4, 0.0, 2), (q, k, v, g))


def test_with_state_then_decode_equals_the_forward():
    q, k, v, g = rand(2, 20, 2, 4), rand(2, 20, 2, 4), rand(2, 20, 2, 3), log_gate(2, 20, 2, 4)
    full = ops.gated_linear_attention(q, k, v, g, 8, 0.0, 4)
    head, state = ops.gated_linear_attention_with_state(q[:, :11], k[:, :11], v[:, :11], g[:, :11],
                                                        ops.gla_initial_state(2, 2, 4, 3, torch.float64), 8, 0.0, 4)
    close(head, full[:, :11])
    close(state, gla_recurrence(q[:, :11], k[:, :11], v[:, :11], g[:, :11])[1])
    for t in range(11, 20):
        out, state = ops.gla_decode_step(q[:, t], k[:, t], v[:, t], g[:, t], state)
        close(out, full[:, t])


def test_bad_chunking_is_a_value_error():
    q = rand(1, 4, 1, 2)
    with pytest.raises(ValueError, match=r"^bla: gla subchunk \(3\) must divide chunk \(8\); pick a divisor of chunk such as 16 or 8$"):
        ops.gated_linear_attention(q, q, q, q, 8, 0.0, 3)
