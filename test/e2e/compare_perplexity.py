#!/usr/bin/env python3
"""Compares the perplexities of `exe --perplexity FILE --output=json` runs:
the first file is the baseline; each further FILE=LIMIT must lie within
LIMIT (relative: 0.01 = 1 %) of it, above or below. Prints one line per file;
exits 1 (with a FAIL line) when one does not.

    compare_perplexity.py BASE.json OTHER.json=0.01 ...
"""
import json
import os
import sys


def perplexity(path):
    return float(json.load(open(path))["perplexity"])


def main():
    base = sys.argv[1]
    ref = perplexity(base)
    name = os.path.basename(base)
    print("%s perplexity %.4f" % (name, ref))
    ok = True
    for arg in sys.argv[2:]:
        path, limit = arg.rsplit("=", 1)
        p, limit = perplexity(path), float(limit)
        rel = p / ref - 1
        print("%s perplexity %.4f (%+.2f %% of %s; limit %.1f %%)"
              % (os.path.basename(path), p, 100 * rel, name, 100 * limit))
        if abs(rel) > limit:
            print("FAIL: %s is %.2f %% from %s" % (path, 100 * rel, name))
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
