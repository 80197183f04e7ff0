"""The byte-level tokenizer of bla-train text models for Hugging Face transformers.

Ids 0..255 are the bytes of the UTF-8 text and 256 marks the end of a
document (src/bla/data/tokenizer.h, ByteTokenizer). A token is written as the
one character of its byte's code point (latin-1), so tokens and bytes map one
to one; decoding joins the bytes and reads them as UTF-8.
"""

from typing import Dict, List, Optional, Tuple

from transformers import PreTrainedTokenizer

END_OF_DOCUMENT = "<|end_of_document|>"
END_OF_DOCUMENT_ID = 256


class BlaByteTokenizer(PreTrainedTokenizer):
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, eos_token: str = END_OF_DOCUMENT, **kwargs):
        kwargs.setdefault("padding_side", "right")  # the recurrent state must not take in left padding
        kwargs.setdefault("clean_up_tokenization_spaces", False)  # bytes back as they were: no " ," -> ","
        super().__init__(eos_token=eos_token, pad_token=kwargs.pop("pad_token", eos_token), **kwargs)

    @property
    def vocab_size(self) -> int:
        return 257

    def get_vocab(self) -> Dict[str, int]:
        vocab = {chr(i): i for i in range(256)}
        vocab[END_OF_DOCUMENT] = END_OF_DOCUMENT_ID
        return vocab

    def _tokenize(self, text: str, **kwargs) -> List[str]:
        return [chr(b) for b in text.encode("utf-8")]

    def _convert_token_to_id(self, token: str) -> int:
        if token == END_OF_DOCUMENT:
            return END_OF_DOCUMENT_ID
        if len(token) != 1 or ord(token) > 255:
            raise ValueError(f"byte tokenizer: '{token}' is not a byte token")
        return ord(token)

    def _convert_id_to_token(self, index: int) -> str:
        return END_OF_DOCUMENT if index == END_OF_DOCUMENT_ID else chr(index)

    def convert_tokens_to_string(self, tokens: List[str]) -> str:
        data = bytes(ord(t) for t in tokens if len(t) == 1 and ord(t) < 256)
        return data.decode("utf-8", errors="replace")

    def save_vocabulary(self, save_directory: str, filename_prefix: Optional[str] = None) -> Tuple[str, ...]:
        return ()  # the vocabulary is the 256 bytes and the end mark: no file
