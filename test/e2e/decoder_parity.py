#!/usr/bin/env python3
"""End-to-end parity of compiled decoder-only models with PyTorch.

For each configuration a reference model (reference.py) with random weights
is exported with kiln_export. Then:
  (0) kiln_export.reference_eval (a NumPy interpreter of the .kiln file)
      agrees with the PyTorch reference over a whole sequence: the exporter
      wrote what the model computes, independently of the compiler;
and, unless --no-compile, the file is compiled with kiln-compile and run:
  (a) the prefill logits and the logits of every decode step agree with
      PyTorch (reference forward, float64, over prompt + tokens so far)
      within 1e-4 x max|logit|;
  (b) 32 greedy tokens equal PyTorch's own greedy continuation;
  (c) the compiled whole-sequence form (--forward-logits over prompt +
      generated tokens) equals prefill + step-by-step decode within the
      same tolerance: the idea Kiln is built on. Its rows for the prompt
      positions are checked against PyTorch as well.
Prints the measured errors; exits non-zero with a message on any failure.

    decoder_parity.py --kiln-bin build/bin --work /tmp/parity [--only NAME]
    decoder_parity.py --no-compile --work /tmp/parity      # exporter only
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference  # noqa: E402
import kiln_export  # noqa: E402

torch.set_num_threads(1)

CONFIGS = [
    ("gpt2-4h", "gpt2", dict(n_embd=64, n_head=4, n_layer=2, n_positions=128, vocab_size=300,
                             layer_norm_epsilon=1e-5)),
    ("gpt2-6h-untied", "gpt2", dict(n_embd=48, n_head=6, n_layer=2, n_positions=96,
                                    vocab_size=261, layer_norm_epsilon=1e-5, n_inner=80,
                                    tie_word_embeddings=False)),
    ("llama-mha", "llama", dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=4, rms_norm_eps=1e-5,
                                rope_theta=10000.0, max_position_embeddings=128, vocab_size=300,
                                tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)),
    ("llama-gqa2", "llama", dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                                 num_attention_heads=8, num_key_value_heads=2, rms_norm_eps=1e-6,
                                 rope_theta=500000.0, max_position_embeddings=64, vocab_size=256,
                                 tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)),
    # 4 kv heads in pairs: attention serves both query heads of a group in
    # one iteration (each key/value row read once).
    ("llama-gqa4x2", "llama", dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                   num_attention_heads=8, num_key_value_heads=4,
                                   rms_norm_eps=1e-5, rope_theta=10000.0,
                                   max_position_embeddings=96, vocab_size=280,
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
    # head_dim given explicitly and != hidden_size / heads (as in some Llama-3 derivatives).
    ("llama-hd32-gqa", "llama", dict(hidden_size=64, intermediate_size=112, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                                     rms_norm_eps=1e-5, rope_theta=1000.0,
                                     max_position_embeddings=64, vocab_size=258,
                                     tie_word_embeddings=True, bos_token_id=256,
                                     eos_token_id=257)),
    # RoPE scaling (issue 17), with original contexts small enough that the
    # 48 positions here reach the scaled frequencies: Llama 3.1's "llama3"
    # (pairs kept, blended and divided by 8), "linear" and YaRN (a ramp over
    # pairs 0..7 and cos/sin scaled by 0.1 ln 4 + 1).
    ("llama3-rope-scaling", "llama", dict(hidden_size=64, intermediate_size=96,
                                          num_hidden_layers=2, num_attention_heads=2,
                                          num_key_value_heads=1, rms_norm_eps=1e-5,
                                          rope_theta=500000.0, max_position_embeddings=128,
                                          rope_scaling=dict(rope_type="llama3", factor=8.0,
                                                            low_freq_factor=1.0,
                                                            high_freq_factor=4.0,
                                                            original_max_position_embeddings=64),
                                          vocab_size=300, tie_word_embeddings=True,
                                          bos_token_id=1, eos_token_id=2)),
    ("llama-linear-rope", "llama", dict(hidden_size=64, intermediate_size=96,
                                        num_hidden_layers=2, num_attention_heads=4,
                                        num_key_value_heads=2, rms_norm_eps=1e-5,
                                        rope_theta=10000.0, max_position_embeddings=96,
                                        rope_scaling=dict(type="linear", factor=2.5),
                                        vocab_size=280, tie_word_embeddings=False,
                                        bos_token_id=1, eos_token_id=2)),
    ("llama-yarn", "llama", dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                 num_attention_heads=2, num_key_value_heads=2,
                                 rms_norm_eps=1e-6, rope_theta=10000.0,
                                 max_position_embeddings=1024,
                                 rope_scaling=dict(rope_type="yarn", factor=4.0,
                                                   original_max_position_embeddings=256),
                                 vocab_size=290, tie_word_embeddings=False,
                                 bos_token_id=1, eos_token_id=2)),
    # Mistral: a sliding window of 8 (prefill and decode run past it).
    ("mistral-window", "llama", dict(architectures=["MistralForCausalLM"], hidden_size=64,
                                     intermediate_size=96, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=1,
                                     rms_norm_eps=1e-5, rope_theta=10000.0,
                                     max_position_embeddings=96, sliding_window=8,
                                     vocab_size=280, tie_word_embeddings=False,
                                     bos_token_id=1, eos_token_id=2)),
    # Qwen3: per-head RMS norms of q and k before RoPE, head_dim 32 wider
    # than hidden_size / heads.
    ("qwen3", "llama", dict(architectures=["Qwen3ForCausalLM"], hidden_size=64,
                            intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-6,
                            rope_theta=1000000.0, max_position_embeddings=64, vocab_size=300,
                            tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)),
]

# 16 prompt rows: @prefill takes the packed outer-product kernels (16 rows or
# more) for 12 rows and dot-product tiles for the 4 left over (two pairs);
# --forward-logits over 47 rows leaves 5 (two pairs and a single row). 16 + 32 fits the
# smallest context here.
PROMPT = 16
STEPS = 32
TOL = 1e-4          # compiled (f32) vs PyTorch (f64), relative to max|logit|
EXPORT_TOL = 1e-9   # reference_eval (f64) vs PyTorch (f64)
# ... where the file holds RoPE frequency factors, which it stores as f32
# (each within 6e-8 of the exact one): angles up to 48 rad move by ~3e-6.
EXPORT_TOL_SCALED_ROPE = 1e-7


class Failure(Exception):
    pass


def run(cmd, stdin=None):
    r = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if r.returncode != 0:
        raise Failure("`%s` failed with exit code %d:\n%s%s"
                      % (" ".join(cmd), r.returncode, r.stdout[-2000:], r.stderr[-2000:]))
    return r.stdout


def run_json(cmd):
    out = run(cmd)
    try:
        return json.loads(out)
    except ValueError as e:
        raise Failure("`%s` did not print one JSON object (%s):\n%s"
                      % (" ".join(cmd), e, out[:2000]))


def rel_err(got, ref):
    return float(np.abs(np.asarray(got, np.float64) - ref).max() / np.abs(ref).max())


def build(family, cfg, seed):
    model = reference.model_class(family)(cfg)
    reference.randomize(model, seed)
    return model.double().eval()


def export_random(family, cfg, seed, work, name):
    """A reference model of random weights (float64) and its .kiln file
    (F32, written by kiln_export) in `work`."""
    model = build(family, cfg, seed)
    path = os.path.join(work, name + ".kiln")
    state = {k: v.float() for k, v in model.state_dict().items()}
    (kiln_export.export_gpt2 if family == "gpt2" else kiln_export.export_llama)(
        path, state, cfg, name=name)
    return model, path


def forward(model, ids):
    with torch.no_grad():
        return model(torch.tensor(ids)).numpy()


def check_export(name, model, path, vocab, rng, tol=EXPORT_TOL):
    """(0): reference_eval of the file vs the PyTorch reference."""
    seq = [int(t) for t in rng.integers(0, vocab, size=PROMPT + STEPS)]
    got = kiln_export.reference_eval(path, seq)
    ref = forward(model, seq)
    if got.shape != ref.shape:
        raise Failure("%s: reference_eval gave logits of shape %s, PyTorch %s"
                      % (name, got.shape, ref.shape))
    err = rel_err(got, ref)
    if not err <= tol:
        raise Failure("%s: reference_eval of the exported file differs from PyTorch by %.3g x "
                      "max|logit| (tolerance %g): the exporter wrote something else"
                      % (name, err, tol))
    return err, float(np.abs(ref).max())


def check_compiled(name, model, path, cfg, kiln_bin, work, rng):
    vocab = cfg["vocab_size"]
    exe = os.path.join(work, name)
    t0 = time.time()
    run([os.path.join(kiln_bin, "kiln-compile"), path, "-o", exe])
    compile_s = time.time() - t0
    prompt = [int(t) for t in rng.integers(3, vocab, size=PROMPT)]
    plist = ",".join(map(str, prompt))
    out = run_json([exe, "--prompt-tokens", plist, "-n", str(STEPS), "--temp", "0",
                    "--ignore-eos", "--output=json", "--logits"])
    for key in ("tokens", "logits", "timings"):
        if key not in out:
            raise Failure("%s: the JSON output lacks %r (keys: %s)" % (name, key, sorted(out)))
    tokens = out["tokens"]
    logits = np.array(out["logits"], dtype=np.float64)
    if len(tokens) != STEPS or logits.shape != (STEPS, vocab):
        raise Failure("%s: expected %d tokens and logits of shape %s, got %d tokens and %s"
                      % (name, STEPS, (STEPS, vocab), len(tokens), logits.shape))
    timings = out["timings"]
    for key, want in (("prompt_tokens", PROMPT), ("generated_tokens", STEPS)):
        if key in timings and timings[key] != want:
            raise Failure("%s: timings.%s is %r, expected %d" % (name, key, timings[key], want))

    # (a) every step's logits against PyTorch over prompt + tokens so far.
    worst = 0.0
    for i in range(STEPS):
        ref = forward(model, prompt + tokens[:i])[-1]
        err = rel_err(logits[i], ref)
        worst = max(worst, err)
        if not err <= TOL:
            raise Failure("%s: %s logits differ from PyTorch by %.3g x max|logit| (tolerance %g)"
                          % (name, "prefill" if i == 0 else "decode step %d" % i, err, TOL))
        if int(np.argmax(logits[i])) != tokens[i]:
            raise Failure("%s: step %d chose token %d, but the argmax of its logits is %d"
                          % (name, i, tokens[i], int(np.argmax(logits[i]))))

    # (b) PyTorch's own greedy loop (not fed Kiln's tokens).
    greedy = list(prompt)
    for i in range(STEPS):
        ref = forward(model, greedy)[-1]
        nxt = int(np.argmax(ref))
        if nxt != tokens[i]:
            top2 = np.sort(ref)[-2:]
            raise Failure("%s: greedy token %d differs: kiln %d, torch %d (torch's top-2 margin "
                          "%.3g, kiln's error %.3g x max|logit|)\n kiln  %s\n torch %s"
                          % (name, i, tokens[i], nxt, top2[1] - top2[0], worst, tokens,
                             greedy[len(prompt):] + [nxt]))
        greedy.append(nxt)

    # (c) whole-sequence form == prefill + decode.
    fwd = run_json([exe, "--prompt-tokens", ",".join(map(str, prompt + tokens[:-1])),
                    "--forward-logits"])
    whole = np.array(fwd.get("logits"), dtype=np.float64)
    if whole.shape != (PROMPT + STEPS - 1, vocab):
        raise Failure("%s: --forward-logits gave logits of shape %s, expected %s"
                      % (name, whole.shape, (PROMPT + STEPS - 1, vocab)))
    idea = rel_err(whole[PROMPT - 1:], logits)
    if not idea <= TOL:
        raise Failure("%s: whole-sequence logits differ from prefill + decode by %.3g x "
                      "max|logit| (tolerance %g)" % (name, idea, TOL))
    whole_vs_torch = rel_err(whole, forward(model, prompt + tokens[:-1]))
    if not whole_vs_torch <= TOL:
        raise Failure("%s: whole-sequence logits differ from PyTorch by %.3g x max|logit|"
                      % (name, whole_vs_torch))
    return worst, idea, whole_vs_torch, compile_s


def check_config(name, family, cfg, args, seed):
    model, path = export_random(family, cfg, seed, args.work, name)
    rng = np.random.default_rng(seed)
    export_err, scale = check_export(
        name, model, path, cfg["vocab_size"], rng,
        EXPORT_TOL_SCALED_ROPE if cfg.get("rope_scaling") else EXPORT_TOL)
    line = "%-15s max|logit| %5.2f  reference_eval vs torch %.1e" % (name, scale, export_err)
    if not args.no_compile:
        worst, idea, whole, compile_s = check_compiled(name, model, path, cfg, args.kiln_bin,
                                                       args.work, rng)
        line += ("; kiln prefill+decode vs torch %.1e, whole-sequence vs prefill+decode %.1e, "
                 "whole-sequence vs torch %.1e (x max|logit|); %d greedy tokens identical; "
                 "compiled in %.1f s" % (worst, idea, whole, STEPS, compile_s))
    print(line, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kiln-bin", help="directory holding kiln-compile")
    ap.add_argument("--work", required=True, help="scratch directory (created)")
    ap.add_argument("--only", action="append", help="run this configuration (repeatable)")
    ap.add_argument("--no-compile", action="store_true",
                    help="only check the exporter against PyTorch (no compiler needed)")
    args = ap.parse_args()
    if not args.no_compile and not args.kiln_bin:
        ap.error("--kiln-bin is required unless --no-compile")
    os.makedirs(args.work, exist_ok=True)
    configs = [(seed, c) for seed, c in enumerate(CONFIGS)
               if not args.only or c[0] in args.only]
    unknown = set(args.only or []) - {c[0] for c in CONFIGS}
    if unknown:
        ap.error("unknown configuration(s) %s (known: %s)"
                 % (", ".join(sorted(unknown)), ", ".join(c[0] for c in CONFIGS)))
    failed = []
    for seed, (name, family, cfg) in configs:
        try:
            check_config(name, family, cfg, args, 1000 + seed)
        except (Failure, ValueError) as e:  # report every configuration, then fail
            failed.append(name)
            print("FAIL %s" % e, flush=True)
    if failed:
        sys.exit("FAILED: %s" % ", ".join(failed))
    if args.no_compile:
        print("reference_eval agrees with PyTorch for all %d configurations" % len(configs))
    else:
        print("all %d configurations agree" % len(configs))


if __name__ == "__main__":
    main()
