"""torch.ops.bla BLA ops against a plain float64 recurrence written here, the C++ reference,
finite differences, and the decode step against the full forward."""

import math

import pytest
import torch

from bla_train import ops

from conftest import close, rand


def dirichlet(n, u):
    """P_N(u): the Dirichlet kernel of the N lowest frequencies (docs/bla.md)."""
    highest = (n - 1) // 2 if n % 2 else n // 2 - 1
    total = 1.0 + sum(2.0 * math.cos(2.0 * math.pi * m * u / n) for m in range(1, highest + 1))
    if n % 2 == 0:
        total += math.cos(math.pi * u)
    return total / n


def slot_transition(window, slots):
    """A = Shift (I - p g^T) and b = e_0 / r of one step of the slot memory."""
    n, r = slots, window / slots
    delta = 1.0 / r
    read = torch.tensor([dirichlet(n, n - j - delta) for j in range(n)], dtype=torch.float64)
    write = torch.tensor([dirichlet(n, j - n + delta) / r for j in range(n)], dtype=torch.float64)
    shift = torch.tensor([[dirichlet(n, j - l - delta) for l in range(n)] for j in range(n)], dtype=torch.float64)
    A = shift @ (torch.eye(n, dtype=torch.float64) - torch.outer(write, read))
    b = torch.zeros(n, dtype=torch.float64)
    b[0] = 1.0 / r
    return A, b


def bla_recurrence(q, k, v, window, slots, scale=0.0):
    """Token by token: S_t = A S_{t-1} + b x_t^T for keys and values, slots j with j W > t N
    (younger than any token yet) masked, softmax over the slots."""
    B, T, H, D = q.shape
    A, b = slot_transition(window, slots)
    scale = scale if scale > 0 else 1.0 / math.sqrt(D)
    keys = torch.zeros(B, H, slots, D, dtype=q.dtype)
    values = torch.zeros(B, H, slots, v.shape[-1], dtype=q.dtype)
    out = []
    for t in range(T):
        keys = A @ keys + b[:, None] * k[:, t, :, None, :]
        values = A @ values + b[:, None] * v[:, t, :, None, :]
        scores = (keys @ q[:, t, :, :, None]).squeeze(-1) * scale
        masked = torch.arange(slots) * window > t * slots
        weights = scores.masked_fill(masked, float("-inf")).softmax(-1)
        out.append((weights[..., None, :] @ values).squeeze(-2))
    return torch.stack(out, 1)


def swa_plain(q, k, v, window):
    T = q.shape[1]
    logits = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(q.shape[-1])
    t, s = torch.arange(T)[:, None], torch.arange(T)[None, :]
    logits = logits.masked_fill((s > t) | (s <= t - window), float("-inf"))
    return torch.einsum("bhts,bshd->bthd", logits.softmax(-1), v)


# (window, slots, chunk, seq): N < W, N == W, a chunk longer than the sequence, a ragged last chunk.
SHAPES = [(8, 4, 4, 19), (6, 3, 5, 13), (5, 5, 4, 12), (16, 4, 32, 9), (12, 5, 7, 30)]


@pytest.mark.parametrize("window,slots,chunk,seq", SHAPES)
def test_chunked_form_equals_the_plain_recurrence(window, slots, chunk, seq):
    q, k, v = rand(2, seq, 3, 4), rand(2, seq, 3, 4), rand(2, seq, 3, 5)
    expected = bla_recurrence(q, k, v, window, slots)
    close(ops.blurry_window_attention(q, k, v, window, slots, chunk), expected)
    close(ops.blurry_window_attention_chunked(q, k, v, window, slots, chunk), expected)
    close(ops.blurry_window_attention_reference(q, k, v, window, slots, chunk), expected)


def test_slots_equal_to_window_is_sliding_window_attention():
    q, k, v = rand(1, 20, 2, 4), rand(1, 20, 2, 4), rand(1, 20, 2, 4)
    close(ops.blurry_window_attention(q, k, v, 6, 6, 8), swa_plain(q, k, v, 6), tol=1e-9)


def test_scale_is_passed_through():
    q, k, v = rand(1, 10, 1, 4), rand(1, 10, 1, 4), rand(1, 10, 1, 4)
    close(ops.blurry_window_attention(q, k, v, 8, 4, 4, scale=0.3), bla_recurrence(q, k, v, 8, 4, scale=0.3))


def test_gradients_equal_those_of_the_plain_recurrence():
    q, k, v = rand(1, 11, 2, 3, grad=True), rand(1, 11, 2, 3, grad=True), rand(1, 11, 2, 3, grad=True)
    weights = rand(1, 11, 2, 3)
    grads = torch.autograd.grad((ops.blurry_window_attention(q, k, v, 6, 3, 4) * weights).sum(), (q, k, v))
    expected = torch.autograd.grad((bla_recurrence(q, k, v, 6, 3) * weights).sum(), (q, k, v))
    for actual, wanted in zip(grads, expected):
        close(actual, wanted)


def test_gradcheck():
    inputs = tuple(rand(1, 7, 1, 2, grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(lambda q, k, v: ops.blurry_window_attention(q, k, v, 4, 2, 3), inputs)


def test_float32_is_close_to_float64():
    q, k, v = rand(2, 40, 2, 8), rand(2, 40, 2, 8), rand(2, 40, 2, 8)
    out = ops.blurry_window_attention(q.float(), k.float(), v.float(), 16, 4, 8)
    assert out.dtype == torch.float32
    close(out.double(), ops.blurry_window_attention(q, k, v, 16, 4, 8), tol=1e-4)


@pytest.mark.parametrize("window,slots,chunk,seq", SHAPES)
def test_decode_steps_equal_the_forward(window, slots, chunk, seq):
    q, k, v = rand(2, seq, 3, 4), rand(2, seq, 3, 4), rand(2, seq, 3, 5)
    full = ops.blurry_window_attention(q, k, v, window, slots, chunk)
    state = ops.bla_initial_state(2, 3, 4, 5, slots, dtype=torch.float64)
    for t in range(seq):
        out, state = ops.bla_decode_step(q[:, t], k[:, t], v[:, t], state, window, slots, chunk)
        close(out, full[:, t])
    assert state.position == seq


def test_prefill_then_decode_equals_the_forward():
    q, k, v = rand(1, 25, 2, 4), rand(1, 25, 2, 4), rand(1, 25, 2, 4)
    full = ops.blurry_window_attention(q, k, v, 8, 4, 4)
    head, state = ops.blurry_window_attention_with_state(q[:, :17], k[:, :17], v[:, :17], None, 8, 4, 4)
    close(head, full[:, :17])
    assert state.position == 17
    for t in range(17, 25):
        out, state = ops.bla_decode_step(q[:, t], k[:, t], v[:, t], state, 8, 4, 4)
        close(out, full[:, t])


def test_decode_step_leaves_its_input_state_alone():
    state = ops.bla_initial_state(1, 1, 2, 2, 2, dtype=torch.float64)
    ops.bla_decode_step(rand(1, 1, 2), rand(1, 1, 2), rand(1, 1, 2), state, 4, 2)
    assert state.keys.abs().sum() == 0 and state.values.abs().sum() == 0


def test_bad_options_are_value_errors_with_the_ops_message():
    q = rand(1, 4, 1, 2)
    with pytest.raises(ValueError, match=r"^bla: slots \(9\) must be <= window \(8\): lower slots or raise window$"):
        ops.blurry_window_attention(q, q, q, 8, 9)
    with pytest.raises(ValueError, match=r"^bla: window \(0\) must be >= 1: raise window$"):
        ops.blurry_window_attention(q, q, q, 0, 1)


def test_a_wrong_state_shape_names_the_expected_one():
    state = ops.bla_initial_state(1, 1, 2, 2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"^bla: bla_decode_step: state must hold keys \[1, 1, 2, 2\] and values "
                                         r"\[1, 1, 2, 2\] \(batch, heads, slots, head_dim\); got keys \[1, 1, 3, 2\]"):
        ops.bla_decode_step(rand(1, 1, 2), rand(1, 1, 2), rand(1, 1, 2), state, 4, 2)
