"""Finds and loads libbla_torch_ops.so, the library that registers torch.ops.bla.*.

Where it is looked for, first match wins:
  1. the environment variable BLA_TORCH_OPS (the file, or the folder holding it);
  2. bla_train/lib/ beside this file, where the CMake build writes it
     (python/bla_train/lib/ of the source tree), and from where
     `pip install ./python` copies it into the installed package.
The library links the build's libbla.so (by its build path), so keep the build
folder that made it.
"""

import os
from pathlib import Path

import torch

LIBRARY_NAME = "libbla_torch_ops.so"
ENVIRONMENT_VARIABLE = "BLA_TORCH_OPS"

_loaded = None


def library_path() -> Path:
    """The library load() would load; FileNotFoundError says how to get one."""
    explicit = os.environ.get(ENVIRONMENT_VARIABLE)
    if explicit:
        path = Path(explicit)
        if path.is_dir():
            path = path / LIBRARY_NAME
        if not path.is_file():
            raise FileNotFoundError(
                f"bla_train: {ENVIRONMENT_VARIABLE}={explicit} names no file {LIBRARY_NAME}; "
                "point it at the library the build wrote, or unset it")
        return path
    beside = Path(__file__).resolve().parent / "lib" / LIBRARY_NAME
    if beside.is_file():
        return beside
    raise FileNotFoundError(
        f"bla_train: {LIBRARY_NAME} not found in {beside.parent}: build it first "
        "(scripts/build.sh bla_torch_ops writes it into python/bla_train/lib/) and then "
        f"`pip install ./python`, or set {ENVIRONMENT_VARIABLE} to its path")


def load() -> Path:
    """Loads the library once per process; returns its path."""
    global _loaded
    if _loaded is None:
        path = library_path()
        torch.ops.load_library(str(path))
        _loaded = path
    return _loaded
