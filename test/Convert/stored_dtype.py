#!/usr/bin/env python3
"""kiln-convert --dtype stored keeps a GGUF file's matrices byte for byte
(F16, BF16, Q8_0; GPT-2's fused QKV split into row ranges of its blocks) and
writes 1-D tensors as f32; --dtype f32 widens every tensor exactly (the
values equal the GGUF bytes dequantized). The .kiln files are read back with
the Python reader and compared with the GGUF's own tensor bytes, read by the
small independent parser below; the runtime's reader accepts them too
(kiln-convert --tokenize and --info load them).

With --llama-quantize, also the files llama.cpp's llama-quantize writes for
its common recipes (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K_M, Q5_K_M, Q6_K: the
types Q4_0 ... Q6_K), from an F32 GGUF whose rows are multiples of 256; the
f32 conversion of the Q4_K_M file is compiled, and its logits compared with
kiln_export.reference_eval on the same (exactly widened) weights.

    stored_dtype.py --kiln-bin DIR --work DIR [--llama-quantize BIN]
"""
import json
import argparse
import os
import struct
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "test", "lib"))
sys.path.insert(0, os.path.join(ROOT, "test", "e2e"))
sys.path.insert(0, os.path.join(ROOT, "compiler", "kiln_export"))
import gguf_writer  # noqa: E402
import kiln_export  # noqa: E402
import reference  # noqa: E402
from kiln_export import dtypes  # noqa: E402

GGML_NAMES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0",
              12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 30: "BF16"}


def gguf_tensors(path):
    """{name: (type name, row-major shape, bytes)} of a GGUF v3 file."""
    data = open(path, "rb").read()
    assert data[:4] == b"GGUF"
    pos = 8
    n_tensors, n_kv = struct.unpack_from("<QQ", data, pos)
    pos += 16
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def string(pos):
        n = struct.unpack_from("<Q", data, pos)[0]
        return data[pos + 8:pos + 8 + n].decode(), pos + 8 + n

    def skip(pos, t):
        if t == 8:
            return string(pos)[1]
        if t == 9:
            et, n = struct.unpack_from("<IQ", data, pos)
            pos += 12
            for _ in range(n):
                pos = skip(pos, et)
            return pos
        return pos + sizes[t]

    alignment = 32
    for _ in range(n_kv):
        key, pos = string(pos)
        t = struct.unpack_from("<I", data, pos)[0]
        if key == "general.alignment":
            alignment = struct.unpack_from("<I", data, pos + 4)[0]
        pos = skip(pos + 4, t)
    infos = []
    for _ in range(n_tensors):
        name, pos = string(pos)
        nd = struct.unpack_from("<I", data, pos)[0]
        dims = struct.unpack_from("<%dQ" % nd, data, pos + 4)
        pos += 4 + 8 * nd
        t, off = struct.unpack_from("<IQ", data, pos)
        pos += 12
        infos.append((name, GGML_NAMES[t], list(reversed(dims)), off))
    start = (pos + alignment - 1) // alignment * alignment
    out = {}
    for name, t, shape, off in infos:
        n = dtypes.storage_bytes(t, shape)
        out[name] = (t, shape, data[start + off:start + off + n])
    return out


def convert(kiln_bin, src, dst, dtype):
    subprocess.check_call([os.path.join(kiln_bin, "kiln-convert"), src, "-o", dst,
                           "--dtype", dtype])
    # The runtime's reader accepts it (--tokenize loads it with loadModelBuffer).
    subprocess.check_call([os.path.join(kiln_bin, "kiln-convert"), "--tokenize", dst, "-p", "ab"],
                          stdout=subprocess.DEVNULL)
    return kiln_export.load_model(dst, check=False)


def expected(name, gguf):
    """(type, shape, bytes) the .kiln weight `name` comes from: the GGUF
    tensor, or a row range of GPT-2's fused attn_qkv."""
    if name in gguf:
        return gguf[name]
    blk, n, which, part = name.split(".")  # blk.N.attn_q.weight|bias
    layer = blk + "." + n
    t, shape, raw = gguf[layer + ".attn_qkv." + part]
    j = {"attn_q": 0, "attn_k": 1, "attn_v": 2}[which]
    rows = shape[0] // 3
    row_bytes = len(raw) // shape[0]
    return t, [rows] + shape[1:], raw[j * rows * row_bytes:(j + 1) * rows * row_bytes]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln-bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--llama-quantize")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    llama = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
                 vocab_size=300, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2)
    gpt2 = dict(n_embd=64, n_head=4, n_layer=2, n_positions=32, vocab_size=300,
                layer_norm_epsilon=1e-5)
    inputs = []
    for dt in ("F16", "BF16", "Q8_0"):
        sd = reference.randomize(reference.Llama(llama), 1).state_dict()
        p = os.path.join(args.work, "llama-%s.gguf" % dt)
        gguf_writer.write_llama_gguf(p, sd, llama, dtype=dt)
        inputs.append((p, dt))
    for dt in ("Q8_0", "F16"):
        sd = reference.randomize(reference.GPT2(gpt2), 2).state_dict()
        p = os.path.join(args.work, "gpt2-%s.gguf" % dt)
        gguf_writer.write_gpt2_gguf(p, sd, gpt2, dtype=dt)
        inputs.append((p, dt))

    if args.llama_quantize:
        wide = dict(llama, hidden_size=256, intermediate_size=512, vocab_size=300)
        sd = reference.randomize(reference.Llama(wide), 3).state_dict()
        base = os.path.join(args.work, "llama256-F32.gguf")
        gguf_writer.write_llama_gguf(base, sd, wide, dtype="F32")
        for recipe, dt in (("Q4_0", "Q4_0"), ("Q4_1", "Q4_1"), ("Q5_0", "Q5_0"),
                           ("Q5_1", "Q5_1"), ("Q8_0", "Q8_0"), ("Q4_K_M", "Q4_K"),
                           ("Q5_K_M", "Q5_K"), ("Q6_K", "Q6_K")):
            p = os.path.join(args.work, "llama256-%s.gguf" % recipe)
            subprocess.run([args.llama_quantize, base, p, recipe, "1"], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            inputs.append((p, dt))

    checked = 0
    for path, dt in inputs:
        gguf = gguf_tensors(path)
        assert any(t == dt for t, _, _ in gguf.values()), (path, dt)
        stored = convert(args.kiln_bin, path, path + ".stored.kiln", "stored")
        wide = convert(args.kiln_bin, path, path + ".f32.kiln", "f32")
        assert list(stored.weights) == list(wide.weights)
        for name in stored.weights:
            t, shape, raw = expected(name, gguf)
            values = dtypes.dequantize(t, raw, shape)
            if len(shape) >= 2:
                assert stored.weight_dtypes[name] == t, (path, name, stored.weight_dtypes[name])
                assert bytes(stored.weight_bytes[name]) == raw, (path, name)
            else:
                assert stored.weight_dtypes[name] == "F32", (path, name)
                assert stored.weights[name].tobytes() == values.tobytes(), (path, name)
            assert wide.weight_dtypes[name] == "F32", (path, name)
            assert wide.weights[name].tobytes() == values.tobytes(), (path, name)
            checked += 1
        print("%s: %d weights, stored %s (%d bytes) / f32 (%d bytes)"
              % (os.path.basename(path), len(stored.weights),
                 " ".join(sorted(set(stored.weight_dtypes.values()))), stored.size, wide.size))
    print("%d weights kept byte for byte (stored) and widened exactly (f32)" % checked)
    if args.llama_quantize:
        # The widened Q4_K_M model compiles and computes what the reference
        # interpreter computes on the same weights.
        kiln = os.path.join(args.work, "llama256-Q4_K_M.gguf.f32.kiln")
        exe = os.path.join(args.work, "q4km")
        subprocess.check_call([os.path.join(args.kiln_bin, "kiln-compile"), kiln, "-o", exe])
        ids = [1, 17, 42, 250, 3, 99]
        out = subprocess.run([exe, "--prompt-tokens", ",".join(map(str, ids)), "--forward-logits",
                              "--output=json"], check=True, capture_output=True, text=True)
        got = np.array(json.loads(out.stdout)["logits"])
        ref = kiln_export.reference_eval(kiln, ids)
        err = np.max(np.abs(got - ref)) / np.max(np.abs(ref))
        assert err < 1e-5, err
        print("Q4_K_M widened to f32: compiled logits match the reference (max rel err %.1e)"
              % err)


if __name__ == "__main__":
    main()
