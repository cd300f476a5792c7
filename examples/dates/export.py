#!/usr/bin/env python3
"""Writes examples/dates/dates.kiln from checkpoint.pt (see train.py)."""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "compiler", "kiln_export"))
sys.path.insert(0, HERE)
import kiln_export  # noqa: E402
from train import BOS, EOS, PAD, Seq2Seq  # noqa: E402

ckpt = torch.load(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "checkpoint.pt"))
model = Seq2Seq(ckpt["config"])
model.load_state_dict(ckpt["state"])
model.eval()
out = os.path.join(HERE, "dates.kiln")
kiln_export.export_transformer(out, model.transformer, model.src_embedding, model.tgt_embedding,
                               model.generator, bos_id=BOS, eos_id=EOS, pad_id=PAD,
                               max_len=ckpt["config"]["max_len"], scale_embeddings=True,
                               name="dates-to-iso8601")
acc = ckpt.get("heldout_accuracy")
print("wrote %s (%d training steps, PyTorch held-out exact match %s)"
      % (out, ckpt["steps"], "%.3f" % acc if acc is not None else "not measured"))
