#!/usr/bin/env python3
"""Checks gguf_writer.py against llama.cpp: writes small random models of
test/e2e/reference.py as GGUF files, runs them through llama-ref (built by
scripts/llama-cpp.sh) and compares with the PyTorch reference (float64).

  /usr/bin/python3 test/lib/check_gguf_writer.py --llama-ref PATH/llama-ref [--keep DIR] [-n N]

For every case:
  logits  llama.cpp's logits of the last prompt position vs PyTorch's on the
          same ids: max|diff| <= tol * max|logit|. The PyTorch model uses the
          weights as stored in the file (rounded to F16/BF16/Q8_0 for those
          cases), so the tolerance measures llama.cpp's arithmetic only:
          1e-3 for F32 weights; looser where ggml also rounds activations
          (F16/BF16 matmuls take F16/BF16 activations, Q8_0 takes Q8_0).
  greedy  llama.cpp's n greedy tokens (argmax, no stop) vs PyTorch's greedy
          continuation (float64 forward over prompt + tokens so far). Must be
          equal for the F32 cases; for the rounded cases a difference is
          reported but accepted when PyTorch's top-2 margin at the first
          differing step is within the logit tolerance.
  vocab   --tokenize / --detokenize with the writer's minimal vocabulary:
          detokenize(tokenize(text)) == text.
GPT-2's F32 error (~1e-4) comes from ggml's CPU GELU, which rounds to fp16
and uses a lookup table; the rel-gelu16 column repeats the comparison with
PyTorch doing the same (~1e-6), showing the file itself is exact.
Prints a table; exits 1 on any disagreement.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import gguf_writer  # noqa: E402
import reference  # noqa: E402

LLAMA_BASE = dict(hidden_size=64, intermediate_size=160, num_attention_heads=4, num_hidden_layers=2,
                  vocab_size=300, max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=10000.0)
GPT2_BASE = dict(n_embd=64, n_head=4, n_layer=2, vocab_size=400, n_positions=128, layer_norm_epsilon=1e-5)

# name, family, cfg overrides, dtype, relative logit tolerance
CASES = [
    ("llama-mha", "llama", {}, "F32", 1e-3),
    ("llama-gqa", "llama", dict(num_key_value_heads=2, vocab_size=512, rope_theta=500000.0, rms_norm_eps=1e-6), "F32", 1e-3),
    ("llama-tied", "llama", dict(tie_word_embeddings=True, num_hidden_layers=3), "F32", 1e-3),
    ("llama-headdim", "llama", dict(head_dim=32, num_key_value_heads=2), "F32", 1e-3),
    ("llama-f16", "llama", dict(num_key_value_heads=2), "F16", 1e-2),
    ("llama-bf16", "llama", dict(num_key_value_heads=2), "BF16", 3e-2),
    ("llama-q8_0", "llama", dict(num_key_value_heads=2), "Q8_0", 3e-2),
    # RoPE scaling: Llama 3.1's as rope_freqs.weight (pair 0 kept, 1 blended,
    # 2..7 divided by 8 with an original context of 64), linear and YaRN keys.
    ("llama3-rope-freqs", "llama", dict(num_key_value_heads=2, rope_theta=500000.0,
                                        tie_word_embeddings=True,
                                        rope_scaling=dict(rope_type="llama3", factor=8.0,
                                                          low_freq_factor=1.0, high_freq_factor=4.0,
                                                          original_max_position_embeddings=64)),
     "F32", 1e-3),
    ("llama-linear-rope", "llama", dict(rope_scaling=dict(type="linear", factor=4.0)), "F32", 1e-3),
    ("llama-yarn", "llama", dict(num_key_value_heads=1, max_position_embeddings=512,
                                 rope_scaling=dict(rope_type="yarn", factor=4.0,
                                                   original_max_position_embeddings=128)),
     "F32", 1e-3),
    # Qwen2 (q/k/v biases) and Qwen3 (per-head q/k norms, head width 32 over
    # a 64-wide model) as llama.cpp's qwen2 / qwen3 architectures.
    ("qwen2", "llama", dict(gguf_arch="qwen2", qkv_bias=True, num_key_value_heads=2,
                            rope_theta=1000000.0, tie_word_embeddings=True), "F32", 1e-3),
    ("qwen3", "llama", dict(gguf_arch="qwen3", architectures=["Qwen3ForCausalLM"],
                            num_key_value_heads=2, head_dim=32, rope_theta=1000000.0,
                            rms_norm_eps=1e-6), "F32", 1e-3),
    ("qwen3-yarn", "llama", dict(gguf_arch="qwen3", architectures=["Qwen3ForCausalLM"],
                                 num_key_value_heads=1, max_position_embeddings=512,
                                 rope_scaling=dict(rope_type="yarn", factor=4.0,
                                                   original_max_position_embeddings=128)),
     "F32", 1e-3),
    # Gemma 3 as llama.cpp's gemma3: layers 0 and 2 local (window 8, base
    # 10000), layer 1 global with linear RoPE scaling 2; head width 32 over
    # a 64-wide model (q scaled by 1/sqrt(32)).
    ("gemma3", "gemma3", dict(gguf_arch="gemma3", architectures=["Gemma3ForCausalLM"],
                              num_hidden_layers=3, num_key_value_heads=2, head_dim=32,
                              rope_theta=1000000.0, rope_local_base_freq=10000.0,
                              rope_scaling=dict(rope_type="linear", factor=2.0),
                              query_pre_attn_scalar=32, sliding_window=8,
                              sliding_window_pattern=2, rms_norm_eps=1e-6,
                              tie_word_embeddings=True), "F32", 1e-3),
    ("gpt2", "gpt2", {}, "F32", 1e-3),
    ("gpt2-untied", "gpt2", dict(tie_word_embeddings=False, n_layer=3, vocab_size=333), "F32", 1e-3),
    ("gpt2-f16", "gpt2", {}, "F16", 1e-2),
    ("gpt2-q8_0", "gpt2", {}, "Q8_0", 3e-2),
]

TEXTS = ["hello world", "The quick brown fox", "  two  spaces", "tab\tand\nnewline", "héllo wörld ✓ 日本"]


def stored(x, dtype):
    """x (float32 numpy, file orientation) as llama.cpp will read it back."""
    if dtype == "F32":
        return x
    if dtype == "F16":
        return x.astype(np.float16).astype(np.float32)
    if dtype == "BF16":
        return (gguf_writer.f32_to_bf16_bits(x).astype(np.uint32) << 16).view(np.float32).reshape(x.shape)
    if dtype == "Q8_0":
        if x.shape[-1] % 32:
            return x.astype(np.float16).astype(np.float32)  # the writer's F16 fallback
        return gguf_writer.dequantize_q8_0(gguf_writer.quantize_q8_0(x), x.shape)
    raise ValueError(dtype)


def round_like_file(model, family, dtype):
    """Round the model's matrices in place the way the writer stores them."""
    if dtype == "F32":
        return
    with torch.no_grad():
        seen = set()
        for name, p in model.named_parameters():  # tied weights appear once
            if p.dim() != 2 or id(p) in seen:
                continue
            seen.add(id(p))
            x = p.detach().float().numpy()
            conv = family == "gpt2" and isinstance(reference.getattr_path(model, name), reference.Conv1D)
            if conv:  # stored transposed
                x = stored(np.ascontiguousarray(x.T), dtype).T
            else:
                x = stored(x, dtype)
            p.copy_(torch.from_numpy(np.ascontiguousarray(x)))


def _gpt2_block_fp16_gelu(self, x):
    """reference.GPT2Block.forward with ggml's CPU GELU: llama.cpp's CPU
    backend (GGML_GELU_FP16) rounds the GELU input to fp16 and looks the
    result up in an fp16 table (identity >= 10, zero <= -10)."""
    q, k, v = self.attn.c_attn(self.ln_1(x)).chunk(3, dim=-1)
    x = x + self.attn.c_proj(reference.causal_attention(q, k, v, self.heads, self.heads))
    h = self.mlp.c_fc(self.ln_2(x))
    h16 = h.float().half().to(h.dtype)
    g = 0.5 * h16 * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h16 + 0.044715 * h16 ** 3)))
    g = g.float().half().to(h.dtype)
    g = torch.where(h <= -10, torch.zeros_like(h), torch.where(h >= 10, h, g))
    return x + self.mlp.c_proj(g)


def torch_logits_fp16_gelu(model, ids):
    plain = reference.GPT2Block.forward
    reference.GPT2Block.forward = _gpt2_block_fp16_gelu
    try:
        return torch_logits(model, ids)
    finally:
        reference.GPT2Block.forward = plain


def write(family, path, state_dict, cfg, dtype):
    """The GGUF file of a case: gpt2, or llama's graph as GGUF architecture
    cfg["gguf_arch"] (llama, qwen2, qwen3)."""
    if family == "gpt2":
        return gguf_writer.write_gpt2_gguf(path, state_dict, cfg, dtype=dtype)
    # gemma3: reference.Gemma3's state dict, llama's names plus its norms.
    return gguf_writer.write_llama_gguf(path, state_dict, cfg, dtype=dtype,
                                        arch=cfg.get("gguf_arch", "llama"))


def build(family, overrides, seed):
    cfg = dict(GPT2_BASE if family == "gpt2" else LLAMA_BASE)
    cfg.update(overrides)
    model = reference.model_class(family)(cfg)
    reference.randomize(model, seed)
    return model, cfg


def torch_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor(ids))[-1].numpy()


def torch_greedy(model, ids, n):
    seq, out, margins = list(ids), [], []
    for _ in range(n):
        logits = torch_logits(model, seq)
        top2 = np.sort(logits)[-2:]
        t = int(np.argmax(logits))
        out.append(t)
        margins.append(float(top2[1] - top2[0]))
        seq.append(t)
    return out, margins


def run_ref(llama_ref, path, ids, n):
    cmd = [llama_ref, path, "--tokens", ",".join(map(str, ids)), "-n", str(n), "--threads", "2"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), p.returncode, p.stderr.strip()))
    return json.loads(p.stdout)


def run_lines(llama_ref, path, mode, lines):
    p = subprocess.run([llama_ref, path, mode], input="".join(json.dumps(x) + "\n" for x in lines),
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("llama-ref %s failed (%d): %s" % (mode, p.returncode, p.stderr.strip()))
    return [json.loads(line) for line in p.stdout.splitlines()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--llama-ref", required=True, help="path to llama-ref (scripts/llama-cpp.sh prints its dir)")
    ap.add_argument("--keep", help="write the .gguf files here and keep them")
    ap.add_argument("-n", type=int, default=16, help="greedy tokens to compare (default 16)")
    ap.add_argument("--prompt-len", type=int, default=12)
    args = ap.parse_args()

    tmp = args.keep or tempfile.mkdtemp(prefix="gguf-check-")
    os.makedirs(tmp, exist_ok=True)
    rows, failures = [], []
    for i, (name, family, overrides, dtype, tol) in enumerate(CASES):
        model, cfg = build(family, overrides, seed=100 + i)
        path = os.path.join(tmp, name + ".gguf")
        write(family, path, model.state_dict(), cfg, dtype)
        round_like_file(model, family, dtype)
        model.double()
        rng = np.random.default_rng(i)
        ids = [int(x) for x in rng.integers(0, cfg["vocab_size"], args.prompt_len)]

        got = run_ref(args.llama_ref, path, ids, args.n)
        want = torch_logits(model, ids)
        have = np.asarray(got["logits"], dtype=np.float64)
        problems = []
        if got["n_vocab"] != cfg["vocab_size"] or have.shape != want.shape:
            problems.append("n_vocab %d, logits %s; expected %d" % (got["n_vocab"], have.shape, cfg["vocab_size"]))
            scale = diff = rel = float("nan")
        else:
            scale = float(np.abs(want).max())
            diff = float(np.abs(have - want).max())
            rel = diff / scale
            if not rel <= tol:
                problems.append("logits differ: max|diff| %.3g > %.0e * max|logit| %.3g" % (diff, tol, scale))
        # GPT-2: what is left once PyTorch uses ggml's fp16 GELU too.
        rel16 = float("nan")
        if family == "gpt2" and have.shape == want.shape:
            rel16 = float(np.abs(have - torch_logits_fp16_gelu(model, ids)).max()) / scale
        greedy, margins = torch_greedy(model, ids, args.n)
        same = 0
        while same < len(greedy) and same < len(got["tokens"]) and greedy[same] == got["tokens"][same]:
            same += 1
        greedy_note = "%d/%d" % (same, args.n)
        if same < args.n:
            near_tie = same < len(margins) and margins[same] <= tol * scale
            if dtype == "F32" or not near_tie:
                problems.append("greedy tokens differ at step %d: llama.cpp %s, PyTorch %s (top-2 margin %.3g)"
                                % (same, got["tokens"], greedy, margins[same]))
            else:
                greedy_note += " (tie %.2g)" % margins[same]

        vocab_note = "-"
        if dtype == "F32" and not overrides.get("tie_word_embeddings") and name in ("llama-mha", "gpt2"):
            toks = run_lines(args.llama_ref, path, "--tokenize", TEXTS)
            back = run_lines(args.llama_ref, path, "--detokenize", toks)
            bad = [(t, b) for t, b in zip(TEXTS, back) if t != b]
            if len(toks) != len(TEXTS) or bad:
                problems.append("tokenize/detokenize round trip: %r" % (bad,))
            vocab_note = "%d/%d" % (len(TEXTS) - len(bad), len(TEXTS))
            if name == "llama-mha":
                print("tokenize(%r) = %s" % (TEXTS[0], toks[0]))

        rows.append((name, family, dtype, cfg["vocab_size"], scale, diff, rel, rel16, tol, greedy_note, vocab_note,
                     "ok" if not problems else "FAIL"))
        failures += ["%s: %s" % (name, p) for p in problems]

    head = ("case", "arch", "dtype", "vocab", "max|logit|", "max|diff|", "rel", "rel-gelu16", "tol", "greedy",
            "vocab", "")
    fmt = "%-14s %-5s %-5s %5s %10s %10s %9s %10s %6s %-12s %-5s %s"
    print(fmt % head)
    for r in rows:
        print(fmt % (r[0], r[1], r[2], r[3], "%.4g" % r[4], "%.3g" % r[5], "%.2e" % r[6],
                     "-" if math.isnan(r[7]) else "%.2e" % r[7], "%.0e" % r[8], r[9], r[10], r[11]))
    print("rel = max|diff| / max|logit| (llama.cpp vs PyTorch float64 on the weights as stored); "
          "rel-gelu16: the same with PyTorch using ggml's fp16 GELU table (gpt2)")
    for f in failures:
        print("FAIL " + f, file=sys.stderr)
    if not args.keep:
        for f in os.listdir(tmp):
            os.remove(os.path.join(tmp, f))
        os.rmdir(tmp)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
