#!/usr/bin/env python3
"""Kiln against llama.cpp on the model files people download: F16, Q8_0,
Q4_0 and Q4_K_M GGUFs of Llama shapes, the same files, the same CPU,
measured side by side (issue 16).

For each shape a Llama with random weights (speed does not depend on them)
is written as an F16 GGUF (test/lib/gguf_writer.py); llama.cpp's own
llama-quantize (built by scripts/llama-cpp.sh from the same bundle as
llama-bench) makes the Q8_0, Q4_0 and Q4_K_M files from it. Kiln converts
each file with kiln-convert (weights kept as stored) and compiles it;
llama-bench reads the GGUF.

  base       dim 768, 12 layers, 12 heads, ffn 2048, vocab 32000 (134 M)
  base-gqa   base with 4 key/value heads
  tinyllama  dim 2048, 22 layers, 32 heads / 4 kv heads, ffn 5632,
             vocab 32000, context 2048 (1.1 B; --shapes tinyllama)
  llama2-7b  dim 4096, 32 layers, 32 heads, ffn 11008, vocab 32000,
             context 4096 (6.7 B; --shapes llama2-7b --types Q4_K_M,Q8_0):
             its F16 GGUF (13.5 GB) is written tensor by tensor
             (gguf_writer.LazyTensor), never held in memory

Figures: prefill tokens/s of a 128-token prompt; decode tokens/s of 128
new tokens after it; kiln-compile's wall time; Kiln/llama.cpp ratios; each system's read rate of the
bytes a decode step reads (every weight but the embedding table, as
stored, plus the KV cache at mid-decode; Kiln's cache of --kv-cache-type
(default f32), f16 for llama.cpp's default) against a read-only pass measured here; Kiln's peak
RSS against file + KV cache. Medians of --runs runs, systems interleaved.

    /usr/bin/python3 bench/quantized_vs_llama.py [--shapes base,base-gqa]
        [--types F16,Q8_0,Q4_0,Q4_K_M] [--runs 3] [--threads 2]
        [--activations f32|int8] [--kv-cache-type f32|f16|bf16]
"""
import argparse
import os
import statistics
import struct
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "lib"))
sys.path.insert(0, os.path.join(ROOT, "test", "e2e"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from llama_vs_peers import (NEW, PROMPT, SHAPES, bandwidth,  # noqa: E402
                            measure_kiln, measure_llama, run)

SHAPES = dict(SHAPES)
SHAPES["tinyllama"] = dict(hidden_size=2048, num_hidden_layers=22, num_attention_heads=32,
                           num_key_value_heads=4, intermediate_size=5632, vocab_size=32000,
                           max_position_embeddings=2048)
SHAPES["llama2-7b"] = dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                           num_key_value_heads=32, intermediate_size=11008, vocab_size=32000,
                           max_position_embeddings=4096)
# Shapes whose F16 file is written from lazily made random tensors (a torch
# model of them would not fit in memory).
LAZY_SHAPES = {"llama2-7b"}


def lazy_random_llama(cfg, seed=0):
    """A LlamaForCausalLM-layout state dict of gguf_writer.LazyTensors:
    normal(0, 0.02) matrices, unit norms, each made when written."""
    import numpy as np
    from gguf_writer import LazyTensor
    d, ffn, vocab = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    kv = d // cfg["num_attention_heads"] * cfg["num_key_value_heads"]

    def normal(shape, k):
        def make():
            rng = np.random.default_rng([seed, k])
            return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)
        return LazyTensor(shape, make)

    def ones(n):
        return LazyTensor((n,), lambda: np.ones(n, np.float32))

    sd = {"model.embed_tokens.weight": normal((vocab, d), 0),
          "model.norm.weight": ones(d), "lm_head.weight": normal((vocab, d), 1)}
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        for j, (name, shape) in enumerate((("self_attn.q_proj", (d, d)), ("self_attn.k_proj", (kv, d)),
                                           ("self_attn.v_proj", (kv, d)), ("self_attn.o_proj", (d, d)),
                                           ("mlp.gate_proj", (ffn, d)), ("mlp.up_proj", (ffn, d)),
                                           ("mlp.down_proj", (d, ffn)))):
            sd[p + name + ".weight"] = normal(shape, 2 + 8 * i + j)
        sd[p + "input_layernorm.weight"] = ones(d)
        sd[p + "post_attention_layernorm.weight"] = ones(d)
    return sd

# ggml type: (elements per block, bytes per block)
GGML_BLOCKS = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24),
               8: (32, 34), 12: (256, 144), 13: (256, 176), 14: (256, 210), 30: (1, 2)}


def gguf_tensor_bytes(path):
    """{tensor name: stored bytes} from a GGUF v3 header (no data read)."""
    with open(path, "rb") as f:
        head = f.read(64 << 20)
    assert head[:4] == b"GGUF", path
    n_tensors, n_kv = struct.unpack_from("<QQ", head, 8)
    pos = 24
    scalar = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def string(pos):
        n = struct.unpack_from("<Q", head, pos)[0]
        return head[pos + 8:pos + 8 + n].decode(), pos + 8 + n

    def skip(pos, t):
        if t == 8:
            return string(pos)[1]
        if t == 9:
            et, n = struct.unpack_from("<IQ", head, pos)
            pos += 12
            for _ in range(n):
                pos = skip(pos, et)
            return pos
        return pos + scalar[t]

    for _ in range(n_kv):
        _, pos = string(pos)
        t = struct.unpack_from("<I", head, pos)[0]
        pos = skip(pos + 4, t)
    sizes = {}
    for _ in range(n_tensors):
        name, pos = string(pos)
        nd = struct.unpack_from("<I", head, pos)[0]
        dims = struct.unpack_from("<%dQ" % nd, head, pos + 4)
        pos += 4 + 8 * nd
        t, _ = struct.unpack_from("<IQ", head, pos)
        pos += 12
        elems = 1
        for d in dims:
            elems *= d
        be, bb = GGML_BLOCKS[t]
        sizes[name] = elems // be * bb
    return sizes


def kv_bytes(cfg, ctx, elem):
    hd = cfg["hidden_size"] // cfg["num_attention_heads"]
    return cfg["num_hidden_layers"] * 2 * ctx * cfg["num_key_value_heads"] * hd * elem


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="base,base-gqa")
    ap.add_argument("--types", default="F16,Q8_0,Q4_0,Q4_K_M")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kiln-bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--work", default=None)
    ap.add_argument("--activations", default="f32", choices=["f32", "int8"],
                    help="kiln-compile --activations (int8: x quantized for the decode "
                         "products on Q4_0/Q4_K/Q6_K weights, and Q8_0 with VNNI)")
    ap.add_argument("--kv-cache-type", default="f32", choices=["f32", "f16", "bf16"],
                    help="kiln-compile --kv-cache-type (llama.cpp's cache is f16)")
    args = ap.parse_args()
    kv_elem = 4 if args.kv_cache_type == "f32" else 2

    import numpy as np
    import torch
    import gguf_writer
    import reference
    work = args.work or tempfile.mkdtemp(prefix="kiln-qbench-")
    os.makedirs(work, exist_ok=True)
    llama_bin = run([os.path.join(ROOT, "scripts", "llama-cpp.sh")]).stdout.strip().splitlines()[-1]
    bench = os.path.join(llama_bin, "llama-bench")
    quantize = os.path.join(llama_bin, "llama-quantize")
    _, read_bw = bandwidth(work, args.threads)
    print("read-only memory bandwidth (%d threads): %.1f GB/s" % (args.threads, read_bw))
    table = []
    for shape in args.shapes.split(","):
        cfg = dict(SHAPES[shape], rms_norm_eps=1e-5, rope_theta=10000.0, bos_token_id=1,
                   eos_token_id=2, tie_word_embeddings=False)
        f16 = os.path.join(work, shape + "-F16.gguf")
        if not os.path.exists(f16):
            if shape in LAZY_SHAPES:
                gguf_writer.write_llama_gguf(f16 + ".part", lazy_random_llama(cfg), cfg, dtype="F16")
            else:
                torch.manual_seed(0)
                model = reference.randomize(reference.Llama(cfg), 0)
                gguf_writer.write_llama_gguf(f16 + ".part", model.state_dict(), cfg, dtype="F16")
                del model
            os.replace(f16 + ".part", f16)
        ctx_mid = PROMPT + NEW // 2
        for qtype in args.types.split(","):
            gguf = os.path.join(work, "%s-%s.gguf" % (shape, qtype))
            if qtype != "F16" and not os.path.exists(gguf):
                run([quantize, f16, gguf + ".part", qtype, str(args.threads)])
                os.replace(gguf + ".part", gguf)
            kiln_file = os.path.join(work, "%s-%s.kiln" % (shape, qtype))
            exe = os.path.join(work, "%s-%s-%s-%s" % (shape, qtype, args.activations,
                                                      args.kv_cache_type))
            run([os.path.join(args.kiln_bin, "kiln-convert"), gguf, "-o", kiln_file])
            t0 = time.time()
            run([os.path.join(args.kiln_bin, "kiln-compile"), kiln_file, "-o", exe,
                 "--activations=" + args.activations,
                 "--kv-cache-type=" + args.kv_cache_type])
            compile_s = time.time() - t0
            sizes = gguf_tensor_bytes(gguf)
            step_bytes = sum(v for k, v in sizes.items() if k != "token_embd.weight")
            samples = {"kiln": [], "llama.cpp": []}
            for _ in range(args.runs):
                # A 128-token prompt and 128 new tokens (the figures below);
                # no context-filling run.
                samples["kiln"].append(measure_kiln(exe, cfg, args.threads,
                                                    np.random.default_rng(1), long=False))
                samples["llama.cpp"].append(measure_llama(bench, gguf, cfg, args.threads,
                                                          long=False))
            med = {s: dict(prefill=statistics.median(r["short"]["prefill_tps"] for r in rs),
                           decode=statistics.median(r["short"]["decode_tps"] for r in rs),
                           rss=statistics.median(r["rss_mb"] for r in rs))
                   for s, rs in samples.items()}
            k, l = med["kiln"], med["llama.cpp"]
            kiln_gbs = k["decode"] * (step_bytes + kv_bytes(cfg, ctx_mid, kv_elem)) / 1e9
            llama_gbs = l["decode"] * (step_bytes + kv_bytes(cfg, ctx_mid, 2)) / 1e9
            budget_mb = (os.path.getsize(kiln_file)
                         + kv_bytes(cfg, cfg["max_position_embeddings"], kv_elem)) / 2 ** 20
            row = dict(shape=shape, type=qtype, file_mb=os.path.getsize(gguf) / 2 ** 20,
                       compile_s=compile_s, k=k, l=l, kiln_gbs=kiln_gbs, llama_gbs=llama_gbs,
                       budget_mb=budget_mb)
            table.append(row)
            print("%-9s %-6s file %6.0f MB  prefill kiln %6.0f llama.cpp %6.0f (%.2fx)  "
                  "decode kiln %6.1f llama.cpp %6.1f (%.2fx)  read GB/s kiln %.1f (%.0f%%) "
                  "llama.cpp %.1f  kiln RSS %.0f MB (file + KV %.0f MB)  compile %.1f s"
                  % (shape, qtype, row["file_mb"], k["prefill"], l["prefill"],
                     k["prefill"] / l["prefill"], k["decode"], l["decode"],
                     k["decode"] / l["decode"], kiln_gbs, 100 * kiln_gbs / read_bw, llama_gbs,
                     k["rss"], budget_mb, compile_s), flush=True)
    print("\n| shape | type | file MB | prefill kiln / llama.cpp | ratio | decode kiln / llama.cpp "
          "| ratio | kiln read GB/s (% of read pass) | kiln peak RSS MB (file + KV) "
          "| kiln-compile s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in table:
        print("| %s | %s | %.0f | %.0f / %.0f | %.2fx | %.1f / %.1f | %.2fx | %.1f (%.0f%%) | %.0f (%.0f) "
              "| %.0f |"
              % (r["shape"], r["type"], r["file_mb"], r["k"]["prefill"], r["l"]["prefill"],
                 r["k"]["prefill"] / r["l"]["prefill"], r["k"]["decode"], r["l"]["decode"],
                 r["k"]["decode"] / r["l"]["decode"], r["kiln_gbs"], 100 * r["kiln_gbs"] / read_bw,
                 r["k"]["rss"], r["budget_mb"], r["compile_s"]))


if __name__ == "__main__":
    main()
