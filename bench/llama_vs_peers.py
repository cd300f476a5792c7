#!/usr/bin/env python3
"""Kiln against llama.cpp and PyTorch on Llama-architecture models, same
weights, same CPU, measured side by side (issue: "faster than llama.cpp").

For each shape a Llama with random weights (speed does not depend on them)
is written as an F32 GGUF file (test/lib/gguf_writer.py); llama.cpp reads it,
kiln-convert converts it for Kiln, and PyTorch runs the same tensors:

  small     dim 288, 6 layers, 6 heads, ffn 768, vocab 32000, context 256
  base      dim 768, 12 layers, 12 heads, ffn 2048, vocab 32000, context 1024
  base-gqa  base with 4 key/value heads

Systems (threads = --threads, default 2):
  kiln       kiln-compile's executable (--output=json timings: prefill_ms,
             decode_ms over the decode calls)
  llama.cpp  llama-bench built natively by scripts/llama-cpp.sh
             (-DGGML_NATIVE=ON) at its defaults: f16 KV cache (llama-bench
             offers no f32 one), flash attention auto
  pytorch    eager PyTorch with a KV cache, OMP_WAIT_POLICY=PASSIVE

Figures: prefill tokens/s for a 128-token prompt; decode tokens/s for 128
new tokens after that prompt and after a long one (context - 128 tokens,
~900 for base); peak RSS of the process; Kiln/peer ratios; decode as a
fraction of the memory-bandwidth roofline (bandwidth measured here with a
STREAM-triad loop on --threads threads; bytes per token = the weights a
decode step reads, all but the embedding table, plus the KV cache read at
that context); and, since a decode step only reads, the rate at which each
system reads those bytes against a read-only pass measured the same way.
Medians of --runs runs, systems interleaved within each run.

    /usr/bin/python3 bench/llama_vs_peers.py [--shapes small,base,base-gqa] [--runs 3]
"""
import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "lib"))
sys.path.insert(0, os.path.join(ROOT, "test", "e2e"))

SHAPES = {
    "small": dict(hidden_size=288, num_hidden_layers=6, num_attention_heads=6,
                  num_key_value_heads=6, intermediate_size=768, vocab_size=32000,
                  max_position_embeddings=256),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 num_key_value_heads=12, intermediate_size=2048, vocab_size=32000,
                 max_position_embeddings=1024),
    "base-gqa": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     num_key_value_heads=4, intermediate_size=2048, vocab_size=32000,
                     max_position_embeddings=1024),
}
PROMPT, NEW = 128, 128

TRIAD_C = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
/* STREAM's triad a = b + s*c on T threads (pthreads), 3 x 256 MiB of
   doubles, far beyond the caches; the best of 7 passes, counted as STREAM
   does (three words per element). Then a read-only pass (the sum of b, the
   access pattern of a decode step's weights), best of 7. Prints both. */
static size_t n; static double *a, *b, *c; static int T;
static unsigned long long sums[64];
static void *part(void *arg) {
  size_t t = (size_t)arg, lo = n * t / T, hi = n * (t + 1) / T;
  for (size_t i = lo; i < hi; ++i) a[i] = b[i] + 3.0 * c[i];
  return 0;
}
static void *readAll(void *arg) {
  size_t t = (size_t)arg, lo = n * t / T, hi = n * (t + 1) / T;
  /* Integer sums of the bits: vectorized, so the loop is bound by memory,
     not by floating-point add latency. */
  const unsigned long long *u = (const unsigned long long *)b;
  unsigned long long s = 0;
  for (size_t i = lo; i < hi; ++i) s += u[i];
  sums[t] = s;
  return 0;
}
static void *init(void *arg) {
  size_t t = (size_t)arg, lo = n * t / T, hi = n * (t + 1) / T;
  for (size_t i = lo; i < hi; ++i) { a[i] = 0; b[i] = 1; c[i] = 2; }
  return 0;
}
static void all(void *(*fn)(void *)) {
  pthread_t th[64];
  for (int t = 0; t < T; ++t) pthread_create(&th[t], 0, fn, (void *)(size_t)t);
  for (int t = 0; t < T; ++t) pthread_join(th[t], 0);
}
int main(int argc, char **argv) {
  T = argc > 1 ? atoi(argv[1]) : 1;
  n = (size_t)1 << 25;
  a = malloc(n * 8); b = malloc(n * 8); c = malloc(n * 8);
  all(init);
  double best[2] = {1e30, 1e30};
  for (int k = 0; k < 2; ++k)
    for (int r = 0; r < 7; ++r) {
      struct timespec t0, t1;
      clock_gettime(CLOCK_MONOTONIC, &t0);
      all(k ? readAll : part);
      clock_gettime(CLOCK_MONOTONIC, &t1);
      double s = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
      if (s < best[k]) best[k] = s;
    }
  printf("%.3f %.3f\n", 3.0 * n * 8 / best[0] / 1e9, 1.0 * n * 8 / best[1] / 1e9);
  return a[n / 2] == 7.0 && sums[0] != 1 ? 0 : 1;
}
"""


def run(cmd, env=None, timeout=3600):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if p.returncode != 0:
        sys.exit("`%s` failed (%d):\n%s%s" % (" ".join(cmd[:4]), p.returncode, p.stdout[-2000:],
                                              p.stderr[-2000:]))
    return p


def timed(cmd, env=None):
    """Runs cmd under GNU time; returns (stdout, peak RSS in MB)."""
    p = run(["/usr/bin/time", "-f", "KILN_MAXRSS %M"] + cmd, env=env)
    m = re.search(r"KILN_MAXRSS (\d+)", p.stderr)
    return p.stdout, int(m.group(1)) / 1024.0


def bandwidth(work, threads):
    src, exe = os.path.join(work, "triad.c"), os.path.join(work, "triad")
    with open(src, "w") as f:
        f.write(TRIAD_C)
    run(["clang-22", "-O3", "-march=native", "-pthread", src, "-o", exe])
    runs = [run([exe, str(threads)]).stdout.split() for _ in range(3)]
    return (statistics.median(float(r[0]) for r in runs),
            statistics.median(float(r[1]) for r in runs))


def decode_bytes(cfg, ctx):
    d, L, ffn, V = (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"],
                    cfg["vocab_size"])
    hd = d // cfg["num_attention_heads"]
    kvw = cfg["num_key_value_heads"] * hd
    per_layer = d * d + 2 * d * kvw + d * d + 3 * d * ffn + 2 * d
    weights = L * per_layer + d + V * d + d  # + final norm, LM head, one embedding row
    kv = L * 2 * ctx * kvw
    return 4 * (weights + kv)


# ---------------------------------------------------------------- PyTorch ---

def torch_worker(args):
    """Subprocess: eager PyTorch with a KV cache on the GGUF's weights."""
    import numpy as np
    import torch
    import reference
    torch.set_num_threads(args.threads)
    cfg = json.loads(args.torch_cfg)
    model = reference.Llama(cfg)
    model.load_state_dict(torch.load(args.torch_weights))
    model.eval()
    layers = model.model.layers
    heads, kvh = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg["hidden_size"] // heads
    theta = cfg.get("rope_theta", 10000.0)
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))

    def rope(x, pos):  # x [s, h, hd], rotate-half
        ang = torch.arange(pos, pos + x.shape[0], dtype=torch.float32)[:, None] * inv[None]
        cos, sin = torch.cat([ang.cos()] * 2, -1)[:, None], torch.cat([ang.sin()] * 2, -1)[:, None]
        x1, x2 = x[..., :hd // 2], x[..., hd // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    def step(ids, cache, pos):
        x = model.model.embed_tokens(ids)
        s = x.shape[0]
        for i, layer in enumerate(layers):
            a = layer.self_attn
            h = layer.input_layernorm(x)
            q = rope(a.q_proj(h).view(s, heads, hd), pos)
            k = rope(a.k_proj(h).view(s, kvh, hd), pos)
            v = a.v_proj(h).view(s, kvh, hd)
            kc, vc = cache[i]
            kc[pos:pos + s], vc[pos:pos + s] = k, v
            K = kc[:pos + s].repeat_interleave(heads // kvh, 1).transpose(0, 1)
            Vv = vc[:pos + s].repeat_interleave(heads // kvh, 1).transpose(0, 1)
            att = (q.transpose(0, 1) @ K.transpose(1, 2)) / math.sqrt(hd)
            if s > 1:
                mask = torch.triu(torch.ones(s, pos + s, dtype=torch.bool), pos + 1)
                att = att.masked_fill(mask, float("-inf"))
            o = (att.softmax(-1) @ Vv).transpose(0, 1).reshape(s, heads * hd)
            x = x + a.o_proj(o)
            m = layer.mlp
            h = layer.post_attention_layernorm(x)
            x = x + m.down_proj(torch.nn.functional.silu(m.gate_proj(h)) * m.up_proj(h))
        return model.lm_head(model.model.norm(x[-1:]))

    out = {}
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for name, plen in (("short", PROMPT), ("long", cfg["max_position_embeddings"] - NEW)):
            cache = [(torch.zeros(cfg["max_position_embeddings"], kvh, hd),
                      torch.zeros(cfg["max_position_embeddings"], kvh, hd)) for _ in layers]
            ids = torch.tensor(rng.integers(3, cfg["vocab_size"], size=plen))
            t0 = time.perf_counter()
            logits = step(ids, cache, 0)
            t1 = time.perf_counter()
            tok = int(logits.argmax())
            for i in range(NEW - 1):
                tok = int(step(torch.tensor([tok]), cache, plen + i).argmax())
            t2 = time.perf_counter()
            out[name] = dict(prefill_tps=plen / (t1 - t0), decode_tps=(NEW - 1) / (t2 - t1))
    print(json.dumps(out))


# ------------------------------------------------------------------ main ----

def measure_kiln(exe, cfg, threads, rng, long=True):
    """Prefill and decode tokens/s of a PROMPT-token prompt ("short") and,
    with `long`, of a prompt that fills the context but NEW ("long")."""
    res = {}
    rss = 0.0
    runs = [("short", PROMPT)]
    if long:
        runs.append(("long", cfg["max_position_embeddings"] - NEW))
    for name, plen in runs:
        prompt = ",".join(str(int(t)) for t in rng.integers(3, cfg["vocab_size"], size=plen))
        out, r = timed([exe, "--prompt-tokens", prompt, "-n", str(NEW), "--temp", "0",
                        "--ignore-eos", "--output=json", "-t", str(threads)])
        t = json.loads(out)["timings"]
        res[name] = dict(prefill_tps=plen / t["prefill_ms"] * 1e3,
                         decode_tps=(t["generated_tokens"] - 1) / t["decode_ms"] * 1e3)
        rss = max(rss, r)
    res["rss_mb"] = rss
    return res


def measure_llama(bench, gguf, cfg, threads, long=True):
    depth = cfg["max_position_embeddings"] - NEW
    # llama-bench at its defaults (f16 KV cache, flash attention auto): the
    # peer at its best; it offers no f32 KV cache.
    common = [bench, "-m", gguf, "-t", str(threads), "-r", "1", "-o", "json"]
    out, rss = timed(common + ["-p", str(PROMPT), "-n", str(NEW)])
    rows = json.loads(out)
    pp = [r["avg_ts"] for r in rows if r["n_prompt"] == PROMPT and r["n_gen"] == 0][0]
    tg = [r["avg_ts"] for r in rows if r["n_gen"] == NEW and r["n_prompt"] == 0][0]
    res = {"short": dict(prefill_tps=pp, decode_tps=tg), "rss_mb": rss}
    if long:
        out2, rss2 = timed(common + ["-p", "0", "-n", str(NEW), "-d", str(depth)])
        tg_long = [r["avg_ts"] for r in json.loads(out2) if r["n_gen"] == NEW][0]
        res["long"] = dict(prefill_tps=float("nan"), decode_tps=tg_long)
        res["rss_mb"] = max(rss, rss2)
    return res


def measure_torch(cfg, weights, threads):
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS=str(threads))
    out, rss = timed([sys.executable, os.path.abspath(__file__), "--torch-worker",
                      "--torch-cfg", json.dumps(cfg), "--torch-weights", weights,
                      "--threads", str(threads)], env=env)
    res = json.loads(out)
    res["rss_mb"] = rss
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default="small,base,base-gqa")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kiln-bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--work", default=None)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--torch-cfg", help=argparse.SUPPRESS)
    ap.add_argument("--torch-weights", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.torch_worker:
        return torch_worker(args)

    import numpy as np
    import torch
    import gguf_writer
    import reference
    work = args.work or tempfile.mkdtemp(prefix="kiln-bench-")
    os.makedirs(work, exist_ok=True)
    llama_bin = run([os.path.join(ROOT, "scripts", "llama-cpp.sh")]).stdout.strip().splitlines()[-1]
    bench = os.path.join(llama_bin, "llama-bench")
    bw, read_bw = bandwidth(work, args.threads)
    print("memory bandwidth (%d threads): STREAM triad %.1f GB/s (the roofline below); "
          "read-only %.1f GB/s" % (args.threads, bw, read_bw))
    rows = []
    for shape in args.shapes.split(","):
        cfg = dict(SHAPES[shape], rms_norm_eps=1e-5, rope_theta=10000.0, bos_token_id=1,
                   eos_token_id=2, tie_word_embeddings=False)
        torch.manual_seed(0)
        model = reference.randomize(reference.Llama(cfg), 0)
        gguf = os.path.join(work, shape + ".gguf")
        gguf_writer.write_llama_gguf(gguf, model.state_dict(), cfg)
        weights = os.path.join(work, shape + ".pt")
        torch.save(model.state_dict(), weights)
        del model
        kiln_file, exe = os.path.join(work, shape + ".kiln"), os.path.join(work, shape)
        run([os.path.join(args.kiln_bin, "kiln-convert"), gguf, "-o", kiln_file])
        t0 = time.time()
        run([os.path.join(args.kiln_bin, "kiln-compile"), kiln_file, "-o", exe])
        compile_s = time.time() - t0
        systems = {"kiln": lambda: measure_kiln(exe, cfg, args.threads,
                                                 np.random.default_rng(1)),
                   "llama.cpp": lambda: measure_llama(bench, gguf, cfg, args.threads)}
        if not args.no_torch:
            systems["pytorch"] = lambda: measure_torch(cfg, weights, args.threads)
        samples = {s: [] for s in systems}
        for _ in range(args.runs):
            for s, fn in systems.items():
                samples[s].append(fn())
        med = {}
        for s, runs_ in samples.items():
            med[s] = {k: dict((m, statistics.median(r[k][m] for r in runs_))
                              for m in ("prefill_tps", "decode_tps")) for k in ("short", "long")}
            med[s]["rss_mb"] = statistics.median(r["rss_mb"] for r in runs_)
        n_params = sum(p.numel() for p in torch.load(weights).values())
        weights_mb = n_params * 4 / 2 ** 20
        ctx_long = cfg["max_position_embeddings"]
        kv_mb = (cfg["num_hidden_layers"] * 2 * ctx_long * cfg["num_key_value_heads"]
                 * (cfg["hidden_size"] // cfg["num_attention_heads"]) * 4 / 2 ** 20)
        roof_short = bw * 1e9 / decode_bytes(cfg, PROMPT + NEW // 2)
        roof_long = bw * 1e9 / decode_bytes(cfg, ctx_long - NEW // 2)
        print("\n== %s: %.1f M parameters (%.0f MB f32), KV cache at context %d: %.0f MB; "
              "kiln-compile %.1f s; roofline decode %.0f tok/s (short), %.0f tok/s (long)"
              % (shape, n_params / 1e6, weights_mb, ctx_long, kv_mb, compile_s, roof_short,
                 roof_long))
        print("%-10s %14s %14s %16s %10s %12s" % ("system", "prefill tok/s", "decode tok/s",
                                                  "decode@%d tok/s" % (ctx_long - NEW),
                                                  "peak RSS", "roofline"))
        for s in systems:
            m = med[s]
            print("%-10s %14.1f %14.1f %16.1f %8.0f MB %5.0f%% /%3.0f%%"
                  % (s, m["short"]["prefill_tps"], m["short"]["decode_tps"],
                     m["long"]["decode_tps"], m["rss_mb"],
                     100 * m["short"]["decode_tps"] / roof_short,
                     100 * m["long"]["decode_tps"] / roof_long))
        for peer in [p for p in systems if p != "kiln"]:
            k, p = med["kiln"], med[peer]
            print("kiln / %-9s prefill %.2fx, decode %.2fx, decode@%d %.2fx, RSS %.2fx"
                  % (peer, k["short"]["prefill_tps"] / p["short"]["prefill_tps"],
                     k["short"]["decode_tps"] / p["short"]["decode_tps"], ctx_long - NEW,
                     k["long"]["decode_tps"] / p["long"]["decode_tps"],
                     k["rss_mb"] / p["rss_mb"]))
        print("kiln peak RSS - (weights + KV cache) = %.0f MB"
              % (med["kiln"]["rss_mb"] - weights_mb - kv_mb))
        print("decode reads (short context): "
              + ", ".join("%s %.1f GB/s = %.0f%% of read-only"
                          % (s, med[s]["short"]["decode_tps"] * decode_bytes(cfg, PROMPT + NEW // 2)
                             / 1e9, 100 * med[s]["short"]["decode_tps"]
                             * decode_bytes(cfg, PROMPT + NEW // 2) / 1e9 / read_bw)
                          for s in systems))
        rows.append((shape, med))


if __name__ == "__main__":
    main()
