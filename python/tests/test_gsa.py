"""torch.ops.bla GSA ops against the slot recurrence written here in float64, finite
differences, and the decode step against the full forward."""

import pytest
import torch

from bla_train import ops

from conftest import close, log_gate, rand


def gsa_recurrence(q, k, v, f, scale=1.0):
    """K~_t = diag(a_t) K~_{t-1} + (1 - a_t) k_t^T (V~ alike), a_t = exp(f_t); o_t = V~_t^T softmax(scale K~_t q_t)."""
    B, T, H, Dk = q.shape
    m = f.shape[-1]
    keys = torch.zeros(B, H, m, Dk, dtype=q.dtype)
    values = torch.zeros(B, H, m, v.shape[-1], dtype=q.dtype)
    out = []
    for t in range(T):
        alpha = f[:, t].exp()[..., None]
        keys = alpha * keys + (1 - alpha) * k[:, t, :, None, :]
        values = alpha * values + (1 - alpha) * v[:, t, :, None, :]
        weights = (scale * (keys @ q[:, t, :, :, None]).squeeze(-1)).softmax(-1)
        out.append((weights[..., None, :] @ values).squeeze(-2))
    return torch.stack(out, 1)


@pytest.mark.parametrize("chunk,subchunk,seq", [(8, 4, 21), (4, 4, 3), (64, 16, 70)])
def test_chunked_form_equals_the_recurrence(chunk, subchunk, seq):
    q, k, v, f = rand(2, seq, 2, 4), rand(2, seq, 2, 4), rand(2, seq, 2, 3), log_gate(2, seq, 2, 5)
    expected = gsa_recurrence(q, k, v, f)
    close(ops.gated_slot_attention(q, k, v, f, chunk, 1.0, subchunk), expected)
    close(ops.gated_slot_attention_reference(q, k, v, f), expected)


def test_scale_is_passed_through():
    q, k, v, f = rand(1, 9, 1, 4), rand(1, 9, 1, 4), rand(1, 9, 1, 4), log_gate(1, 9, 1, 3)
    close(ops.gated_slot_attention(q, k, v, f, 4, 0.5, 4), gsa_recurrence(q, k, v, f, 0.5))


def test_gradcheck():
    q, k, v = (rand(1, 6, 1, 2, grad=True) for _ in range(3))
    f = log_gate(1, 6, 1, 3, grad=True)
    assert torch.autograd.gradcheck(lambda *x: ops.gated_slot_attention(*x, 4, 1.0, 2), (q, k, v, f))


def test_with_state_then_decode_equals_the_forward():
    q, k, v, f = rand(2, 20, 2, 4), rand(2, 20, 2, 4), rand(2, 20, 2, 3), log_gate(2, 20, 2, 5)
    full = ops.gated_slot_attention(q, k, v, f, 8, 1.0, 4)
    state = ops.gsa_initial_state(2, 2, 5, 4, 3, torch.float64)
    head, state = ops.gated_slot_attention_with_state(q[:, :9], k[:, :9], v[:, :9], f[:, :9], state, 8, 1.0, 4)
    close(head, full[:, :9])
    for t in range(9, 20):
        out, state = ops.gsa_decode_step(q[:, t], k[:, t], v[:, t], f[:, t], state)
        close(out, full[:, t])


def test_a_non_positive_scale_is_a_value_error():
    q = rand(1, 4, 1, 2)
    with pytest.raises(ValueError, match=r"^bla: gsa scale \(0\) must be > 0; the default is 1.0$"):
        ops.gated_slot_attention(q, q, q, log_gate(1, 4, 1, 3), 4, 0.0, 4)
