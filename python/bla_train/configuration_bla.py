"""The Hugging Face configuration of a bla-train language model (`model_type: bla_lm`).

Holds the model description bla-export writes (bla_train.model.DESCRIPTION_KEYS:
vocab_size, d_model, layers, heads, mlp, mlp_ratio, short_conv, norm_eps,
tie_embeddings, layer_mixers) next to the usual Hugging Face keys. Without
transformers, BlaConfig is a plain holder of the same keys, so the model
builds and runs with torch alone.
"""

try:
    from transformers import PreTrainedConfig as PretrainedConfig  # its name from transformers 5 on
except ImportError:
    try:
        from transformers import PretrainedConfig
    except ImportError:  # torch alone: a stand-in with the attributes the model reads
        PretrainedConfig = None

if PretrainedConfig is None:
    class PretrainedConfig:
        def __init__(self, **kwargs):
            for key, value in kwargs.items():
                setattr(self, key, value)

        @classmethod
        def from_dict(cls, values: dict):
            return cls(**values)

        def to_dict(self) -> dict:
            return dict(self.__dict__)


class BlaConfig(PretrainedConfig):
    model_type = "bla_lm"

    def __init__(self, vocab_size=257, d_model=64, layers=2, heads=2, mlp="swiglu", mlp_ratio=4.0, short_conv=0,
                 norm_eps=1e-5, tie_embeddings=True, layer_mixers=None, **kwargs):
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.layers = layers
        self.heads = heads
        self.mlp = mlp
        self.mlp_ratio = mlp_ratio
        self.short_conv = short_conv
        self.norm_eps = norm_eps
        self.tie_embeddings = tie_embeddings
        self.layer_mixers = layer_mixers if layer_mixers is not None else []
        # The usual names, for tools that read them (lm-eval, generation).
        kwargs.setdefault("hidden_size", d_model)
        kwargs.setdefault("num_hidden_layers", layers)
        kwargs.setdefault("num_attention_heads", heads)
        # The head is the embedding's matrix inside the model when tied: nothing for transformers to tie.
        kwargs["tie_word_embeddings"] = False
        super().__init__(**kwargs)

    def description(self) -> dict:
        """The model description bla_train.model.LanguageModel takes."""
        return {key: getattr(self, key) for key in ("vocab_size", "d_model", "layers", "heads", "mlp", "mlp_ratio",
                                                    "short_conv", "norm_eps", "tie_embeddings", "layer_mixers")}
