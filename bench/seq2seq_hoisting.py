#!/usr/bin/env python3
"""What hoisting the cross-attention K/V projections out of the decode loop
saves, measured side by side.

Builds a "Transformer base" shaped model (d_model 512, 8 heads, 6 encoder
and 6 decoder layers, ffn 2048, vocabulary 8000; random weights: speed does
not depend on them), exports it with kiln_export.export_transformer,
compiles it twice -- default (cross-attention keys/values computed once per
input in encode) and --no-hoist-cross (encode keeps the encoder output and
every decode step projects it again) -- and runs both executables, one
after the other, --runs times each on the same source (--src-len tokens),
generating --new tokens greedily. Prints the median encode time and decode
time per step of each build and their ratio, plus a PyTorch eager reference
(nn.Transformer with the memory computed once, re-running the decoder over
the whole prefix each step as nn.Transformer does) for orientation.

    /usr/bin/python3 bench/seq2seq_hoisting.py [--kiln-bin build/bin] [--runs 5]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "compiler", "kiln_export"))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
from torch import nn  # noqa: E402

import kiln_export  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln-bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--src-len", type=int, default=64)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--d-model", type=int, default=512)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--work", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    work = args.work or tempfile.mkdtemp(prefix="kiln-bench-")
    os.makedirs(work, exist_ok=True)
    d, vocab = args.d_model, 8000
    tr = nn.Transformer(d_model=d, nhead=8, num_encoder_layers=args.layers,
                        num_decoder_layers=args.layers, dim_feedforward=4 * d, dropout=0.0,
                        batch_first=True).eval()
    src_emb, tgt_emb, gen = nn.Embedding(vocab, d), nn.Embedding(vocab, d), nn.Linear(d, vocab)
    path = os.path.join(work, "base.kiln")
    kiln_export.export_transformer(path, tr, src_emb, tgt_emb, gen, bos_id=1, eos_id=2,
                                   pad_id=0, max_len=256)
    exes = {}
    for name, flags in (("hoisted", []), ("not hoisted", ["--no-hoist-cross"])):
        exe = os.path.join(work, name.replace(" ", "-"))
        t0 = time.time()
        subprocess.run([os.path.join(args.kiln_bin, "kiln-compile"), path, "-o", exe] + flags,
                       check=True)
        print("compiled %-12s in %.1f s" % (name, time.time() - t0))
        exes[name] = exe
    src = ",".join(str(3 + (i * 37) % (vocab - 3)) for i in range(args.src_len))
    results = {name: {"encode": [], "step": []} for name in exes}
    for _ in range(args.runs):
        for name, exe in exes.items():  # interleaved: both see the same machine state
            out = subprocess.run([exe, "--src-tokens", src, "-n", str(args.new), "--temp", "0",
                                  "--ignore-eos", "--output=json"], check=True,
                                 capture_output=True, text=True).stdout
            t = json.loads(out)["timings"]
            results[name]["encode"].append(t["encode_ms"])
            results[name]["step"].append(t["decode_ms"] / t["decode_steps"])

    # PyTorch eager, for orientation: memory once, then the decoder over the prefix.
    ids = torch.tensor([[int(x) for x in src.split(",")]])
    torch_steps = []
    with torch.no_grad():
        pe = torch.zeros(256, d)
        pos = torch.arange(256.0)[:, None]
        div = torch.pow(10000.0, torch.arange(0, d, 2) / d)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos / div), torch.cos(pos / div)
        for _ in range(max(1, args.runs // 2)):
            memory = tr.encoder(src_emb(ids) * d ** 0.5 + pe[: ids.shape[1]])
            tgt = torch.tensor([[1]])
            t0 = time.perf_counter()
            for _ in range(args.new):
                n = tgt.shape[1]
                mask = torch.triu(torch.full((n, n), float("-inf")), 1)
                h = tr.decoder(tgt_emb(tgt) * d ** 0.5 + pe[:n], memory, tgt_mask=mask)
                nxt = gen(h[:, -1]).argmax(-1)
                tgt = torch.cat([tgt, nxt[:, None]], 1)
            torch_steps.append(1000 * (time.perf_counter() - t0) / args.new)

    med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in results.items()}
    print()
    print("model: d_model %d, %d+%d layers, vocab %d; source %d tokens, %d new tokens, %d runs, "
          "1 thread" % (d, args.layers, args.layers, vocab, args.src_len, args.new, args.runs))
    print("%-14s %14s %18s" % ("build", "encode ms", "decode ms/step"))
    for name in exes:
        print("%-14s %14.2f %18.3f" % (name, med[name]["encode"], med[name]["step"]))
    print("%-14s %14s %18.3f" % ("pytorch eager", "", statistics.median(torch_steps)))
    ratio = med["not hoisted"]["step"] / med["hoisted"]["step"]
    print("decode step: not hoisted / hoisted = %.2fx (median of %d interleaved runs)"
          % (ratio, args.runs))
    print("decode step: pytorch eager / kiln hoisted = %.2fx"
          % (statistics.median(torch_steps) / med["hoisted"]["step"]))


if __name__ == "__main__":
    main()
