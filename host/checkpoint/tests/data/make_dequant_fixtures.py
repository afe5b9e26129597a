#!/usr/bin/env python3
"""Writes dequant_fixtures.json: random blocks of each quantisation type and their f32 values
as dequantised by llama.cpp's gguf-py (gguf.quants.dequantize), the oracle for
ponder-checkpoint's own dequantisers. Run with a Python that has the `gguf` package."""

import json
import pathlib

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

rng = np.random.default_rng(20261123)

# type -> byte offsets of f16 scale fields inside one block (set to sane values: random bits
# could be NaN or infinite).
TYPES = {
    T.Q4_0: [0],
    T.Q4_1: [0, 2],
    T.Q5_0: [0],
    T.Q5_1: [0, 2],
    T.Q8_0: [0],
    T.Q4_K: [0, 2],
    T.Q6_K: [208],
    T.F16: None,
    T.BF16: None,
}

cases = []
for qtype, scale_offsets in TYPES.items():
    block_size, type_size = quants.GGML_QUANT_SIZES[qtype]
    n_blocks = 3 if block_size > 1 else 40
    raw = bytearray(rng.integers(0, 256, size=n_blocks * type_size, dtype=np.uint8).tobytes())
    if scale_offsets is not None:
        for b in range(n_blocks):
            for off in scale_offsets:
                value = np.float16(rng.uniform(-0.1, 0.1))
                raw[b * type_size + off : b * type_size + off + 2] = value.tobytes()
    elif qtype == T.F16:
        raw = bytearray(rng.uniform(-4, 4, size=n_blocks).astype(np.float16).tobytes())
    else:  # BF16: the upper halves of random f32 values
        f32 = rng.uniform(-4, 4, size=n_blocks).astype(np.float32)
        raw = bytearray((f32.view(np.uint32) >> 16).astype(np.uint16).tobytes())
    data = np.frombuffer(bytes(raw), dtype=np.uint8).reshape(1, -1)
    values = quants.dequantize(data, qtype).astype(np.float32).reshape(-1)
    cases.append(
        {
            "type": qtype.name,
            "type_id": int(qtype),
            "bytes_hex": bytes(raw).hex(),
            "values": [float(v) for v in values],
        }
    )

out = pathlib.Path(__file__).with_name("dequant_fixtures.json")
out.write_text(json.dumps({"producer": "make_dequant_fixtures.py (gguf-py quants.dequantize)", "cases": cases}) + "\n")
print(f"wrote {out} ({len(cases)} cases)")
