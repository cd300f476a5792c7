#!/usr/bin/env python3
"""kiln-convert --quantize against llama.cpp's llama-quantize on the same
weights.

Small random models of the reference modules (test/e2e/reference.py: llama
MHA, GQA, tied, 384 wide (rows that are not whole 256-element blocks), 9
layers deep (use_more_bits picks layers 0, 2, 5, 8); gpt2 with its fused
attn_qkv) are written as F32 (and one F16) GGUF files by
test/lib/gguf_writer.py. Each file is quantized twice with the same recipe
(q8_0, q4_0, q4_k_m): by llama-quantize (no importance matrix), and by
`kiln-convert --quantize`. Required of every weight of the .kiln:

- its type is the one llama-quantize chose for that tensor (the recipe's
  rule, fallbacks included; GPT-2's attn_qkv split into q, k, v of its
  type; 1-D tensors and GPT-2's position table as stored: F32);
- its bytes equal llama-quantize's blocks. ggml is built by GCC, which may
  fuse a multiply and an add where Kiln's port (compiled without
  contraction, so that NumPy reproduces it) does not; a block that differs
  is allowed only as a last-bit tie: every such block must dequantize to
  values within one quantization step of llama-quantize's, and no more than
  1 block in 1000 may differ (the count is printed).

With --python, kiln_export's exporter (export_llama / export_gpt2 with
dtype=RECIPE) must write the very bytes and types that kiln-convert
--quantize writes from the same weights in a Hugging Face directory, weight
for weight.

Prints one line per (model, recipe) and a final line.

    quantize.py --kiln-bin build/bin --llama-quantize BIN --work DIR [--python]
    quantize.py --poison SRC.gguf DST.gguf
"""
import argparse
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "test", "lib"))
sys.path.insert(0, os.path.join(ROOT, "test", "e2e"))
sys.path.insert(0, os.path.join(ROOT, "compiler", "kiln_export"))
import gguf_writer  # noqa: E402
import hf_checkpoint  # noqa: E402
import hf_parity  # noqa: E402
import kiln_export  # noqa: E402
import reference  # noqa: E402
from kiln_export import dtypes  # noqa: E402
from stored_dtype import gguf_tensors  # noqa: E402

LLAMA = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=4, max_position_embeddings=64, vocab_size=320, rms_norm_eps=1e-5,
             rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
GQA = dict(LLAMA, num_attention_heads=8, num_key_value_heads=2, vocab_size=512)
WIDE384 = dict(LLAMA, hidden_size=384, intermediate_size=768, num_attention_heads=6,
               num_key_value_heads=2, vocab_size=400)
DEEP = dict(LLAMA, num_hidden_layers=9, intermediate_size=256, vocab_size=288)
TIED = dict(GQA, vocab_size=300, tie_word_embeddings=True)
GPT2 = dict(n_embd=256, n_head=4, n_layer=2, n_positions=64, vocab_size=300, n_inner=512,
            layer_norm_epsilon=1e-5)

# name, family, cfg, the GGUF's type
MODELS = [
    ("llama-mha", "llama", LLAMA, "F32"),
    ("llama-gqa-f16", "llama", GQA, "F16"),
    ("llama-384", "llama", WIDE384, "F32"),
    ("llama-deep", "llama", DEEP, "F32"),
    ("llama-tied", "llama", TIED, "F32"),
    ("gpt2", "gpt2", GPT2, "F32"),
]
RECIPES = [("q8_0", "Q8_0"), ("q4_0", "Q4_0"), ("q4_k_m", "Q4_K_M")]
MAX_DIFFERING = 1e-3  # fraction of blocks allowed to differ (see above)


class Failure(Exception):
    pass


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise Failure("%s failed (exit %d):\n%s" % (" ".join(cmd), p.returncode, p.stderr[-2000:]))
    return p.stdout


def gguf_view(tensors, name):
    """(type, shape, bytes) of the GGUF tensor a .kiln weight holds: GPT-2's
    blk.N.attn_{q,k,v} are row ranges of blk.N.attn_qkv."""
    if name in tensors:
        return tensors[name]
    blk, n, part, kind = name.split(".")
    t, shape, raw = tensors["%s.%s.attn_qkv.%s" % (blk, n, kind)]
    rows = shape[0] // 3
    i = "qkv".index(part[-1])
    if len(shape) == 1:
        return t, [rows], raw[i * rows * 4:(i + 1) * rows * 4]
    row_bytes = len(raw) // shape[0]
    return t, [rows, shape[1]], raw[i * rows * row_bytes:(i + 1) * rows * row_bytes]


def compare(model, recipe, kiln, tensors):
    """Checks types and bytes; returns (blocks, differing blocks, types)."""
    blocks = differing = 0
    types = set()
    for name, kind in kiln.weight_dtypes.items():
        gkind, shape, graw = gguf_view(tensors, name)
        want = gkind if len(shape) == 2 else "F32"
        if kind != want:
            raise Failure("%s %s: %s is %s in the .kiln, llama-quantize made it %s"
                          % (model, recipe, name, kind, gkind))
        if len(shape) == 2:
            types.add(kind)
        kraw = bytes(kiln.weight_bytes[name])
        if len(shape) == 1:
            continue
        elems, nbytes = dtypes.BLOCKS[kind]
        if len(kraw) != len(graw):
            raise Failure("%s %s: %s has %d bytes, llama-quantize's %d"
                          % (model, recipe, name, len(kraw), len(graw)))
        k = np.frombuffer(kraw, np.uint8).reshape(-1, nbytes)
        g = np.frombuffer(graw, np.uint8).reshape(-1, nbytes)
        diff = np.nonzero((k != g).any(axis=1))[0]
        blocks += k.shape[0]
        differing += len(diff)
        if len(diff) and elems > 1:
            # A differing block: a rounding tie; its values stay within one
            # step (the block's largest gap between distinct levels).
            kv = dtypes.dequantize(kind, k[diff].tobytes(), [len(diff), elems])
            gv = dtypes.dequantize(kind, g[diff].tobytes(), [len(diff), elems])
            for r in range(len(diff)):
                levels = np.unique(gv[r])
                step = np.diff(levels).max() if len(levels) > 1 else np.abs(gv[r]).max()
                if np.abs(kv[r] - gv[r]).max() > step * 1.0001 + 1e-30:
                    raise Failure("%s %s: %s block %d differs from llama-quantize's by %.3g, "
                                  "more than one quantization step (%.3g)"
                                  % (model, recipe, name, diff[r],
                                     np.abs(kv[r] - gv[r]).max(), step))
        elif len(diff):
            raise Failure("%s %s: %s (%s) differs from llama-quantize's in %d elements"
                          % (model, recipe, name, kind, len(diff)))
    return blocks, differing, types


def python_export(family, cfg, state_dict, recipe, path):
    """kiln_export's file for the same weights and recipe."""
    if family == "llama":
        kiln_export.export_llama(path, state_dict, cfg, dtype=recipe)
    else:
        kiln_export.export_gpt2(path, state_dict, cfg, dtype=recipe)
    return kiln_export.load_model(path, check=False)


def same_blocks(model, recipe, a, b):
    """kiln-convert's and kiln_export's weights, matched by role: the
    exporter uses Hugging Face names, kiln-convert GGUF names, in the same
    order."""
    an = [n for n in a.weight_dtypes]
    bn = [n for n in b.weight_dtypes]
    if len(an) != len(bn):
        raise Failure("%s %s: kiln-convert wrote %d weights, kiln_export %d"
                      % (model, recipe, len(an), len(bn)))
    for x, y in zip(an, bn):
        if a.weight_dtypes[x] != b.weight_dtypes[y]:
            raise Failure("%s %s: %s is %s from kiln-convert, %s (%s) from kiln_export"
                          % (model, recipe, x, a.weight_dtypes[x], y, b.weight_dtypes[y]))
        if bytes(a.weight_bytes[x]) != bytes(b.weight_bytes[y]):
            raise Failure("%s %s: %s's bytes differ between kiln-convert and kiln_export (%s)"
                          % (model, recipe, x, y))


def poison(src, dst):
    """Copies the GGUF `src` with element 5 of row 3 of blk.0.attn_q.weight
    set to NaN (for the refusal test)."""
    data = bytearray(open(src, "rb").read())
    kind, shape, raw = gguf_tensors(src)["blk.0.attn_q.weight"]
    assert kind == "F32" and data.count(raw) == 1
    at = data.index(raw) + (3 * shape[1] + 5) * 4
    data[at:at + 4] = np.array([np.nan], np.float32).tobytes()
    open(dst, "wb").write(bytes(data))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--poison", nargs=2, metavar=("SRC", "DST"),
                    help="only write DST: SRC with one NaN weight")
    ap.add_argument("--kiln-bin", required="--poison" not in sys.argv)
    ap.add_argument("--llama-quantize", required="--poison" not in sys.argv)
    ap.add_argument("--work", required="--poison" not in sys.argv)
    ap.add_argument("--python", action="store_true",
                    help="also compare kiln_export's dtype= output with kiln-convert's")
    args, _ = ap.parse_known_args() if "--poison" in sys.argv else (ap.parse_args(), None)
    if args.poison:
        poison(*args.poison)
        return 0
    os.makedirs(args.work, exist_ok=True)
    convert = os.path.join(args.kiln_bin, "kiln-convert")
    failures = 0
    total_blocks = total_diff = 0
    for seed, (model, family, cfg, src_type) in enumerate(MODELS):
        net = (reference.Llama if family == "llama" else reference.GPT2)(cfg)
        reference.randomize(net, 100 + seed)
        write = gguf_writer.write_llama_gguf if family == "llama" else gguf_writer.write_gpt2_gguf
        src = os.path.join(args.work, "%s-%s.gguf" % (model, src_type))
        write(src, net.state_dict(), cfg, dtype=src_type)
        for recipe, ftype in RECIPES:
            try:
                ref = os.path.join(args.work, "%s-%s.gguf" % (model, recipe))
                run([args.llama_quantize, src, ref, ftype, "1"])
                out = os.path.join(args.work, "%s-%s.kiln" % (model, recipe))
                run([convert, src, "--quantize", recipe, "-o", out])
                kiln = kiln_export.load_model(out, check=False)
                blocks, differing, types = compare(model, recipe, kiln, gguf_tensors(ref))
                total_blocks += blocks
                total_diff += differing
                if differing > MAX_DIFFERING * blocks:
                    raise Failure("%s %s: %d of %d blocks differ from llama-quantize's"
                                  % (model, recipe, differing, blocks))
                extra = ""
                if args.python and src_type == "F32":
                    # The same weights as a Hugging Face directory (rotate-half
                    # q/k rows, as kiln_export writes them).
                    hf = os.path.join(args.work, "%s-hf" % model)
                    if not os.path.isdir(hf):
                        tok_json, tok_cfg = hf_parity.tokenizer_for(model, family,
                                                                    cfg["vocab_size"])
                        arch = "LlamaForCausalLM" if family == "llama" else "GPT2LMHeadModel"
                        hf_checkpoint.write_hf_dir(hf, dict(cfg, architectures=[arch]),
                                                   net.state_dict(), tok_json,
                                                   tokenizer_config=tok_cfg)
                    hf_out = os.path.join(args.work, "%s-%s-hf.kiln" % (model, recipe))
                    run([convert, hf, "--quantize", recipe, "-o", hf_out])
                    sd = {k: v.detach().numpy() for k, v in net.state_dict().items()}
                    py = python_export(family, cfg, sd, recipe,
                                       os.path.join(args.work, "%s-%s-py.kiln" % (model, recipe)))
                    same_blocks(model, recipe, kiln_export.load_model(hf_out, check=False), py)
                    extra = ", kiln_export identical"
                print("%-14s %-7s %-22s %5d blocks, %d differ from llama-quantize%s"
                      % (model, recipe, "+".join(sorted(types)), blocks, differing, extra),
                      flush=True)
            except Failure as e:
                failures += 1
                print("FAIL: %s" % e, flush=True)
    if failures:
        print("%d failures" % failures)
        return 1
    print("all %d recipes: types as llama-quantize's, %d of %d blocks bit-identical"
          % (len(MODELS) * len(RECIPES), total_blocks - total_diff, total_blocks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
