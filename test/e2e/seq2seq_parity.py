#!/usr/bin/env python3
"""End-to-end parity of compiled encoder-decoder models with torch.nn.Transformer.

For each configuration an nn.Transformer (post-LN or norm_first, ReLU or
GELU, 1 to 3 layers, batch_first either way) with two nn.Embeddings and an
nn.Linear generator gets random weights and is exported with
kiln_export.export_transformer. The reference is PyTorch itself (float64):
embeddings times sqrt(d_model) plus the sinusoidal encoding, then
transformer(src, tgt, tgt_mask=causal, src_key_padding_mask,
memory_key_padding_mask), then the generator. The file is compiled with
kiln-compile and run on a source (with trailing padding where the
configuration has a pad id):
  (a) the logits of every decode step agree with PyTorch's teacher-forced
      logits within 1e-4 x max|logit|;
  (b) 32 greedy tokens equal PyTorch's own greedy loop;
  (c) the same model compiled with --no-hoist-cross gives the same logits;
  (d) beam search (--beams, --length-penalty) returns exactly the
      hypotheses of the straightforward PyTorch beam search below.
Prints the measured errors; exits non-zero with a message on any failure.

    seq2seq_parity.py --kiln-bin build/bin --work /tmp/s2s [--only NAME]
"""
import argparse
import math
import os
import sys

import numpy as np
import torch
from torch import nn

import kiln_export

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from decoder_parity import Failure, rel_err, run, run_json  # noqa: E402

torch.set_num_threads(1)

# name: transformer settings, vocabularies, pad id, embedding scaling
CONFIGS = [
    ("postln-relu-1x1", dict(d_model=32, nhead=4, num_encoder_layers=1, num_decoder_layers=1,
                             dim_feedforward=64, activation="relu", norm_first=False,
                             batch_first=True),
     dict(src_vocab=40, tgt_vocab=40, pad=None, scale=True, eos_bias=3.0)),
    ("preln-gelu-2x3-pad", dict(d_model=48, nhead=6, num_encoder_layers=2, num_decoder_layers=3,
                                dim_feedforward=96, activation="gelu", norm_first=True,
                                batch_first=True),
     dict(src_vocab=50, tgt_vocab=50, pad=0, scale=True)),
    ("postln-gelu-3x2-pad-seqfirst", dict(d_model=64, nhead=2, num_encoder_layers=3,
                                          num_decoder_layers=2, dim_feedforward=128,
                                          activation="gelu", norm_first=False,
                                          batch_first=False, layer_norm_eps=1e-6),
     dict(src_vocab=61, tgt_vocab=45, pad=3, scale=True, eos_bias=4.0)),
    ("preln-relu-2x2-hd4-unscaled", dict(d_model=32, nhead=8, num_encoder_layers=2,
                                         num_decoder_layers=2, dim_feedforward=48,
                                         activation="relu", norm_first=True, batch_first=True),
     dict(src_vocab=30, tgt_vocab=70, pad=1, scale=False, eos_bias=5.0)),
]

BOS, EOS = 1, 2
MAX_LEN = 48
SRC_LEN = 11
SRC_PAD = 3      # trailing pad tokens when the configuration has a pad id
STEPS = 32
TOL = 1e-4


class Reference:
    """The model export_transformer describes, computed by PyTorch's own modules."""

    def __init__(self, cfg, voc, seed):
        torch.manual_seed(seed)
        self.tr = nn.Transformer(dropout=0.0, **cfg)
        self.src = nn.Embedding(voc["src_vocab"], cfg["d_model"])
        self.tgt = nn.Embedding(voc["tgt_vocab"], cfg["d_model"])
        self.gen = nn.Linear(cfg["d_model"], voc["tgt_vocab"])
        with torch.no_grad():  # every parameter random (biases and norms included)
            for module in (self.tr, self.src, self.tgt, self.gen):
                for name, p in module.named_parameters():
                    if "norm" in name and name.endswith("weight"):
                        p.copy_(1 + 0.2 * torch.randn_like(p))
                    elif p.dim() == 1:
                        p.copy_(0.2 * torch.randn_like(p))
                    elif module is self.src or module is self.tgt:
                        p.copy_(torch.randn_like(p) * (1.0 if voc["scale"] else 3.0))
                    else:
                        p.copy_(torch.randn_like(p) / math.sqrt(p.shape[1]))
            # Make EOS likely enough that beam search finishes hypotheses.
            self.gen.bias[EOS] += voc.get("eos_bias", 0.0)
        self.cfg, self.voc = cfg, voc
        self.batch_first = cfg["batch_first"]
        d = cfg["d_model"]
        pos = torch.arange(MAX_LEN, dtype=torch.float64)[:, None]
        i = torch.arange(0, d, 2, dtype=torch.float64)
        angle = pos / torch.pow(10000.0, i / d)
        self.pe = torch.zeros(MAX_LEN, d, dtype=torch.float64)
        self.pe[:, 0::2], self.pe[:, 1::2] = torch.sin(angle), torch.cos(angle)
        self.scale = math.sqrt(d) if voc["scale"] else 1.0

    def export(self, path):
        kiln_export.export_transformer(path, self.tr, self.src, self.tgt, self.gen, bos_id=BOS,
                                       eos_id=EOS, pad_id=self.voc["pad"], max_len=MAX_LEN,
                                       scale_embeddings=self.voc["scale"])
        for m in (self.tr, self.src, self.tgt, self.gen):
            m.double().eval()

    @torch.no_grad()
    def logits(self, src, tgt):
        """[len(tgt), vocab] teacher-forced logits."""
        s, t = torch.tensor([src]), torch.tensor([tgt])
        xs = self.src(s) * self.scale + self.pe[: s.shape[1]]
        xt = self.tgt(t) * self.scale + self.pe[: t.shape[1]]
        n = t.shape[1]
        causal = torch.triu(torch.full((n, n), float("-inf"), dtype=torch.float64), 1)
        pad = (s == self.voc["pad"]) if self.voc["pad"] is not None else None
        if not self.batch_first:
            xs, xt = xs.transpose(0, 1), xt.transpose(0, 1)
        out = self.tr(xs, xt, tgt_mask=causal, src_key_padding_mask=pad,
                      memory_key_padding_mask=pad)
        if not self.batch_first:
            out = out.transpose(0, 1)
        return self.gen(out)[0].numpy()

    def beam_search(self, src, beams, alpha, max_new):
        """The textbook procedure kiln's --beams documents, in PyTorch."""
        finished, live = [], [([], 0.0)]
        for step in range(max_new):
            cands = []
            for b, (toks, lp) in enumerate(live):
                row = torch.log_softmax(torch.tensor(self.logits(src, [BOS] + toks)[-1]), -1)
                order = sorted(range(len(row)), key=lambda j: (-float(row[j]), j))[: 2 * beams]
                cands += [(lp + float(row[j]), b, j) for j in order]
            cands.sort(key=lambda c: (-c[0], c[1], c[2]))
            nxt = []
            for r, (lp, b, j) in enumerate(cands[: 2 * beams]):
                if len(nxt) == beams:
                    break
                toks = live[b][0] + [j]
                if j == EOS:
                    if r < beams:
                        finished.append((toks, lp, lp / len(toks) ** alpha))
                    continue
                nxt.append((toks, lp))
            finished.sort(key=lambda h: -h[2])
            del finished[beams:]
            if not nxt or (len(finished) >= beams and
                           nxt[0][1] / len(nxt[0][0]) ** alpha <= finished[-1][2]):
                live = []
                break
            live = nxt
        finished += [(t, lp, lp / len(t) ** alpha) for t, lp in live]
        finished.sort(key=lambda h: -h[2])  # stable, as kiln's
        return finished


def check_config(name, cfg, voc, args, seed):
    ref = Reference(cfg, voc, seed)
    path = os.path.join(args.work, name + ".kiln")
    ref.export(path)
    rng = np.random.default_rng(seed)
    lo = 3 if voc["pad"] is None else max(3, voc["pad"] + 1)
    src = [int(t) for t in rng.integers(lo, voc["src_vocab"], size=SRC_LEN)]
    if voc["pad"] is not None:
        src += [voc["pad"]] * SRC_PAD
    exe = os.path.join(args.work, name)
    run([os.path.join(args.kiln_bin, "kiln-compile"), path, "-o", exe])
    cmd = ["--src-tokens", ",".join(map(str, src)), "-n", str(STEPS), "--temp", "0",
           "--ignore-eos", "--output=json", "--logits"]
    out = run_json([exe] + cmd)
    tokens, logits = out["tokens"], np.array(out["logits"], dtype=np.float64)
    vocab = voc["tgt_vocab"]
    if len(tokens) != STEPS or logits.shape != (STEPS, vocab):
        raise Failure("%s: expected %d tokens and logits %s, got %d and %s"
                      % (name, STEPS, (STEPS, vocab), len(tokens), logits.shape))
    if out.get("source_tokens") != src:
        raise Failure("%s: source_tokens %r, expected %r" % (name, out.get("source_tokens"), src))

    # (a) every decode step against teacher forcing over kiln's own tokens.
    full = ref.logits(src, [BOS] + tokens[:-1])
    worst = max(rel_err(logits[i], full[i]) for i in range(STEPS))
    if not worst <= TOL:
        raise Failure("%s: decode logits differ from torch.nn.Transformer by %.3g x max|logit| "
                      "(tolerance %g)" % (name, worst, TOL))
    # (b) PyTorch's own greedy loop.
    greedy = [BOS]
    for i in range(STEPS):
        nxt = int(np.argmax(ref.logits(src, greedy)[-1]))
        if nxt != tokens[i]:
            raise Failure("%s: greedy token %d differs: kiln %d, torch %d\n kiln  %s\n torch %s"
                          % (name, i, tokens[i], nxt, tokens, greedy[1:] + [nxt]))
        greedy.append(nxt)
    # (c) without hoisting.
    exe_nh = exe + "-nohoist"
    run([os.path.join(args.kiln_bin, "kiln-compile"), path, "-o", exe_nh, "--no-hoist-cross"])
    nh = np.array(run_json([exe_nh] + cmd)["logits"], dtype=np.float64)
    nohoist = rel_err(nh, full)
    if not nohoist <= TOL:
        raise Failure("%s: the --no-hoist-cross build differs from PyTorch by %.3g" % (name, nohoist))
    # (d) beam search.
    beams, alpha, max_new = 4, 0.7, 12
    bout = run_json([exe, "--src-tokens", ",".join(map(str, src)), "-n", str(max_new),
                     "--beams", str(beams), "--length-penalty", str(alpha), "--output=json"])
    want = ref.beam_search(src, beams, alpha, max_new)
    got = [(h["tokens"], h["log_prob"], h["score"]) for h in bout.get("beams", [])]
    if [g[0] for g in got] != [w[0] for w in want]:
        raise Failure("%s: beam search hypotheses differ\n kiln  %s\n torch %s"
                      % (name, [g[0] for g in got], [w[0] for w in want]))
    score_err = max(abs(g[2] - w[2]) for g, w in zip(got, want))
    if not score_err <= 1e-3:
        raise Failure("%s: beam scores differ by %.3g" % (name, score_err))
    if bout["tokens"] != want[0][0]:
        raise Failure("%s: beam output %s is not the best hypothesis %s"
                      % (name, bout["tokens"], want[0][0]))
    eos = sum(1 for w in want if w[0][-1] == EOS)
    print("%-30s decode %.2e  no-hoist %.2e  greedy %d/%d  beams: %d hypotheses (%d ended "
          "by EOS), score error %.1e" % (name, worst, nohoist, STEPS, STEPS, len(want), eos,
                                         score_err))
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln-bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--only")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    configs = [c for c in CONFIGS if not args.only or c[0] == args.only]
    try:
        for i, (name, cfg, voc) in enumerate(configs):
            check_config(name, cfg, voc, args, 100 + i)
    except Failure as e:
        print("FAIL:", e)
        sys.exit(1)
    print("all %d configurations agree" % len(configs))


if __name__ == "__main__":
    main()
