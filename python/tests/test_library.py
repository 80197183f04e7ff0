"""The library registers every op under torch.ops.bla, and the package finds it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import bla_train

OPS = [
    "blurry_window_attention", "blurry_window_attention_chunked", "blurry_window_attention_reference",
    "blurry_window_attention_with_state", "bla_decode_step",
    "sliding_window_attention", "sliding_window_attention_reference",
    "gated_linear_attention", "gated_linear_attention_reference", "gated_linear_attention_with_state",
    "gla_decode_step",
    "gated_slot_attention", "gated_slot_attention_reference", "gated_slot_attention_with_state", "gsa_decode_step",
    "selective_state_space", "selective_state_space_reference", "selective_state_space_with_state",
    "ssd_decode_step",
    "gated_window_attention", "gated_window_attention_reference", "gated_window_decode_step",
]


@pytest.mark.parametrize("name", OPS)
def test_every_op_is_registered_with_its_wrapper(name):
    op = getattr(torch.ops.bla, name)
    assert str(op.default._schema).startswith(f"bla::{name}(")
    assert callable(getattr(bla_train.ops, name))


def test_blurry_window_attention_schema_is_the_documented_one():
    assert str(torch.ops.bla.blurry_window_attention.default._schema) == (
        "bla::blurry_window_attention(Tensor q, Tensor k, Tensor v, int window, int slots, int chunk=64, "
        "float scale=0.) -> Tensor")


def test_the_loaded_library_is_the_one_bla_torch_ops_names():
    explicit = os.environ.get("BLA_TORCH_OPS")
    expected = Path(explicit) if explicit else Path(bla_train.__file__).parent / "lib" / "libbla_torch_ops.so"
    assert bla_train.library_path == expected


def test_a_wrong_bla_torch_ops_is_an_error_naming_it(tmp_path):
    missing = tmp_path / "nowhere.so"
    env = dict(os.environ, BLA_TORCH_OPS=str(missing))
    run = subprocess.run([sys.executable, "-c", "import bla_train"], env=env, capture_output=True, text=True)
    assert run.returncode != 0
    assert f"BLA_TORCH_OPS={missing} names no file libbla_torch_ops.so" in run.stderr
