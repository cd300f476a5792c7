#!/usr/bin/env python3
"""Scoring mode against PyTorch: `exe --perplexity FILE` (the compiled
whole-sequence form with a sliding window) against cross-entropy computed by
the PyTorch reference Llama loaded with the same weights (read back from the
.kiln file), on the same windows. Passes when the mean NLL agrees within
1e-4 relative and every per-token NLL within 1e-4 relative (or 1e-5 absolute).
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference  # noqa: E402
import kiln_export  # noqa: E402

torch.set_num_threads(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exe", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--stride", type=int, default=128)
    ap.add_argument("--config", required=True, help="JSON file with the HF Llama config")
    args = ap.parse_args()

    out = json.loads(subprocess.run([args.exe, "--perplexity", args.text, "--stride",
                                     str(args.stride), "--output=json"], check=True,
                                    capture_output=True, text=True).stdout)
    cfg = json.load(open(args.config))["config"]
    info, weights = kiln_export.read_model(args.model)
    model = reference.Llama(cfg)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    model = model.double().eval()

    ids = list(open(args.text, "rb").read())
    window, stride = out["window"], out["stride"]
    assert window == info["context_length"] and stride == args.stride, (window, stride)
    nll, prev_end, begin = [], 0, 0
    with torch.no_grad():
        while begin < len(ids):
            end = min(begin + window, len(ids))
            logits = model(torch.tensor(ids[begin:end]))
            logp = torch.log_softmax(logits, -1)
            for t in range(max(prev_end, begin + 1), end):
                nll.append(-logp[t - 1 - begin, ids[t]].item())
            prev_end = end
            if end == len(ids):
                break
            begin += stride
    ref = np.array(nll)
    got = np.array(out["nll"])
    assert len(got) == len(ref) == len(ids) - 1, (len(got), len(ref))
    rel_mean = abs(out["mean_nll"] - ref.mean()) / ref.mean()
    per_token = np.abs(got - ref) / np.maximum(np.abs(ref), 0.1)
    print("tokens %d window %d stride %d: kiln mean NLL %.6f perplexity %.4f, torch %.6f; "
          "relative error of the mean %.2e, worst per-token %.2e"
          % (len(got), window, stride, out["mean_nll"], out["perplexity"], ref.mean(),
             rel_mean, per_token.max()))
    if rel_mean > 1e-4 or per_token.max() > 1e-4:
        sys.exit("perplexity differs from PyTorch")
    print("perplexity matches PyTorch")


if __name__ == "__main__":
    main()
