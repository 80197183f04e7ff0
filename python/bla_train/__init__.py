"""bla-train's mixer ops from PyTorch.

Importing the package loads libbla_torch_ops.so (bla_train._library says where
it is looked for), which registers torch.ops.bla.*. `bla_train.ops` holds typed
wrappers, `bla_train.layers` nn.Module mixer layers whose parameter names are
the C++ layers' (so bla-export's weights load into them).
"""

from . import _library

library_path = _library.load()

from . import layers, ops, safetensors  # noqa: E402  (after the ops are registered)

__all__ = ["layers", "library_path", "ops", "safetensors"]
