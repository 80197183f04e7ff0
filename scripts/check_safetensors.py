#!/usr/bin/env python3
"""Reads a safetensors file written by bla-export with the Python standard
library only (numpy is used when installed, never torch), checks the layout
the format requires, and prints one line per tensor.

    scripts/check_safetensors.py runs/export/model.safetensors [--config runs/export/config.json]

Checks: the header is a JSON object; every tensor's data_offsets span
exactly prod(shape) * element size bytes; the spans tile the data with no
hole or overlap; the data starts at a multiple of 8. Exit status 1 on a
violation, with the reason.
"""
import argparse
import json
import math
import struct
import sys

SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8}


def values(dtype, raw):
    """The tensor's values as Python numbers (little-endian)."""
    if dtype == "BF16":  # the upper half of a float32
        return [struct.unpack("<f", b"\0\0" + raw[i:i + 2])[0] for i in range(0, len(raw), 2)]
    code = {"F64": "d", "F32": "f", "F16": "e", "I64": "q"}[dtype]
    return list(struct.unpack("<%d%s" % (len(raw) // SIZES[dtype], code), raw))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file")
    parser.add_argument("--config", help="config.json written next to it; its parameter count is checked")
    args = parser.parse_args()
    with open(args.file, "rb") as f:
        data = f.read()
    if len(data) < 8:
        sys.exit("%s: too short for the header length" % args.file)
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        sys.exit("%s: header length %d exceeds the file" % (args.file, n))
    header = json.loads(data[8:8 + n].decode("utf-8"))
    if (8 + n) % 8 != 0:
        sys.exit("%s: data does not start at a multiple of 8" % args.file)
    body = data[8 + n:]
    metadata = header.pop("__metadata__", {})
    spans = []
    total = 0
    for name, entry in header.items():
        size = SIZES.get(entry["dtype"])
        if size is None:
            sys.exit("%s: tensor %s has dtype %s" % (args.file, name, entry["dtype"]))
        begin, end = entry["data_offsets"]
        count = math.prod(entry["shape"])
        if end - begin != count * size:
            sys.exit("%s: tensor %s spans %d bytes, its shape needs %d" % (args.file, name, end - begin, count * size))
        spans.append((begin, end, name))
        total += count
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            sys.exit("%s: tensor %s starts at %d, the previous one ends at %d" % (args.file, name, begin, position))
        position = end
    if position != len(body):
        sys.exit("%s: %d data bytes, %d indexed" % (args.file, len(body), position))
    for begin, end, name in sorted(spans, key=lambda s: s[2]):
        entry = header[name]
        v = values(entry["dtype"], body[begin:end])
        stats = "min %.4g max %.4g mean %.4g" % (min(v), max(v), sum(v) / len(v)) if v else "empty"
        print("%-40s %-5s %-16s %s" % (name, entry["dtype"], entry["shape"], stats))
    print("%d tensors, %d values, metadata keys: %s" % (len(spans), total, ", ".join(sorted(metadata))))
    if args.config:
        with open(args.config) as f:
            config = json.load(f)
        if config.get("parameters") is not None and config["parameters"] > total:
            sys.exit("config.json says %d parameters, the file holds %d values" % (config["parameters"], total))
        print("config.json: %d layers, mixers %s, vocab %d" % (
            config["layers"], [m["type"] for m in config["layer_mixers"]], config["vocab_size"]))


if __name__ == "__main__":
    main()
