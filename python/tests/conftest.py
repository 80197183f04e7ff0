"""Shared helpers for the tests of torch.ops.bla.* (run by ctest as `python.ops`).

The ops library comes from BLA_TORCH_OPS (set by ctest to the build's
library) or from bla_train/lib/; importing bla_train loads it.
"""

import pytest
import torch

import bla_train  # noqa: F401  (registers torch.ops.bla)


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


def rand(*shape, dtype=torch.float64, grad=False):
    return torch.randn(*shape, dtype=dtype).requires_grad_(grad)


def log_gate(*shape, dtype=torch.float64, grad=False):
    """log(sigmoid(u)) - a small decay in (-inf, 0), as the layers make gates."""
    return torch.nn.functional.logsigmoid(torch.randn(*shape, dtype=dtype) + 1.0).detach().requires_grad_(grad)


def close(actual, expected, tol=1e-10):
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol)
