"""A bla-train language model for Hugging Face transformers (`bla-export CKPT --out DIR --format hf`).

    model = AutoModelForCausalLM.from_pretrained(DIR, trust_remote_code=True)

BlaForCausalLM wraps bla_train.model.LanguageModel (as `model`, so the
weights are named model.<C++ name>) and decodes over each mixer's bounded
state: `past_key_values` is a BlaCache holding every layer's recurrent state
(BLA's slots, GLA's and GSA's matrices, Mamba2's SSM and convolution state,
the last W keys of SWA and gated FWA, all keys of full attention), so
`generate` feeds one token a step. The mixers run torch.ops.bla where
libbla_torch_ops.so loads (bla_train.forms) and plain PyTorch otherwise.
Without transformers this file still imports: LanguageModel, BlaCache and
`load_core(DIR)` serve torch alone, and BlaForCausalLM is only defined where
transformers imports.
"""

from pathlib import Path
from typing import List, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .configuration_bla import BlaConfig
from .forms import name as op_forms
from .model import LanguageModel, load_export
# transformers copies into its module cache only the files a local folder's modeling file imports itself, not
# what those import in turn: so every file the model needs is named here (python/tests/test_hf_export.py checks).
from .layers import layer_from_export  # noqa: F401,E402
from .naive import FORMS as _naive_forms  # noqa: F401,E402
from .ops import FORMS as _torch_ops_forms  # noqa: F401,E402
from .safetensors import load_file as _load_file  # noqa: F401,E402
from .states import BlaState  # noqa: F401,E402

__all__ = ["BlaCache", "BlaConfig", "LanguageModel", "load_core", "op_forms"]


def load_core(folder: Union[str, Path]) -> LanguageModel:
    """The plain nn.Module of an export of --format hf (weights model.*), without transformers."""
    return load_export(folder, prefix="model.")


def _map_tensors(value, fn):
    if isinstance(value, Tensor):
        return fn(value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a NamedTuple state
        return type(value)(*(_map_tensors(v, fn) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_map_tensors(v, fn) for v in value)
    return value


class BlaCache:
    """Every layer's decoding state after `seen` tokens: what `past_key_values` carries between steps.

    Its size does not grow with the context for the bounded mixers (all but full attention)."""

    def __init__(self, layers: List, seen: int):
        self.layers = layers
        self.seen = seen

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen

    def reorder_cache(self, beam_idx: Tensor) -> "BlaCache":
        """The states of the sequences beam_idx picks (beam search)."""
        return BlaCache(_map_tensors(self.layers, lambda t: t.index_select(0, beam_idx.to(t.device))), self.seen)

    def numel(self) -> int:
        """Numbers held, all sequences together."""
        total = []
        _map_tensors(self.layers, lambda t: total.append(t.numel()))
        return sum(total)


def _check_padding(attention_mask: Optional[Tensor]) -> None:
    """Right padding is harmless to a causal model; padding before a token would enter the recurrent state."""
    if attention_mask is None:
        return
    mask = attention_mask.to(torch.bool)
    if (mask[:, 1:] & ~mask[:, :-1]).any():
        raise ValueError("bla_lm: a padding token comes before a real token (left padding); the recurrent state "
                         "would take it in. Pad on the right (tokenizer.padding_side = 'right') or run batch size 1")


try:
    from transformers import PreTrainedModel
    from transformers.modeling_outputs import CausalLMOutputWithPast
    try:
        from transformers import GenerationMixin
    except ImportError:  # transformers before 4.45: PreTrainedModel generates by itself
        GenerationMixin = object
    _HAVE_TRANSFORMERS = True
except ImportError:
    _HAVE_TRANSFORMERS = False

if _HAVE_TRANSFORMERS:

    class BlaForCausalLM(PreTrainedModel, GenerationMixin):
        config_class = BlaConfig
        base_model_prefix = "model"
        main_input_name = "input_ids"
        _is_stateful = True  # the cache is a recurrent state: no default DynamicCache, no assisted decoding
        _no_split_modules = ["Block"]

        def __init__(self, config: BlaConfig):
            super().__init__(config)
            self.model = LanguageModel(config.description())
            self.post_init()

        @classmethod
        def _supports_default_dynamic_cache(cls) -> bool:
            return False  # generate must not make a DynamicCache: forward makes and returns a BlaCache

        def _init_weights(self, module):
            """Weights come from the checkpoint; the C++ initialisation is not repeated here."""

        def get_input_embeddings(self):
            return self.model.embedding

        def set_input_embeddings(self, value):
            self.model.embedding = value

        def get_output_embeddings(self):
            return self.model.head  # None when tied: the head is the embedding's matrix

        def forward(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None,
                    past_key_values: Optional[BlaCache] = None, use_cache: Optional[bool] = None,
                    labels: Optional[Tensor] = None, return_dict: Optional[bool] = None, **kwargs):
            _check_padding(attention_mask)
            if past_key_values is not None and not isinstance(past_key_values, BlaCache):
                past_key_values = None  # a cache object transformers made for another kind of model: start afresh
            # A cache only when asked (generate asks): scoring a sequence takes the parallel forward.
            if past_key_values is not None or use_cache:
                state = past_key_values.layers if past_key_values is not None else None
                seen = past_key_values.seen if past_key_values is not None else 0
                logits, state = self.model.prefill(input_ids, state)
                cache = BlaCache(state, seen + input_ids.shape[1])
            else:
                logits, cache = self.model(input_ids), None
            loss = None
            if labels is not None:
                loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                       labels[:, 1:].reshape(-1), ignore_index=-100)
            output = CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=cache)
            return output if return_dict is not False else output.to_tuple()

        def prepare_inputs_for_generation(self, input_ids: Tensor, past_key_values: Optional[BlaCache] = None,
                                          attention_mask: Optional[Tensor] = None, use_cache: Optional[bool] = None,
                                          **kwargs):
            if isinstance(past_key_values, BlaCache):
                input_ids = input_ids[:, past_key_values.seen:]  # the state holds the rest
            else:
                past_key_values = None
            return {"input_ids": input_ids, "past_key_values": past_key_values, "attention_mask": attention_mask,
                    "use_cache": True if use_cache is None else use_cache}

        def _reorder_cache(self, past_key_values: BlaCache, beam_idx: Tensor) -> BlaCache:
            return past_key_values.reorder_cache(beam_idx)

    __all__.append("BlaForCausalLM")
