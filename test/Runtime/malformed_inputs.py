#!/usr/bin/env python3
"""Table-driven malformed .kiln inputs: each goes to the compiler
(kiln-compile --emit=mlir --stage=import) and to an executable compiled from
the valid model (-m FILE); both must refuse it with exit code 2 and a
one-line message containing the expected text; nothing may crash or hang.

Usage: malformed_inputs.py --kiln-bin DIR --work DIR
"""
import argparse
import json
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
JSON2KILN = os.path.join(ROOT, "test", "lib", "json2kiln.py")
BASE_JSON = os.path.join(ROOT, "test", "Driver", "Inputs", "tiny-llama.json")

MALFORMED = "malformed or truncated"
IDENT = "missing the 'KILN' identifier"


def build(work, name, mutate=None, extra=()):
    m = json.load(open(BASE_JSON))
    if mutate:
        mutate(m)
    src = os.path.join(work, name + ".json")
    json.dump(m, open(src, "w"))
    out = os.path.join(work, name + ".kiln")
    subprocess.check_call([sys.executable, JSON2KILN, src, "-o", out] + list(extra))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln-bin", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    compiler = os.path.join(args.kiln_bin, "kiln-compile")
    base = build(args.work, "base")
    exe = os.path.join(args.work, "model")
    subprocess.check_call([compiler, base, "-o", exe])
    data = open(base, "rb").read()
    root = struct.unpack_from("<I", data, 0)[0]

    cases = []  # (name, bytes, expected substring for compiler, for runtime)

    def raw(name, blob, compiler_msg, runtime_msg=None):
        cases.append((name, bytes(blob), compiler_msg, runtime_msg or compiler_msg))

    # Truncations: inside the header, at the root table, across the vtable,
    # weights and strings, and one byte short.
    for cut in [0, 1, 4, 7, 8, 12, root, root + 4, len(data) // 8, len(data) // 4,
                len(data) // 3, len(data) // 2, 2 * len(data) // 3, 3 * len(data) // 4,
                len(data) - 64, len(data) - 32, len(data) - 16]:
        if cut < 8:
            raw("truncated-at-%d" % cut, data[:cut], IDENT, "too small to be a Kiln model")
        else:
            raw("truncated-at-%d" % cut, data[:cut], MALFORMED)
    # Wrong magic / identifier.
    for i, b in enumerate([b"KILM", b"kiln", b"\0\0\0\0", b"GGUF"]):
        d = bytearray(data)
        d[4:8] = b
        raw("identifier-%d" % i, d, IDENT)
    # Root offset past the end, pointing into the middle, zero.
    for v in [len(data) + 100, 0xFFFFFFF0, 2, len(data) - 2]:
        d = bytearray(data)
        struct.pack_into("<I", d, 0, v)
        raw("root-offset-%d" % v, d, MALFORMED)
    # Flipped bytes in the root table's vtable offset and in the vtable.
    for off in [root, root + 1, root + 2, root + 3]:
        d = bytearray(data)
        d[off] ^= 0xFF
        raw("flip-root-table-%d" % off, d, MALFORMED)
    vt = root - struct.unpack_from("<i", data, root)[0]
    for off in [vt, vt + 1, vt + 4, vt + 5]:  # vtable size, first field offset
        d = bytearray(data)
        d[off] ^= 0xFF
        raw("flip-vtable-%d" % off, d, MALFORMED)
    # Garbage of various sizes.
    for n in [16, 64, 4096]:
        raw("zeros-%d" % n, bytes(n), IDENT)
        raw("random-%d" % n, bytes((i * 97 + 13) % 256 for i in range(n)), IDENT)
    raw("kiln-identifier-then-zeros", b"\0\0\0\0KILN" + bytes(100), MALFORMED)

    # Semantic problems the verifier cannot see.
    def variant(name, mutate, compiler_msg, runtime_msg=None):
        path = build(args.work, name, mutate)
        cases.append((name, open(path, "rb").read(), compiler_msg, runtime_msg or compiler_msg))

    variant("newer-version", lambda m: m.update(version=2),
            "schema version 2 is newer than this compiler supports (1)",
            "schema version 2 is newer than this runtime supports (1)")
    def shape_with_data(index, shape, nbytes):
        def mutate(m):
            w = m["weights"][index]
            for k in ("ones", "random", "values"):
                w.pop(k, None)
            w["shape"] = shape
            w["data"] = [0] * nbytes
        return mutate

    variant("weight-bytes-short", shape_with_data(2, [8, 8], 255),
            "weight 'l0.wq' holds 255 bytes but its shape needs 256")
    variant("weight-bytes-long", shape_with_data(2, [8, 8], 260),
            "weight 'l0.wq' holds 260 bytes but its shape needs 256")
    variant("negative-dim", shape_with_data(1, [-8], 32),
            "weight 'norm' has invalid dimension -8", "weight 'norm' has an invalid shape")
    variant("zero-dim", shape_with_data(1, [0], 32),
            "weight 'norm' has invalid dimension 0", "weight 'norm' has an invalid shape")
    variant("absurd-dims", shape_with_data(1, [1 << 40, 1 << 40], 32),
            "weight 'norm' is too large", "weight 'norm' has an invalid shape")
    variant("overflowing-dims", shape_with_data(1, [1 << 31, 1 << 31, 1 << 31], 32),
            "weight 'norm' is too large", "weight 'norm' has an invalid shape")
    variant("dtype-f16", lambda m: m["weights"][1].update(dtype="F16"),
            "weight 'norm' has dtype F16; this compiler supports F32",
            "weight 'norm' has dtype F16; this runtime supports F32")
    variant("zero-vocab", lambda m: m["metadata"].update(vocab_size=0), "must be positive")
    variant("zero-context", lambda m: m["metadata"].update(context_length=0), "must be positive")
    variant("eos-outside-vocab", lambda m: m["metadata"].update(eos_token_id=99),
            "special token id 99 is outside the vocabulary of 16")
    variant("bos-negative", lambda m: m["metadata"].update(bos_token_id=-7),
            "special token id -7 is outside the vocabulary of 16")

    # Encoder-decoder metadata (two graph inputs: source, target ids).
    variant("three-inputs", lambda m: m.update(inputs=["source", "extra", "tokens"]),
            "the graph must have one input (token ids) or two",
            "the graph has 3 inputs; expected 1 (decoder-only) or 2")
    variant("two-inputs-no-source-length", lambda m: m.update(inputs=["source", "tokens"]),
            "an encoder-decoder model needs a positive source_length")
    def no_bos(m):
        m.update(inputs=["source", "tokens"])
        m["metadata"].update(source_length=8, bos_token_id=-1)
    variant("encoder-decoder-without-bos", no_bos,
            "an encoder-decoder model needs bos_token_id")
    variant("negative-source-vocab", lambda m: m["metadata"].update(source_vocab_size=-3),
            "source_vocab_size must not be negative")

    failed = 0
    for name, blob, compiler_msg, runtime_msg in cases:
        path = os.path.join(args.work, "case-" + name + ".kiln")
        open(path, "wb").write(blob)
        for tool, cmd, msg in (
                ("kiln-compile", [compiler, path, "--emit=mlir", "--stage=import", "-o", os.devnull],
                 compiler_msg),
                ("executable", [exe, "-m", path, "--prompt-tokens", "1,2", "-n", "2"], runtime_msg)):
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            except subprocess.TimeoutExpired:
                print("FAIL %s (%s): hang" % (name, tool))
                failed += 1
                continue
            err = r.stderr.strip()
            if r.returncode != 2 or msg not in err or len(err.splitlines()) > 2:
                print("FAIL %s (%s): exit %d, stderr %r, expected %r"
                      % (name, tool, r.returncode, err[-300:], msg))
                failed += 1
    print("%d malformed inputs, %d checks, %d failures" % (len(cases), 2 * len(cases), failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
