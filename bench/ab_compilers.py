#!/usr/bin/python3
"""A/B of Kiln compilers (or of compiled libraries) on one model, in one process.

On a shared machine the memory bandwidth and the cores move by 10-30% within
minutes, so two executables timed one after the other disagree by more than
most compiler changes are worth. This compiles the model into a shared
library with each `kiln-compile` given (`--emit=shared`), loads all of them
into one process (dlopen, RTLD_LOCAL: each has its own runtime) and
alternates `kiln_generate` calls between them, rotating the order every
round, so that noisy neighbours hit every library alike. The load order
biases the result (the library loaded first ran up to 9% faster), so the
whole run is repeated once per load order (each library first once) and
the rounds are pooled. It prints, per
library, the median prefill and decode rates and the median of the
per-round ratios against the first one.

    /usr/bin/python3 bench/ab_compilers.py MODEL.kiln \\
        --kiln-compile /old/build/bin/kiln-compile \\
        --kiln-compile build/bin/kiln-compile [--prompt 128 --decode 2]

Use `--prompt 128 --decode 2` to compare prefill and `--prompt 16
--decode 64` to compare decode; `--lib X.so` adds an already compiled
library. Not a test: it prints figures.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HARNESS = r"""
#include "kiln.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
typedef kiln_params (*dp_t)(void);
typedef kiln_handle *(*load_t)(const char *, char *, size_t);
typedef int64_t (*gen_t)(kiln_handle *, const int32_t *, size_t,
                         const kiln_params *, kiln_token_callback, void *);
static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}
struct rec { double first, last; int n; };
static int cb(int32_t tok, const char *b, size_t s, void *u) {
  struct rec *r = u;
  double t = now();
  if (!r->n) r->first = t;
  r->last = t;
  r->n++;
  return 0;
}
int main(int argc, char **argv) {
  /* model prompt decode rounds lib... ; prints one line per call:
     round lib prefill_tok_s decode_tok_s */
  int np = atoi(argv[2]), nd = atoi(argv[3]), rounds = atoi(argv[4]);
  int libs = argc - 5;
  gen_t gen[16];
  kiln_handle *h[16];
  kiln_params pr;
  for (int i = 0; i < libs; i++) {
    void *d = dlopen(argv[5 + i], RTLD_NOW | RTLD_LOCAL);
    if (!d) { fprintf(stderr, "%s\n", dlerror()); return 1; }
    dp_t dp = (dp_t)dlsym(d, "kiln_default_params");
    load_t ld = (load_t)dlsym(d, "kiln_load");
    gen[i] = (gen_t)dlsym(d, "kiln_generate");
    char err[512];
    h[i] = ld(argv[1], err, sizeof err);
    if (!h[i]) { fprintf(stderr, "%s: %s\n", argv[5 + i], err); return 1; }
    pr = dp();
  }
  pr.n_predict = nd;
  pr.temperature = 0;
  pr.ignore_eos = 1;
  int32_t *p = malloc(sizeof(int32_t) * (np > 0 ? np : 1));
  srand(1);
  for (int i = 0; i < np; i++) p[i] = 3 + rand() % 30000;
  for (int r = -1; r < rounds; r++)  /* round -1 warms up */
    for (int j = 0; j < libs; j++) {
      int k = ((r + j) % libs + libs) % libs;
      struct rec rc = {0, 0, 0};
      double t0 = now();
      if (gen[k](h[k], p, np, &pr, cb, &rc) < 0) { fprintf(stderr, "generate failed\n"); return 1; }
      if (r >= 0)
        printf("%d %d %.3f %.3f\n", r, k, np / (rc.first - t0),
               rc.n > 1 ? (rc.n - 1) / (rc.last - rc.first) : 0.0);
    }
  return 0;
}
"""


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="a .kiln model file")
    ap.add_argument("--kiln-compile", action="append", default=[],
                    help="a kiln-compile to compare (repeatable)")
    ap.add_argument("--lib", action="append", default=[],
                    help="an already compiled Kiln shared library (repeatable)")
    ap.add_argument("--prompt", type=int, default=128, help="prompt tokens")
    ap.add_argument("--decode", type=int, default=2, help="tokens to generate")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if len(args.kiln_compile) + len(args.lib) < 1:
        sys.exit("ab_compilers: give --kiln-compile or --lib at least once")
    if not os.path.isfile(args.model):
        sys.exit("ab_compilers: no model file %s" % args.model)
    if args.prompt < 1 or args.decode < 1 or args.rounds < 1:
        sys.exit("ab_compilers: --prompt, --decode and --rounds must be positive")
    cc = shutil.which("cc") or shutil.which("clang-22") or shutil.which("gcc")
    if not cc:
        sys.exit("ab_compilers: no C compiler (cc) found")
    with tempfile.TemporaryDirectory() as tmp:
        libs, names = [], []
        for i, kc in enumerate(args.kiln_compile):
            out = os.path.join(tmp, "lib%d.so" % i)
            subprocess.check_call([kc, args.model, "--emit=shared", "-o", out])
            libs.append(out)
            names.append(kc)
        for lib in args.lib:
            libs.append(os.path.abspath(lib))
            names.append(lib)
        src = os.path.join(tmp, "ab.c")
        exe = os.path.join(tmp, "ab")
        with open(src, "w") as f:
            f.write(HARNESS)
        subprocess.check_call([cc, "-O2", src, "-I", os.path.join(ROOT, "runtime", "include"),
                               "-ldl", "-o", exe])
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        # The load order biases the result (measured: of two libraries
        # with identical decode kernels on the base shape, the one loaded
        # second read 9% slower, whichever it was; probably the huge pages
        # its weights get), so the harness runs once per load order, each
        # library loaded first once, and the rounds of all runs are pooled.
        runs = {}
        n = len(libs)
        for shift in range(n):
            order = [(i + shift) % n for i in range(n)]
            # Written to a file, not a pipe: a reader on the other core
            # would take CPU from the run.
            log = os.path.join(tmp, "log%d" % shift)
            with open(log, "w") as f:
                subprocess.check_call([exe, os.path.abspath(args.model), str(args.prompt),
                                       str(args.decode), str(args.rounds)] +
                                      [libs[i] for i in order], stdout=f, env=env)
            for r, k, pf, dc in (line.split() for line in open(log)):
                runs.setdefault(order[int(k)], {})[(shift, int(r))] = (float(pf), float(dc))
    print("%d rounds in each of %d load orders, prompt %d, %d generated, %d threads; medians "
          "(ratio: median of per-round ratios against the first)" % (args.rounds, n, args.prompt,
                                                                     args.decode, args.threads))
    base = runs[0]
    for k, name in enumerate(names):
        mine = runs[k]
        pf = median([v[0] for v in mine.values()])
        rp = median([mine[r][0] / base[r][0] for r in mine])
        line = "%-50s prefill %8.1f tok/s (%.3fx)" % (name, pf, rp)
        if args.decode >= 8:  # fewer intervals say little
            dc = median([v[1] for v in mine.values()])
            rd = median([mine[r][1] / base[r][1] for r in mine])
            line += "  decode %7.1f tok/s (%.3fx)" % (dc, rd)
        print(line)


if __name__ == "__main__":
    main()
