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
SHORTER = "model file is shorter than it claims"
UPGRADE = "python3 -m kiln_export.upgrade OLD.kiln NEW.kiln"


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
    # Version 2: the FlatBuffer, zero padding to data_offset (a page), then
    # the data section.
    vtable = root - struct.unpack_from("<i", data, root)[0]
    field = struct.unpack_from("<H", data, vtable + 4 + 2 * 7)[0]  # Model.data_offset
    data_offset = struct.unpack_from("<Q", data, root + field)[0]
    fb_end = len(data[:data_offset].rstrip(b"\0"))  # the FlatBuffer's last byte + 1

    cases = []  # (name, bytes, expected substring for compiler, for runtime)

    def raw(name, blob, compiler_msg, runtime_msg=None):
        cases.append((name, bytes(blob), compiler_msg, runtime_msg or compiler_msg))

    # Truncations: inside the header, at the root table, across the vtable,
    # weight table and strings (the verifier refuses them), in the padding
    # before the data section and in the data section (shorter than the
    # header says), and one byte short; one byte too many.
    for cut in [0, 1, 4, 7, 8, 12, root, root + 4, fb_end // 8, fb_end // 4,
                fb_end // 3, fb_end // 2, 2 * fb_end // 3, 3 * fb_end // 4,
                fb_end - 64, fb_end - 32, fb_end - 16, fb_end - 1]:
        if cut < 8:
            raw("truncated-at-%d" % cut, data[:cut], IDENT, "too small to be a Kiln model")
        else:
            raw("truncated-at-%d" % cut, data[:cut], MALFORMED)
    for cut in [min(fb_end + 64, data_offset - 1), data_offset - 1, data_offset, data_offset + 64,
                (data_offset + len(data)) // 2, len(data) - 1]:
        raw("truncated-at-%d" % cut, data[:cut], SHORTER)
    raw("one-byte-more", data + b"\0", "model file is longer than it claims")
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

    variant("newer-version", lambda m: m.update(version=3),
            "schema version 3 is newer than this compiler supports (2)",
            "schema version 3 is newer than this runtime supports (2)")
    variant("version-1", lambda m: m.update(version=1),
            "schema version 1 (weights inside the FlatBuffer), which this compiler no longer "
            "reads: rewrite it as version 2 with `" + UPGRADE,
            "schema version 1 (weights inside the FlatBuffer), which this runtime no longer "
            "reads: rewrite it as version 2 with `" + UPGRADE)

    def shape_with_data(index, shape, nbytes, **fields):
        def mutate(m):
            w = m["weights"][index]
            for k in ("ones", "random", "values"):
                w.pop(k, None)
            w["shape"] = shape
            w["data"] = [0] * nbytes
            w.update(fields)
        return mutate

    def weight_fields(index, **fields):
        return lambda m: m["weights"][index].update(fields)

    # The weight table (tiny-llama: tok_embeddings [16, 8] at 0, norm [8] at
    # 512, l0.wq [8, 8] at 576, ...).
    variant("weight-bytes-short", shape_with_data(2, [8, 8], 255),
            "weight 'l0.wq' has size 255 but its dtype F32 and shape need 256 bytes")
    variant("weight-bytes-long", shape_with_data(2, [8, 8], 260),
            "weight 'l0.wq' has size 260 but its dtype F32 and shape need 256 bytes")
    variant("negative-dim", shape_with_data(1, [-8], 32), "weight 'norm' has invalid dimension -8")
    variant("zero-dim", shape_with_data(1, [0], 32), "weight 'norm' has invalid dimension 0")
    variant("absurd-dims", shape_with_data(1, [1 << 40, 1 << 40], 32),
            "weight 'norm' is too large (more than 2^40 elements)")
    variant("overflowing-dims", shape_with_data(1, [1 << 31, 1 << 31, 1 << 31], 32),
            "weight 'norm' is too large (more than 2^40 elements)")
    variant("rank-5", shape_with_data(1, [1, 1, 1, 1, 8], 32),
            "weight 'norm' has rank 5; expected 1 to 4")
    variant("dtype-f16", shape_with_data(1, [8], 16, dtype="F16"),
            "weight 'norm' has dtype F16 and rank 1; only matrices may be stored in a type other than F32",
            "model file's weight table (names, dtypes, shapes) differs from the one the "
            "executable was compiled for")
    variant("dtype-f16-wrong-size", shape_with_data(1, [8], 32, dtype="F16"),
            "weight 'norm' has size 32 but its dtype F16 and shape need 16 bytes")
    variant("dtype-i8", weight_fields(1, dtype="I8"),
            "weight 'norm' has dtype I8, which is not a weight type")
    variant("dtype-unknown", weight_fields(1, dtype=99),
            "weight 'norm' has dtype unknown dtype 99, which is not a weight type")
    variant("q4_0-row-not-whole-blocks", shape_with_data(2, [8, 8], 36, dtype="Q4_0"),
            "weight 'l0.wq' is Q4_0 but its last dimension 8 is not a multiple of the "
            "32-element block")
    variant("q4_k-row-not-whole-blocks", shape_with_data(2, [2, 128], 144, dtype="Q4_K"),
            "weight 'l0.wq' is Q4_K but its last dimension 128 is not a multiple of the "
            "256-element block")
    # The data section and the weights' places in it.
    variant("data-offset-not-page-aligned", lambda m: m.update(data_offset=6000),
            "data_offset 6000 is not a positive multiple of 4096")
    variant("data-offset-zero", lambda m: m.update(data_offset=0),
            "data_offset 0 is not a positive multiple of 4096")
    variant("data-size-past-the-end", lambda m: m.update(data_size=2496 + 64), SHORTER)
    variant("data-size-overflows", lambda m: m.update(data_size=2**64 - 4096), SHORTER)
    variant("offset-not-aligned", weight_fields(1, offset=520),
            "weight 'norm' has offset 520, not a multiple of 64")
    variant("offset-past-the-end", weight_fields(8, offset=4096),
            "weight 'l0.w_down' (384 bytes at offset 4096) ends past the data section of "
            "2496 bytes")
    variant("offset-huge", weight_fields(8, offset=2**64 - 64),
            "weight 'l0.w_down' (384 bytes at offset 18446744073709551552) ends past the data "
            "section of 2496 bytes")
    variant("size-overflows", weight_fields(2, size=2**64 - 64),
            "weight 'l0.wq' (18446744073709551552 bytes at offset 576) ends past the data "
            "section of 2496 bytes")
    variant("weights-overlap", weight_fields(3, offset=576),
            "weights 'l0.wq' and 'l0.wk' overlap in the data section")
    variant("weights-overlap-partly", weight_fields(3, offset=768),
            "weights 'l0.wq' and 'l0.wk' overlap in the data section")
    variant("zero-vocab", lambda m: m["metadata"].update(vocab_size=0), "must be positive")
    variant("zero-context", lambda m: m["metadata"].update(context_length=0), "must be positive")
    variant("eos-outside-vocab", lambda m: m["metadata"].update(eos_token_id=99),
            "special token id 99 is outside the vocabulary of 16")
    variant("bos-negative", lambda m: m["metadata"].update(bos_token_id=-7),
            "special token id -7 is outside the vocabulary of 16")
    variant("end-token-outside-vocab", lambda m: m["metadata"].update(end_token_ids=[3, 16]),
            "end token id 16 is outside the vocabulary of 16")

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
