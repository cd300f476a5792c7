#!/usr/bin/env python3
"""Trains the encoder-decoder example: dates written by people -> ISO 8601.

A torch.nn.Transformer (post-LN, as in "Attention Is All You Need") reads a
date in one of a dozen human formats ("April 5, 2023", "5 apr 2023",
"Wed, 05 Apr 2023", "the 5th of April, 2023", ...) as UTF-8 bytes and writes
it as YYYY-MM-DD. Training data is generated; teacher forcing with the causal
mask; the 200 held-out inputs of heldout.tsv are never trained on.

    /usr/bin/python3 examples/dates/train.py [--minutes 10]   # -> checkpoint.pt
    /usr/bin/python3 examples/dates/export.py                 # -> dates.kiln
"""
import argparse
import datetime
import math
import os
import random
import sys
import time

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))

BOS, EOS, PAD = 256, 257, 258
VOCAB = 259
CONFIG = dict(d_model=128, nhead=4, num_encoder_layers=2, num_decoder_layers=2,
              dim_feedforward=512, activation="relu", norm_first=False,
              layer_norm_eps=1e-5, max_len=64)

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def ordinal(n):
    if 10 <= n % 100 <= 20:
        return "%dth" % n
    return "%d%s" % (n, {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th"))


FORMATS = [
    lambda d: "%s %d, %d" % (MONTHS[d.month - 1], d.day, d.year),
    lambda d: "%d %s %d" % (d.day, MONTHS[d.month - 1], d.year),
    lambda d: "%s %d, %d" % (MONTHS[d.month - 1][:3], d.day, d.year),
    lambda d: "%d %s %d" % (d.day, MONTHS[d.month - 1][:3].lower(), d.year),
    lambda d: "%s, %02d %s %d" % (DAYS[d.weekday()][:3], d.day, MONTHS[d.month - 1][:3], d.year),
    lambda d: "%s, %s %d, %d" % (DAYS[d.weekday()], MONTHS[d.month - 1], d.day, d.year),
    lambda d: "the %s of %s, %d" % (ordinal(d.day), MONTHS[d.month - 1], d.year),
    lambda d: "%s %s %d" % (MONTHS[d.month - 1], ordinal(d.day), d.year),
    lambda d: "%d.%d.%d" % (d.day, d.month, d.year),
    lambda d: "%02d/%02d/%d (dd/mm/yyyy)" % (d.day, d.month, d.year),
    lambda d: "%d/%d/%d (US)" % (d.month, d.day, d.year),
    lambda d: "%s %d %d" % (MONTHS[d.month - 1].upper(), d.day, d.year),
    lambda d: "%d%02d%02d" % (d.year, d.month, d.day),
]

FIRST = datetime.date(1900, 1, 1).toordinal()
LAST = datetime.date(2099, 12, 31).toordinal()


def sample(rng):
    d = datetime.date.fromordinal(rng.randint(FIRST, LAST))
    return FORMATS[rng.randrange(len(FORMATS))](d), d.isoformat()


def heldout(n=200, seed=12345):
    rng = random.Random(seed)
    out, seen = [], set()
    while len(out) < n:
        src, tgt = sample(rng)
        if src not in seen:
            seen.add(src)
            out.append((src, tgt))
    return out


class Seq2Seq(nn.Module):
    """nn.Transformer with token embeddings scaled by sqrt(d_model), the
    sinusoidal encoding of the paper, and a linear generator."""

    def __init__(self, cfg):
        super().__init__()
        d = cfg["d_model"]
        self.d_model = d
        self.src_embedding = nn.Embedding(VOCAB, d)
        self.tgt_embedding = nn.Embedding(VOCAB, d)
        self.transformer = nn.Transformer(
            d_model=d, nhead=cfg["nhead"], num_encoder_layers=cfg["num_encoder_layers"],
            num_decoder_layers=cfg["num_decoder_layers"], dim_feedforward=cfg["dim_feedforward"],
            dropout=0.1, activation=cfg["activation"], layer_norm_eps=cfg["layer_norm_eps"],
            batch_first=True, norm_first=cfg["norm_first"])
        self.generator = nn.Linear(d, VOCAB)
        pos = torch.arange(cfg["max_len"], dtype=torch.float64)[:, None]
        i = torch.arange(0, d, 2, dtype=torch.float64)
        angle = pos / torch.pow(10000.0, i / d)
        pe = torch.zeros(cfg["max_len"], d, dtype=torch.float64)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(angle), torch.cos(angle)
        self.register_buffer("pe", pe.float())

    def embed(self, emb, ids):
        return emb(ids) * math.sqrt(self.d_model) + self.pe[: ids.shape[1]]

    def forward(self, src, tgt):
        pad = src == PAD
        causal = torch.triu(torch.full((tgt.shape[1], tgt.shape[1]), float("-inf")), 1)
        h = self.transformer(self.embed(self.src_embedding, src), self.embed(self.tgt_embedding, tgt),
                             tgt_mask=causal, src_key_padding_mask=pad,
                             memory_key_padding_mask=pad)
        return self.generator(h)

    @torch.no_grad()
    def greedy(self, src_texts, max_new=16):
        src = batch_ids([list(s.encode()) for s in src_texts])
        tgt = torch.full((len(src_texts), 1), BOS, dtype=torch.long)
        for _ in range(max_new):
            nxt = self(src, tgt)[:, -1].argmax(-1)
            tgt = torch.cat([tgt, nxt[:, None]], 1)
        outs = []
        for row in tgt[:, 1:].tolist():
            row = row[: row.index(EOS)] if EOS in row else row
            outs.append(bytes(t for t in row if t < 256).decode(errors="replace"))
        return outs


def batch_ids(seqs):
    n = max(len(s) for s in seqs)
    return torch.tensor([s + [PAD] * (n - len(s)) for s in seqs], dtype=torch.long)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--resume", action="store_true",
                    help="continue from checkpoint.pt (model and optimizer)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    test = heldout()
    excluded = {s for s, _ in test}
    with open(os.path.join(HERE, "heldout.tsv"), "w") as f:
        for s, t in test:
            f.write("%s\t%s\n" % (s, t))
    val_rng = random.Random(777)
    val = [sample(val_rng) for _ in range(200)]

    model = Seq2Seq(CONFIG)
    print("parameters: %d" % sum(p.numel() for p in model.parameters()))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=0.01)
    total_steps = 0
    if args.resume:
        ckpt = torch.load(os.path.join(HERE, "checkpoint.pt"))
        model.load_state_dict(ckpt["state"])
        if "optimizer" in ckpt:
            opt.load_state_dict(ckpt["optimizer"])
        total_steps = ckpt["steps"]
        print("resumed after %d steps" % total_steps)
    loss_fn = nn.CrossEntropyLoss(ignore_index=PAD)
    start, step = time.time(), 0
    while time.time() - start < args.minutes * 60:
        pairs = []
        while len(pairs) < args.batch:
            s, t = sample(rng)
            if s not in excluded:
                pairs.append((s, t))
        src = batch_ids([list(s.encode()) for s, _ in pairs])
        tgt = batch_ids([[BOS] + list(t.encode()) + [EOS] for _, t in pairs])
        # Warm up, hold, then decay linearly to a tenth over the last 30%.
        frac = (time.time() - start) / (args.minutes * 60)
        lr = args.lr * min(1.0, (step + 1) / 200) * (1.0 if frac < 0.7 else
                                                  max(0.1, 1.0 - (frac - 0.7) / 0.3 * 0.9))
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        logits = model(src, tgt[:, :-1])
        loss = loss_fn(logits.reshape(-1, VOCAB), tgt[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 250 == 0:
            model.eval()
            acc = sum(o == t for o, (_, t) in zip(model.greedy([s for s, _ in val]), val)) / len(val)
            print("step %d  %.0fs  loss %.4f  validation exact match %.3f"
                  % (step, time.time() - start, loss.item(), acc), flush=True)
            save(model, opt, total_steps + step, None)
    model.eval()
    acc = sum(o == t for o, (_, t) in zip(model.greedy([s for s, _ in test]), test)) / len(test)
    print("held-out exact match (PyTorch, greedy): %.3f" % acc)
    save(model, opt, total_steps + step, acc)


def save(model, opt, steps, heldout_accuracy):
    """checkpoint.pt, written atomically (also during training)."""
    path = os.path.join(HERE, "checkpoint.pt")
    torch.save({"state": model.state_dict(), "optimizer": opt.state_dict(), "config": CONFIG,
                "steps": steps, "heldout_accuracy": heldout_accuracy}, path + ".tmp")
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
