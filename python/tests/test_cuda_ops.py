"""The ops that run CUDA kernels (BLA, SWA with and without a bias, GatedFWA's gated window, GLA
and GSA's gated recurrences, the Mamba2-like mixer's SSD) called from Python on CUDA tensors, held to the same op on the CPU in float64: the output and
the gradients of q, k, v (and of the gate or bias). Skipped without a CUDA device, so they run
on the GPU machine (scripts/gpu_python.sh), not in CI."""

import pytest
import torch

from bla_train import ops

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

B, T, H, D = 2, 300, 2, 64


def relative_error(x, ref):
    ref = ref.double().cpu()
    return ((x.double().cpu() - ref).norm() / ref.norm()).item()


def log_sigmoid_gate(*shape):
    return torch.nn.functional.logsigmoid(torch.randn(*shape, dtype=torch.float64) + 3.0)


OPS = {
    "bla": (lambda q, k, v, extra: ops.blurry_window_attention(q, k, v, 128, 16), None),
    "swa": (lambda q, k, v, extra: ops.sliding_window_attention(q, k, v, 64), None),
    "swa_bias": (lambda q, k, v, bias: ops.sliding_window_attention(q, k, v, 64, 0.0, bias),
                 lambda: log_sigmoid_gate(B, T, H).cumsum(1)),
    "gatedfwa": (lambda q, k, v, gate: ops.gated_window_attention(q, k, v, gate, 64), lambda: log_sigmoid_gate(B, T, H)),
    # GLA and GSA take their gates in the dtype of q (the layers cast them so).
    "gla": (lambda q, k, v, gate: ops.gated_linear_attention(q, k, v, gate.to(q.dtype)),
            lambda: log_sigmoid_gate(B, T, H, D) / 16),
    "gsa": (lambda q, k, v, gate: ops.gated_slot_attention(q, k, v, gate.to(q.dtype)), lambda: log_sigmoid_gate(B, T, H, 32)),
    # SSD with x = v, B = k, C = q (one group per head), dt the extra input, A and D fixed. With
    # gradients it runs its LibTorch form on CUDA (faster than its kernels' backward; mamba2.h).
    "ssd": (lambda q, k, v, dt: ops.selective_state_space(
        v, dt, -torch.linspace(0.5, 4.0, H, dtype=dt.dtype, device=dt.device), k, q,
        torch.linspace(-1.0, 1.0, H, dtype=dt.dtype, device=dt.device)),
            lambda: torch.nn.functional.softplus(torch.rand(B, T, H, dtype=torch.float64) * 5 - 6)),
}

# float32 tolerances of the ops whose kernels round float32 operands to tf32 on the tensor cores.
TF32_TOLERANCE = {"ssd": 5e-3}


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.bfloat16, 3e-2)], ids=["f32", "bf16"])
@pytest.mark.parametrize("name", sorted(OPS))
def test_cuda_op_equals_the_cpu_op_in_float64(name, dtype, tol):
    op, make_extra = OPS[name]
    # Inputs rounded to the dtype first, so both sides see the same numbers.
    inputs = [torch.randn(B, T, H, D, dtype=torch.float64).to(dtype).double() for _ in range(3)]
    extra = make_extra().float().double() if make_extra else None
    grad_out = torch.randn(B, T, H, D, dtype=torch.float64).to(dtype).double()

    def run(device, tensor_dtype, extra_dtype):
        leaves = [x.to(device, tensor_dtype).detach().requires_grad_(True) for x in inputs]
        e = extra.to(device, extra_dtype).detach().requires_grad_(True) if extra is not None else None
        out = op(*leaves, e)
        out.backward(grad_out.to(device, tensor_dtype))
        return [out.detach()] + [x.grad for x in leaves] + ([e.grad] if e is not None else [])

    expected = run("cpu", torch.float64, torch.float64)
    got = run("cuda", dtype, torch.float32)
    if dtype == torch.float32:
        tol = TF32_TOLERANCE.get(name, tol)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g.is_cuda and torch.isfinite(g).all(), i
        assert relative_error(g, e) < tol, (i, relative_error(g, e))
