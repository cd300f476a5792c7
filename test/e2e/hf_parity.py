#!/usr/bin/env python3
"""Hugging Face checkpoints through kiln-convert against PyTorch.

For each configuration a reference module (reference.py) with random weights
is written as a Hugging Face model directory by test tooling
(test/lib/hf_checkpoint.py: config.json, safetensors in F32, F16 or BF16,
one file or shards with an index, tokenizer.json with a BPE vocabulary
trained on a few sentences). kiln-convert turns the directory into a .kiln
file, kiln-compile compiles it, and decoder_parity's checks run against the
reference holding the same (rounded) weights in float64: the logits of
prefill and every decode step within 1e-4 x max|logit|, 32 greedy tokens
identical, the whole-sequence form equal to prefill + decode. Then a text
prompt goes through the executable (-p), whose prompt tokens must equal the
tokenizer's (kiln-convert --tokenize) and decode back to the text.

    hf_parity.py --kiln-bin build/bin --work DIR [--only NAME]
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import decoder_parity  # noqa: E402
import hf_checkpoint  # noqa: E402
from decoder_parity import Failure, run, run_json  # noqa: E402

TEXT = ("the quick brown fox jumps over the lazy dog and the dog sleeps while the fox "
        "runs over the hills to the river where the fish swim in the cold water")
PROMPT_TEXT = "the fox swims in the river"

CONFIGS = [
    ("hf-gpt2", "gpt2", "F32", 1,
     dict(architectures=["GPT2LMHeadModel"], n_embd=64, n_head=4, n_layer=2, n_positions=96,
          vocab_size=300, layer_norm_epsilon=1e-5, bos_token_id=299, eos_token_id=299)),
    ("hf-gpt2-untied-f16-shards", "gpt2", "F16", 3,
     dict(architectures=["GPT2LMHeadModel"], n_embd=48, n_head=6, n_layer=2, n_positions=64,
          vocab_size=280, layer_norm_epsilon=1e-5, n_inner=96, tie_word_embeddings=False,
          activation_function="gelu_new", bos_token_id=279, eos_token_id=279)),
    ("hf-llama-gqa-bf16", "llama", "BF16", 1,
     dict(architectures=["LlamaForCausalLM"], hidden_size=64, intermediate_size=128,
          num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
          rope_theta=10000.0, max_position_embeddings=96, vocab_size=320,
          tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)),
    ("hf-mistral-window", "llama", "F32", 2,
     dict(architectures=["MistralForCausalLM"], model_type="mistral", hidden_size=64,
          intermediate_size=96, num_hidden_layers=2, num_attention_heads=8,
          num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=1e6,
          max_position_embeddings=512, sliding_window=12, vocab_size=300,
          tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)),
    ("hf-qwen2-bias-tied", "llama", "F32", 1,
     dict(architectures=["Qwen2ForCausalLM"], hidden_size=48, intermediate_size=96,
          num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=2,
          rms_norm_eps=1e-6, rope_theta=1e6, max_position_embeddings=64, vocab_size=300,
          tie_word_embeddings=True, use_sliding_window=False, qkv_bias=True,
          bos_token_id=299, eos_token_id=299)),
    # RoPE scaling as the checkpoints write it: Llama 3.1's "llama3" in
    # rope_scaling (BF16), YaRN in transformers 5's rope_parameters.
    ("hf-llama3.1-rope-scaling", "llama", "BF16", 1,
     dict(architectures=["LlamaForCausalLM"], hidden_size=64, intermediate_size=128,
          num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
          rope_theta=500000.0, max_position_embeddings=256, vocab_size=320,
          rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                            high_freq_factor=4.0, original_max_position_embeddings=64),
          tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)),
    ("hf-qwen2-yarn", "llama", "F32", 1,
     dict(architectures=["Qwen2ForCausalLM"], hidden_size=48, intermediate_size=96,
          num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=2,
          rms_norm_eps=1e-6, max_position_embeddings=512, vocab_size=300,
          rope_parameters=dict(rope_type="yarn", rope_theta=10000.0, factor=4.0,
                               original_max_position_embeddings=128),
          tie_word_embeddings=True, use_sliding_window=False, qkv_bias=True,
          bos_token_id=299, eos_token_id=299)),
    # Gemma 3: layers 0 and 2 local over a window of 8 (base 10000), layer 1
    # global (base 1e6, linear RoPE scaling 2), q scaled by 1/sqrt(24),
    # embeddings by sqrt(64), norms 1 + w before and after attention and
    # feed-forward, GeGLU (tanh), tied head; BF16.
    ("hf-gemma3", "gemma3", "BF16", 1,
     dict(architectures=["Gemma3ForCausalLM"], model_type="gemma3_text", hidden_size=64,
          intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
          num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-6, rope_theta=1000000.0,
          rope_local_base_freq=10000.0, rope_scaling=dict(rope_type="linear", factor=2.0),
          query_pre_attn_scalar=24, sliding_window=8, sliding_window_pattern=2,
          hidden_activation="gelu_pytorch_tanh", final_logit_softcapping=None,
          attn_logit_softcapping=None, max_position_embeddings=128, vocab_size=320,
          tie_word_embeddings=True, bos_token_id=2, eos_token_id=1)),
    # Qwen3: per-head q/k norms, head_dim 32 over a 48-wide model, BF16.
    ("hf-qwen3", "llama", "BF16", 1,
     dict(architectures=["Qwen3ForCausalLM"], model_type="qwen3", hidden_size=48,
          intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
          num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-6, rope_theta=1e6,
          max_position_embeddings=64, vocab_size=300, tie_word_embeddings=True,
          attention_bias=False, use_sliding_window=False, bos_token_id=299,
          eos_token_id=299)),
]


def tokenizer_for(name, family, vocab):
    """A trained BPE vocabulary of `vocab` tokens: GPT-2 byte-level for the
    GPT-2 family and Qwen (byte-level BPE), SentencePiece-style otherwise."""
    if family == "gpt2" or "qwen" in name:
        tokens, merges = hf_checkpoint.train_byte_bpe(TEXT, vocab)
        return hf_checkpoint.gpt2_tokenizer_json(tokens, merges, vocab - 1), None
    tokens, merges = hf_checkpoint.train_spm_bpe(TEXT, vocab)
    return hf_checkpoint.llama_tokenizer_json(tokens, merges), {"add_bos_token": True}


def check_config(name, family, dtype, shards, cfg, args, seed):
    model = decoder_parity.build(family, cfg, seed)
    # The reference holds exactly the values the checkpoint stores.
    state = {k: torch.from_numpy(hf_checkpoint.round_to(v.numpy(), dtype))
             for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    hf_cfg = {k: v for k, v in cfg.items() if k != "qkv_bias"}
    tok_json, tok_cfg = tokenizer_for(name, family, cfg["vocab_size"])
    directory = os.path.join(args.work, name + "-hf")
    hf_checkpoint.write_hf_dir(directory, hf_cfg, {k: v.float() for k, v in state.items()},
                               tok_json, dtype=dtype, shards=shards, tokenizer_config=tok_cfg)
    convert = os.path.join(args.kiln_bin, "kiln-convert")
    path = os.path.join(args.work, name + ".kiln")
    run([convert, directory, "-o", path])
    rng = np.random.default_rng(seed)
    check_cfg = dict(cfg)
    worst, idea, whole, compile_s = decoder_parity.check_compiled(
        name, model, path, check_cfg, args.kiln_bin, args.work, rng)
    # A text prompt through the executable.
    want = json.loads(run([convert, "--tokenize", path, "-p", PROMPT_TEXT]))
    out = run_json([os.path.join(args.work, name), "-p", PROMPT_TEXT, "-n", "4", "--temp", "0",
                    "--output=json", "--logits"])
    ref = decoder_parity.forward(model, want)[-1]
    err = decoder_parity.rel_err(np.array(out["logits"][0]), ref)
    if not err <= decoder_parity.TOL:
        raise Failure("%s: the logits after the text prompt differ from PyTorch on its "
                      "tokens %s by %.3g x max|logit|" % (name, want, err))
    if out.get("timings", {}).get("prompt_tokens", len(want)) != len(want):
        raise Failure("%s: the executable read %s prompt tokens, the tokenizer gives %d"
                      % (name, out["timings"]["prompt_tokens"], len(want)))
    back = json.loads(run([convert, "--detokenize", path], json.dumps(want) + "\n"))
    if back != PROMPT_TEXT:
        raise Failure("%s: the prompt decodes to %r" % (name, back))
    print("%-26s %-4s %d shard(s): kiln vs torch %.1e, whole-sequence vs prefill+decode %.1e, "
          "whole vs torch %.1e (x max|logit|); %d greedy tokens identical; text prompt "
          "(%d tokens) %.1e; compiled in %.1f s"
          % (name, dtype, shards, worst, idea, whole, decoder_parity.STEPS, len(want), err,
             compile_s), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kiln-bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--only", action="append")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    failed = []
    for seed, (name, family, dtype, shards, cfg) in enumerate(CONFIGS):
        if args.only and name not in args.only:
            continue
        try:
            check_config(name, family, dtype, shards, cfg, args, 2000 + seed)
        except Failure as e:
            failed.append(name)
            print("FAIL %s" % e, flush=True)
    if failed:
        sys.exit("FAILED: " + ", ".join(failed))
    print("all %d checkpoints agree" % len(CONFIGS))


if __name__ == "__main__":
    main()
