#!/usr/bin/env python3
"""Exact-match accuracy of the compiled example on the 200 held-out inputs.

    build/bin/kiln-compile examples/dates/dates.kiln -o build/dates
    /usr/bin/python3 examples/dates/evaluate.py build/dates [--beams 4] [--min 0.99]

Runs the executable once per line of heldout.tsv (input TAB expected
output), greedy by default, and prints the accuracy and every miss. Exits 1
when the accuracy is below --min.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("exe")
    ap.add_argument("--beams", type=int, default=1)
    ap.add_argument("--min", type=float, default=0.0)
    args = ap.parse_args()
    with open(os.path.join(HERE, "heldout.tsv"), encoding="utf-8") as f:
        pairs = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    hits, steps, decode_ms, encode_ms = 0, 0, 0.0, 0.0
    for src, want in pairs:
        cmd = [args.exe, "-p", src, "-n", "24", "--output=json"]
        cmd += ["--beams", str(args.beams)] if args.beams > 1 else ["--temp", "0"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            print("error on %r: %s" % (src, r.stderr.strip()))
            sys.exit(2)
        out = json.loads(r.stdout)
        t = out["timings"]
        steps += t["decode_steps"]
        decode_ms += t["decode_ms"]
        encode_ms += t["encode_ms"]
        if out["text"] == want:
            hits += 1
        else:
            print("miss: %-40r -> %r (expected %r)" % (src, out["text"], want))
    acc = hits / len(pairs)
    print("exact match %d/%d = %.3f (%s); %.1f us per decode step, %.1f us per encode"
          % (hits, len(pairs), acc, "%d beams" % args.beams if args.beams > 1 else "greedy",
             1000 * decode_ms / max(steps, 1), 1000 * encode_ms / len(pairs)))
    if acc < args.min:
        print("FAIL: accuracy %.3f is below %.3f" % (acc, args.min))
        sys.exit(1)


if __name__ == "__main__":
    main()
