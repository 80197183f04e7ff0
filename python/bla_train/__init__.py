"""bla-train's mixer ops from PyTorch.

Importing the package loads libbla_torch_ops.so (bla_train._library says where
it is looked for), which registers torch.ops.bla.*. `bla_train.ops` holds typed
wrappers, `bla_train.naive` the same ops in plain PyTorch, `bla_train.layers`
nn.Module mixer layers whose parameter names are the C++ layers' (so
bla-export's weights load into them), `bla_train.model` the whole language
model (`load_export(DIR)`), and `bla_train.modeling_bla` the Hugging Face
model of `bla-export --format hf` (imported on demand: it looks for transformers).
"""

from . import _library

library_path = _library.load()

from . import forms, layers, model, naive, ops, safetensors  # noqa: E402  (after the ops are registered)

__all__ = ["forms", "layers", "library_path", "model", "naive", "ops", "safetensors"]
