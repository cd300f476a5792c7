#!/usr/bin/env python3
"""Writes a small random encoder-decoder .kiln for the executable tests:
torch.nn.Transformer (d_model 16, 2 heads, 1+1 layers), source vocabulary
260 (bytes: -p works), target vocabulary 10, BOS 1, EOS 2, source pad id 0,
max_len 8."""
import sys

import torch
from torch import nn

import kiln_export

torch.manual_seed(0)
tr = nn.Transformer(d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                    dim_feedforward=32, dropout=0.0, batch_first=True)
kiln_export.export_transformer(sys.argv[1], tr, nn.Embedding(260, 16), nn.Embedding(10, 16),
                               nn.Linear(16, 10), bos_id=1, eos_id=2, pad_id=0, max_len=8)
