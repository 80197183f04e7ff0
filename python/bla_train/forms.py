"""Which forms of the ops the layers run: torch.ops.bla's (bla_train.ops) where libbla_torch_ops.so is
loaded, else plain PyTorch (bla_train.naive).

`auto` (the default) takes the library when it is registered already or can be loaded: from
BLA_TORCH_OPS (the file or its folder), else by importing an installed bla_train package. The
environment variable BLA_OP_FORMS (auto, torch_ops or naive) or `use()` chooses otherwise. This file
goes into a Hugging Face export with the layers (bla-export --format hf), so it needs nothing but torch.
"""

import importlib
import os
from pathlib import Path

import torch

from .naive import FORMS as NAIVE
from .ops import FORMS as TORCH_OPS

CHOICES = ("auto", "torch_ops", "naive")
_chosen = None


def _registered() -> bool:
    try:
        torch.ops.bla.blurry_window_attention  # raises where no library registered the op
        return True
    except (AttributeError, RuntimeError):
        return False


def library_loadable() -> bool:
    """Whether torch.ops.bla is registered, loading the library if it can be found."""
    if _registered():
        return True
    explicit = os.environ.get("BLA_TORCH_OPS")
    try:
        if explicit:
            path = Path(explicit)
            torch.ops.load_library(str(path / "libbla_torch_ops.so" if path.is_dir() else path))
        else:
            importlib.import_module("bla_train")
    except Exception:  # no library, or one built for another torch: the plain forms serve
        return False
    return _registered()


def use(choice: str) -> None:
    """Picks the forms for the layers from now on: auto, torch_ops or naive (auto decides here, once)."""
    global _chosen
    if choice not in CHOICES:
        raise ValueError(f"op forms '{choice}': choose one of {', '.join(CHOICES)}")
    loadable = choice != "naive" and library_loadable()
    if choice == "torch_ops" and not loadable:
        raise RuntimeError("op forms 'torch_ops': torch.ops.bla is not loaded and libbla_torch_ops.so was not found; "
                           "set BLA_TORCH_OPS to the library the build wrote, or use 'naive'")
    _chosen = TORCH_OPS if loadable else NAIVE


def current():
    """The module of op functions in use: bla_train.ops or bla_train.naive."""
    if _chosen is None:
        use(os.environ.get("BLA_OP_FORMS", "auto"))
    return _chosen


def name() -> str:
    """'torch_ops' or 'naive': what current() gives."""
    return "naive" if current() is NAIVE else "torch_ops"
