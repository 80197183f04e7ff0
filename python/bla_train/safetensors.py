"""Reads bla-export's model.safetensors without the safetensors package (Debian has none).

The format: an 8-byte little-endian header length, a JSON header mapping each
name to {dtype, shape, data_offsets} (offsets into the bytes after the header),
then the tensors' bytes, little-endian and row-major.
"""

import json
import struct
from pathlib import Path
from typing import Dict, Union

import torch

_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}


def load_file(path: Union[str, Path]) -> Dict[str, torch.Tensor]:
    """Every tensor of a .safetensors file by name, on the CPU."""
    data = Path(path).read_bytes()
    (header_size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_size])
    payload = memoryview(data)[8 + header_size:]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] not in _DTYPES:
            raise ValueError(f"{path}: tensor {name} has dtype {entry['dtype']}, which bla_train cannot read")
        begin, end = entry["data_offsets"]
        flat = torch.frombuffer(bytearray(payload[begin:end]), dtype=_DTYPES[entry["dtype"]]) if end > begin else \
            torch.empty(0, dtype=_DTYPES[entry["dtype"]])
        tensors[name] = flat.reshape(entry["shape"])
    return tensors
