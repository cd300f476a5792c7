#!/usr/bin/env python3
"""Compiled models with a half-precision KV cache (kiln-compile
--kv-cache-type f16 or bf16) against PyTorch.

For each configuration a reference model (reference.py) with random weights
is exported with kiln_export and compiled once per cache type; the
executable generates 32 greedy tokens from a 20-token prompt with
`--output=json --logits`. The oracle is the float64 reference whose
attention reads its keys and values rounded to the cache's type
(reference.set_kv_dtype), teacher-forced over prompt + generated tokens:
every step's logits (prefill's attention reads the cache too) within
1e-4 x max|logit|, and every greedy token its argmax. Also printed: the
distance to the unrounded reference, what the smaller cache costs.

    kv_cache_parity.py --kiln-bin build/bin --work DIR
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference  # noqa: E402
from decoder_parity import Failure, export_random, rel_err, run, run_json  # noqa: E402

torch.set_num_threads(1)
PROMPT, STEPS, TOL = 20, 32, 1e-4
CONFIGS = [
    ("llama-gqa2", "llama", dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                                 num_attention_heads=8, num_key_value_heads=2, rms_norm_eps=1e-6,
                                 rope_theta=500000.0, max_position_embeddings=64, vocab_size=256,
                                 tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)),
    ("gpt2-4h", "gpt2", dict(n_embd=64, n_head=4, n_layer=2, n_positions=128, vocab_size=300,
                             layer_norm_epsilon=1e-5)),
]
TYPES = [("f16", torch.float16), ("bf16", torch.bfloat16)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kiln-bin", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    failed = []
    for seed, (name, family, cfg) in enumerate(CONFIGS, start=7000):
        model, path = export_random(family, cfg, seed, args.work, name)
        rng = np.random.default_rng(seed)
        prompt = [int(t) for t in rng.integers(3, cfg["vocab_size"], size=PROMPT)]
        for kind, dtype in TYPES:
            try:
                exe = os.path.join(args.work, "%s-%s" % (name, kind))
                run([os.path.join(args.kiln_bin, "kiln-compile"), path, "-o", exe,
                     "--kv-cache-type", kind])
                out = run_json([exe, "--prompt-tokens", ",".join(map(str, prompt)), "-n",
                                str(STEPS), "--temp", "0", "--ignore-eos", "--output=json",
                                "--logits"])
                tokens, logits = out["tokens"], np.array(out["logits"], dtype=np.float64)
                if len(tokens) != STEPS or logits.shape != (STEPS, cfg["vocab_size"]):
                    raise Failure("%s %s: expected %d tokens and %d logits rows, got %d and %s"
                                  % (name, kind, STEPS, STEPS, len(tokens), logits.shape))
                ids = torch.tensor(prompt + tokens[:-1])
                with torch.no_grad():
                    rounded = reference.set_kv_dtype(model, dtype)(ids).numpy()[PROMPT - 1:]
                    exact = reference.set_kv_dtype(model, None)(ids).numpy()[PROMPT - 1:]
                errs = [rel_err(logits[i], rounded[i]) for i in range(STEPS)]
                cost = max(rel_err(logits[i], exact[i]) for i in range(STEPS))
                agree = next((i for i in range(STEPS)
                              if int(np.argmax(rounded[i])) != tokens[i]), STEPS)
                print("%-11s %-4s vs torch with a %s cache %.1e (tol %g), greedy %d/%d "
                      "identical; vs torch with f32 keys and values %.1e"
                      % (name, kind, kind, max(errs), TOL, agree, STEPS, cost), flush=True)
                if not max(errs) <= TOL:
                    worst = int(np.argmax(errs))
                    raise Failure("%s %s: step %d logits differ from PyTorch by %.3g x "
                                  "max|logit|" % (name, kind, worst, errs[worst]))
                if agree != STEPS:
                    raise Failure("%s %s: greedy token %d is %d, PyTorch's argmax %d"
                                  % (name, kind, agree, tokens[agree],
                                     int(np.argmax(rounded[agree]))))
            except Failure as e:
                failed.append("%s-%s" % (name, kind))
                print("FAIL %s" % e, flush=True)
    if failed:
        sys.exit("FAILED: " + ", ".join(failed))
    print("all half-precision caches match PyTorch reading the same rounded keys and values")


if __name__ == "__main__":
    main()
