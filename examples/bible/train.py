#!/usr/bin/env python3
"""Trains the bundled example: a byte-level Llama on the King James Bible.

The text comes from Debian's bible-kjv package (public domain): verse
numbers are dropped and each verse becomes one line. The model is the
PyTorch Llama module the end-to-end tests use (test/e2e/reference.py, Hugging
Face parameter names), trained with teacher forcing and the causal mask
(next-byte cross-entropy) on one CPU thread. The last 5% of the text is held
out for validation.

    sudo apt-get install -y bible-kjv
    /usr/bin/python3 examples/bible/train.py [--minutes 30]
    /usr/bin/python3 examples/bible/export.py       # -> examples/bible/bible.kiln
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "test", "e2e"))
import reference  # noqa: E402

CONFIG = dict(hidden_size=192, intermediate_size=512, num_hidden_layers=4,
              num_attention_heads=6, num_key_value_heads=2, rms_norm_eps=1e-5,
              rope_theta=10000.0, max_position_embeddings=256, vocab_size=256,
              tie_word_embeddings=False)


def corpus():
    """The KJV text, one verse per line, without verse numbers."""
    raw = subprocess.run(["bible", "Gen1:1-Rev22:21"], capture_output=True, text=True,
                         check=True).stdout
    verses, current = [], []
    for line in raw.splitlines():
        m = re.match(r"^\s+\d+ (.*)$", line)
        if m:  # a new verse
            if current:
                verses.append(" ".join(current))
            current = [m.group(1).strip()]
        elif line.strip() and current and not re.match(r"^\S.* \d+$", line):
            current.append(line.strip())  # continuation of the verse
        elif current and (not line.strip() or re.match(r"^\S.* \d+$", line)):
            verses.append(" ".join(current))  # chapter heading or blank line
            current = []
    if current:
        verses.append(" ".join(current))
    return "\n".join(verses) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)

    text = corpus().encode("utf-8")
    data = torch.tensor(list(text), dtype=torch.long)
    split = int(len(data) * 0.95)
    train, val = data[:split], data[split:]
    ctx = CONFIG["max_position_embeddings"]
    print("corpus: %d bytes (%d train, %d validation)" % (len(data), len(train), len(val)))

    model = reference.Llama(CONFIG)
    reference.randomize(model, args.seed)
    with torch.no_grad():  # smaller init for stable training
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.mul_(0.5)
    params = sum(p.numel() for p in model.parameters())
    print("parameters: %d" % params)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.95), weight_decay=0.05)
    gen = torch.Generator().manual_seed(args.seed)

    def batch(src, n):
        idx = torch.randint(0, len(src) - ctx - 1, (n,), generator=gen)
        x = torch.stack([src[i:i + ctx] for i in idx])
        y = torch.stack([src[i + 1:i + ctx + 1] for i in idx])
        return x, y

    def evaluate():
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for start in range(0, len(val) - ctx - 1, ctx * 8):
                x = val[start:start + ctx][None]
                y = val[start + 1:start + ctx + 1][None]
                logits = model(x)
                total += torch.nn.functional.cross_entropy(
                    logits.view(-1, 256), y.view(-1), reduction="sum").item()
                count += y.numel()
        model.train()
        return total / count

    budget = args.minutes * 60
    t0 = time.time()
    step, est_steps = 0, None
    base_lr = 2e-3
    while True:
        elapsed = time.time() - t0
        if elapsed > budget:
            break
        if step == 20:
            est_steps = int(budget / (elapsed / 20))
        total = est_steps or 10 ** 9
        lr = base_lr * min(1.0, (step + 1) / 50) * (0.1 + 0.9 * 0.5 * (1 + math.cos(
            math.pi * min(step / total, 1.0))))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = batch(train, args.batch)
        loss = torch.nn.functional.cross_entropy(model(x).view(-1, 256), y.view(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0:
            print("step %5d  %6.0fs  lr %.2e  train loss %.3f" % (step, elapsed, lr, loss.item()),
                  flush=True)
        step += 1

    val_loss = evaluate()
    minutes = (time.time() - t0) / 60
    print("validation loss %.4f nats/byte, perplexity %.3f, %d steps, %.1f min"
          % (val_loss, math.exp(val_loss), step, minutes))
    torch.save(model.state_dict(), os.path.join(HERE, "checkpoint.pt"))
    with open(os.path.join(HERE, "metrics.json"), "w") as f:
        json.dump({"validation_loss_nats_per_byte": round(val_loss, 4),
                   "validation_perplexity": round(math.exp(val_loss), 4),
                   "steps": step, "batch": args.batch, "context": ctx,
                   "training_minutes": round(minutes, 1), "threads": 1, "seed": args.seed,
                   "parameters": params, "config": CONFIG}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
