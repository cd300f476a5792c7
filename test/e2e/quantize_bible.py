#!/usr/bin/env python3
"""Writes the bundled model (examples/bible/bible.kiln) quantized with one
of kiln_export's recipes: its weights read back from the file, exported
again by kiln_export.export_llama(..., dtype=RECIPE) (the bytes
`kiln-convert --quantize RECIPE` writes for the same weights:
test/Convert/quantize.test). Prints the file's weight types.

    quantize_bible.py RECIPE OUT.kiln
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "compiler", "kiln_export"))
import kiln_export  # noqa: E402

BIBLE = os.path.join(ROOT, "examples", "bible")


def main():
    recipe, out = sys.argv[1:3]
    info, weights = kiln_export.read_model(os.path.join(BIBLE, "bible.kiln"))
    cfg = json.load(open(os.path.join(BIBLE, "metrics.json")))["config"]
    kiln_export.export_llama(out, weights, cfg, name="bible-kjv-bytes-" + recipe, dtype=recipe)
    m = kiln_export.load_model(out)
    types = {}
    for t in m.weight_dtypes.values():
        types[t] = types.get(t, 0) + 1
    print("%s: %s, %d bytes" % (recipe, " ".join("%s x%d" % kv for kv in sorted(types.items())),
                                os.path.getsize(out)))


if __name__ == "__main__":
    main()
