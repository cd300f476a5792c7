#!/usr/bin/env python3
"""End-to-end parity of compiled decoder-only models with PyTorch.

For each configuration: a reference model (reference.py) with random
weights is exported with kiln_export, compiled with kiln-compile and run.
Checks, for every configuration:
  (a) the prefill logits and the logits of every decode step agree with
      PyTorch (reference forward over prompt + tokens so far, float64)
      within 1e-4 x max|logit|;
  (b) 32 greedy tokens equal PyTorch's greedy continuation;
  (c) the compiled whole-sequence form (--forward-logits over prompt +
      generated tokens) equals prefill + step-by-step decode within the
      same tolerance: the idea Kiln is built on.
Prints the measured errors; exits non-zero on any failure.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference  # noqa: E402
import kiln_export  # noqa: E402

torch.set_num_threads(1)

CONFIGS = [
    ("gpt2-4h", "gpt2", dict(n_embd=64, n_head=4, n_layer=2, n_positions=128, vocab_size=300,
                             layer_norm_epsilon=1e-5)),
    ("gpt2-6h", "gpt2", dict(n_embd=48, n_head=6, n_layer=2, n_positions=96, vocab_size=261,
                             layer_norm_epsilon=1e-5)),
    ("llama-mha", "llama", dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=4, rms_norm_eps=1e-5,
                                rope_theta=10000.0, max_position_embeddings=128, vocab_size=300,
                                tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)),
    ("llama-gqa2", "llama", dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                                 num_attention_heads=8, num_key_value_heads=2, rms_norm_eps=1e-6,
                                 rope_theta=500000.0, max_position_embeddings=64, vocab_size=256,
                                 tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)),
    ("llama-mqa-tied", "llama", dict(hidden_size=96, intermediate_size=128, num_hidden_layers=2,
                                     num_attention_heads=6, num_key_value_heads=1,
                                     rms_norm_eps=1e-5, rope_theta=10000.0,
                                     max_position_embeddings=80, vocab_size=320,
                                     tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)),
    ("llama-3h", "llama", dict(hidden_size=72, intermediate_size=100, num_hidden_layers=3,
                               num_attention_heads=3, num_key_value_heads=3, rms_norm_eps=1e-5,
                               rope_theta=10000.0, max_position_embeddings=64, vocab_size=270,
                               tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)),
]

STEPS = 32
TOL = 1e-4


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), r.returncode, r.stderr))
    return r.stdout


def check_config(name, family, cfg, kiln_bin, work, seed):
    model = (reference.GPT2 if family == "gpt2" else reference.Llama)(cfg)
    reference.randomize(model, seed)
    model = model.double().eval()
    path = os.path.join(work, name + ".kiln")
    exe = os.path.join(work, name)
    state = {k: v.float() for k, v in model.state_dict().items()}
    (kiln_export.export_gpt2 if family == "gpt2" else kiln_export.export_llama)(path, state, cfg)
    run([os.path.join(kiln_bin, "kiln-compile"), path, "-o", exe])

    vocab = cfg["vocab_size"]
    rng = np.random.default_rng(seed)
    prompt = [int(t) for t in rng.integers(3, vocab, size=7)]
    out = json.loads(run([exe, "--prompt-tokens", ",".join(map(str, prompt)), "-n", str(STEPS),
                          "--temp", "0", "--ignore-eos", "--output=json", "--logits"]))
    tokens, logits = out["tokens"], np.array(out["logits"], dtype=np.float64)
    assert len(tokens) == STEPS and logits.shape == (STEPS, vocab), (len(tokens), logits.shape)
    assert out["timings"]["prompt_tokens"] == len(prompt)
    assert out["timings"]["generated_tokens"] == STEPS

    # (a) + (b): PyTorch's greedy continuation, step by step.
    seq = list(prompt)
    worst = 0.0
    ref_tokens = []
    with torch.no_grad():
        full = model(torch.tensor(prompt + tokens[:-1])).numpy()
    for i in range(STEPS):
        ref = full[len(prompt) - 1 + i]
        scale = np.abs(ref).max()
        err = np.abs(logits[i] - ref).max() / scale
        worst = max(worst, err)
        if err > TOL:
            raise AssertionError("%s: step %d logits differ from PyTorch by %.3g x max|logit|"
                                 % (name, i, err))
        ref_tokens.append(int(np.argmax(ref)))
    # The reference's own greedy loop (not fed Kiln's tokens).
    with torch.no_grad():
        greedy = list(prompt)
        for _ in range(STEPS):
            greedy.append(int(model(torch.tensor(greedy))[-1].argmax()))
    if greedy[len(prompt):] != tokens:
        raise AssertionError("%s: greedy tokens differ:\n kiln  %s\n torch %s"
                             % (name, tokens, greedy[len(prompt):]))

    # (c) whole-sequence form == prefill + decode.
    fwd = json.loads(run([exe, "--prompt-tokens", ",".join(map(str, prompt + tokens[:-1])),
                          "--forward-logits"]))
    whole = np.array(fwd["logits"], dtype=np.float64)[len(prompt) - 1:]
    idea = np.abs(whole - logits).max() / np.abs(logits).max()
    if idea > TOL:
        raise AssertionError("%s: whole-sequence logits differ from prefill+decode by %.3g"
                             % (name, idea))
    print("%-16s torch vs kiln max err %.2e x max|logit|; whole-sequence vs incremental %.2e; "
          "%d greedy tokens identical" % (name, worst, idea, STEPS))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln-bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--only", help="run one configuration")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    failed = 0
    for seed, (name, family, cfg) in enumerate(CONFIGS):
        if args.only and name != args.only:
            continue
        try:
            check_config(name, family, cfg, args.kiln_bin, args.work, 1000 + seed)
        except Exception as e:  # report every configuration, then fail
            failed += 1
            print("FAIL %s: %s" % (name, e))
    if failed:
        sys.exit(1)
    print("all %d configurations agree" % (len(CONFIGS) if not args.only else 1))


if __name__ == "__main__":
    main()
