"""torch.ops.bla SSD ops against the recurrence written here in float64, finite differences,
and the decode step against the full forward."""

import pytest
import torch

from bla_train import ops

from conftest import close, rand


def ssd_recurrence(x, dt, A, Bm, Cm, D=None):
    """h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t^T, y_t = C_t^T h_t + D x_t; head h reads group h // (H / G)."""
    B, T, H, P = x.shape
    G, N = Bm.shape[2], Bm.shape[3]
    group = torch.arange(H) // (H // G)
    h = torch.zeros(B, H, N, P, dtype=x.dtype)
    out = []
    for t in range(T):
        decay = (dt[:, t] * A).exp()[..., None, None]
        h = decay * h + dt[:, t, :, None, None] * Bm[:, t, group, :, None] * x[:, t, :, None, :]
        y = (Cm[:, t, group, None, :] @ h).squeeze(-2)
        if D is not None:
            y = y + D[:, None] * x[:, t]
        out.append(y)
    return torch.stack(out, 1)


def inputs(B=2, T=19, H=4, P=3, G=2, N=5, grad=False):
    x = rand(B, T, H, P, grad=grad)
    dt = torch.nn.functional.softplus(torch.randn(B, T, H, dtype=torch.float64)).requires_grad_(grad)
    A = (-torch.rand(H, dtype=torch.float64) * 4 - 0.5).requires_grad_(grad)
    return x, dt, A, rand(B, T, G, N, grad=grad), rand(B, T, G, N, grad=grad), rand(H, grad=grad)


@pytest.mark.parametrize("chunk", [1, 4, 8, 64])
def test_chunked_form_equals_the_recurrence(chunk):
    x, dt, A, Bm, Cm, D = inputs()
    close(ops.selective_state_space(x, dt, A, Bm, Cm, D, chunk), ssd_recurrence(x, dt, A, Bm, Cm, D))
    close(ops.selective_state_space(x, dt, A, Bm, Cm, None, chunk), ssd_recurrence(x, dt, A, Bm, Cm))
    close(ops.selective_state_space_reference(x, dt, A, Bm, Cm, D), ssd_recurrence(x, dt, A, Bm, Cm, D))


def test_gradcheck():
    args = inputs(B=1, T=5, H=2, P=2, G=1, N=2, grad=True)
    assert torch.autograd.gradcheck(lambda *a: ops.selective_state_space(*a, 2), args)


def test_with_state_then_decode_equals_the_forward():
    x, dt, A, Bm, Cm, D = inputs()
    full = ops.selective_state_space(x, dt, A, Bm, Cm, D, 4)
    head, state = ops.selective_state_space_with_state(x[:, :7], dt[:, :7], A, Bm[:, :7], Cm[:, :7], D,
                                                       ops.ssd_initial_state(2, 4, 5, 3, torch.float64), 4)
    close(head, full[:, :7])
    for t in range(7, 19):
        y, state = ops.ssd_decode_step(x[:, t], dt[:, t], A, Bm[:, t], Cm[:, t], D, state)
        close(y, full[:, t])


def test_a_wrong_state_shape_is_a_value_error():
    x, dt, A, Bm, Cm, D = inputs()
    with pytest.raises(ValueError, match=r"^bla: ssd state must be \(batch, heads, d_state, head_dim\) = \[2, 4, 5, 3\]; "
                                         r"got \[2, 4, 5, 2\]; create it with ssd_initial_state$"):
        ops.ssd_decode_step(x[:, 0], dt[:, 0], A, Bm[:, 0], Cm[:, 0], D, torch.zeros(2, 4, 5, 2, dtype=torch.float64))
