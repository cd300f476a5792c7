#!/usr/bin/env python3
"""kiln::rt::dequantizeRow (through kiln-dequantize) against ggml's own
dequantizers (ggml_get_type_traits(type)->to_float, through llama-ref
--dequantize), bit for bit, for every weight type a GGUF file may carry:
random blocks whose fp16 scales and mins are drawn from the extremes
(largest finite, smallest normal, subnormals, signed zeros, negatives) as
well as at random, with every quantized value; NaN- and infinity-free (a
scale's exponent is never all ones). The NumPy dequantizer of
kiln_export.dtypes is held to the same bits.

    dequantize.py --kiln-dequantize BIN --llama-ref BIN
"""
import argparse
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "compiler", "kiln_export"))
from kiln_export import dtypes  # noqa: E402

# Byte offsets of the fp16 fields (scale d, and min m / dmin) in each block.
HALVES = {"Q8_0": (0,), "Q4_0": (0,), "Q4_1": (0, 2), "Q5_0": (0,), "Q5_1": (0, 2),
          "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,)}
SPECIAL = [0x0000, 0x8000,              # +0, -0
           0x0001, 0x8001, 0x03FF, 0x83FF, 0x0200,  # subnormals
           0x0400, 0x8400,              # smallest normals
           0x7BFF, 0xFBFF,              # largest finite
           0x3C00, 0xBC00, 0x3555, 0x1234]


def finite_half(rng, n):
    h = rng.integers(0, 1 << 16, size=n, dtype=np.uint32)
    return np.where((h & 0x7C00) == 0x7C00, h & 0xFBFF, h).astype(np.uint16)


def blocks(dt, rng, nblocks):
    elems, nbytes = dtypes.BLOCKS[dt]
    if dt in ("F16", "BF16"):
        h = finite_half(rng, nblocks) if dt == "F16" else rng.integers(0, 1 << 16, nblocks)
        if dt == "BF16":  # finite: exponent not all ones
            h = np.where((h & 0x7F80) == 0x7F80, h & 0xFF7F, h)
        h = np.asarray(h, np.uint16)
        h[:len(SPECIAL)] = SPECIAL[:nblocks] if dt == "F16" else [0, 0x8000, 1, 0x8001, 0x007F,
                                                                  0x0080, 0x7F7F, 0xFF7F, 0x3F80,
                                                                  0xBF80, 0x4049, 0x1234, 0x0101,
                                                                  0x8080, 0x7F00][:nblocks]
        return h.astype("<u2").tobytes()
    raw = rng.integers(0, 256, size=(nblocks, nbytes), dtype=np.uint8)
    halves = finite_half(rng, nblocks * len(HALVES[dt])).reshape(nblocks, -1)
    for b in range(nblocks):  # the first blocks: every special scale, also as min
        if b < len(SPECIAL):
            halves[b, 0] = SPECIAL[b]
            halves[b, -1] = SPECIAL[(b * 7 + 3) % len(SPECIAL)]
    for i, at in enumerate(HALVES[dt]):
        raw[:, at:at + 2] = halves[:, i:i + 1].astype("<u2").view(np.uint8).reshape(nblocks, 2)
    # Extreme quantized bytes in a few blocks: all zeros, all ones.
    q0 = max(HALVES[dt]) + 2 if dt != "Q6_K" else 0
    q1 = nbytes if dt != "Q6_K" else 208
    raw[-1, q0:q1] = 0xFF
    raw[-2, q0:q1] = 0x00
    return raw.tobytes()


def run(cmd, data):
    p = subprocess.run(cmd, input=data, capture_output=True)
    if p.returncode:
        sys.exit("%s failed: %s" % (" ".join(cmd), p.stderr.decode()))
    return p.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln-dequantize", required=True)
    ap.add_argument("--llama-ref", required=True)
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    total = 0
    for dt in ["F16", "BF16"] + dtypes.QUANTIZED:
        elems, _ = dtypes.BLOCKS[dt]
        nblocks = 4096 if elems == 1 else (512 if elems == 32 else 128)
        data = blocks(dt, rng, nblocks)
        ours = run([args.kiln_dequantize, dt], data)
        ggml = run([args.llama_ref, "--dequantize", dt], data)
        n = nblocks * elems
        assert len(ours) == len(ggml) == 4 * n, (dt, len(ours), len(ggml))
        a, b = np.frombuffer(ours, "<u4"), np.frombuffer(ggml, "<u4")
        diff = np.nonzero(a != b)[0]
        if len(diff):
            i = diff[0]
            sys.exit("%s: %d of %d floats differ; first at %d: kiln %08x ggml %08x"
                     % (dt, len(diff), n, i, a[i], b[i]))
        f = b.view(np.float32)
        assert np.all(np.isfinite(f)), dt
        py = dtypes.dequantize(dt, np.frombuffer(data, np.uint8), [n]).view("<u4")
        pd = np.nonzero(py != b)[0]
        if len(pd):
            i = pd[0]
            sys.exit("%s: kiln_export.dtypes differs in %d floats; first at %d: %08x vs %08x"
                     % (dt, len(pd), i, py[i], b[i]))
        print("%-4s %6d floats bit-identical to ggml (%d zero, %d negative, max |x| %.3g)"
              % (dt, n, int(np.sum(f == 0)), int(np.sum(f < 0)), float(np.max(np.abs(f)))))
        total += n
    print("all %d floats bit-identical" % total)


if __name__ == "__main__":
    main()
