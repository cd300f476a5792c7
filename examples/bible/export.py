#!/usr/bin/env python3
"""Writes examples/bible/bible.kiln from checkpoint.pt (see train.py)."""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "compiler", "kiln_export"))
sys.path.insert(0, HERE)
import kiln_export  # noqa: E402
from train import CONFIG  # noqa: E402

state = torch.load(os.path.join(HERE, "checkpoint.pt"))
kiln_export.export_llama(os.path.join(HERE, "bible.kiln"), state, CONFIG, name="bible-kjv-bytes")
print("wrote", os.path.join(HERE, "bible.kiln"))
