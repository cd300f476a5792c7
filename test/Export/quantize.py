"""kiln_export.quantize (the NumPy port of kiln-convert's quantizers) and the
exporters' dtype=, without the C++ (test/Convert/quantize.test compares with
kiln-convert and llama-quantize):
  1. quantize() then dtypes.dequantize() stays within each type's error
     bound, on data with outliers, zero, constant, tiny and huge blocks;
  2. a Q8_0 and a Q4_0 block computed by hand, byte for byte, and the
     bytes of every type on a fixed input (their SHA-256, checked against
     kiln::convert::quantizeRow when it was written);
  3. quantized_type: llama-quantize's Q4_K_M assignment of a 32-layer
     4096-wide model, the other recipes, the fallbacks of a 192-wide one;
  4. export_llama / export_gpt2 with every dtype: load_model reads the
     types expected of each weight, their bytes are quantize()'s of the right
     tensor, and reference_eval runs (and stays near the f32 logits).
Exits non-zero on the first wrong answer.
"""
import hashlib
import os
import sys
import tempfile

import numpy as np

import kiln_export
from kiln_export import dtypes
from kiln_export.quantize import TYPES, float_to_half, quantize, quantized_type

F = np.float32
tmp = tempfile.mkdtemp()
checks = 0


def check(cond, what):
    global checks
    if not cond:
        print("FAIL: " + what)
        sys.exit(1)
    checks += 1


def lcg_data(rows, cols, seed):
    """Deterministic float32 data without a RNG or libm: an LCG's integers
    scaled exactly, then cubed (heavy tails), per-row scales of 2^-8..2^7."""
    i = np.arange(rows * cols, dtype=np.uint64) + np.uint64(seed * 7919)
    u = (i * np.uint64(6364136223846793005) + np.uint64(1442695040888963407)) >> np.uint64(40)
    x = (u.astype(np.int64) - (1 << 23)).astype(F) * F(2.0 ** -22)  # [-2, 2)
    x = x * x * x
    scale = (F(2.0) ** (np.arange(rows) % 16 - 8).astype(F)).astype(F)
    scale[-2:] = [1e-30, 1e30]  # fp16 scales that underflow and overflow
    x = (x.reshape(rows, cols) * scale[:, None]).astype(F)
    x[-3, ::3] = 0  # exact zeros
    return x


# -- 1. error bounds -------------------------------------------------------------
def test_data():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((48, 512)).astype(F)
    x[rng.random(x.shape) < 0.01] *= 20                     # outliers
    x[1, :256] = 0                                          # zero blocks
    x[2] = np.repeat(rng.standard_normal(16).astype(F), 32)  # constant blocks
    x[3, :256] = 0.75
    x[4] *= F(1e-30)                                        # tiny
    x[5] *= F(1e30)                                         # huge
    x[6][rng.random(512) < 0.3] = 0                         # some exact zeros
    x[7] = np.abs(x[7])                                     # one sign
    x[8] = -np.abs(x[8])
    return x


x = test_data()
fp16_ulp = F(2.0 ** -11)
for t in TYPES:
    elems, nbytes = dtypes.BLOCKS[t]
    raw = quantize(t, x)
    check(len(raw) == x.size // elems * nbytes, "%s: %d bytes" % (t, len(raw)))
    with np.errstate(all="ignore"):  # 1e30 blocks: infinite fp16 scales
        y = dtypes.dequantize(t, raw, x.shape)
    if t == "F16":
        big = np.abs(x) >= 65520  # rounds to infinity
        err = np.abs(y - x)[~big]
        bound = np.maximum(np.abs(x[~big]) * fp16_ulp, F(2.0 ** -25))
        check(np.all(err <= bound), "F16: error beyond half an ulp")
        check(np.all(np.isinf(y[big])), "F16: values beyond 65504 are not infinite")
        continue
    if t in ("Q8_0", "Q4_0", "Q5_0", "Q5_1"):
        xb, eb = x.reshape(-1, 32), np.abs(y - x).reshape(-1, 32)
        if t == "Q5_1":
            lo, hi = xb.min(1), xb.max(1)
            step = (hi - lo) / 31
            # half a step, plus the fp16 rounding of the step (31 steps) and of the minimum
            bound = (step * 0.5 + 32 * np.maximum(step * fp16_ulp, 2.0 ** -25)
                     + np.maximum(np.abs(lo) * fp16_ulp, 2.0 ** -25))
        else:
            amax = np.abs(xb).max(1)
            levels = {"Q8_0": 127, "Q4_0": 8, "Q5_0": 16}[t]
            step = amax / levels
            # Q8_0 rounds to nearest; Q4_0/Q5_0 clip the largest value of
            # the sign opposite the block's extreme to one step short
            near = 0.5 if t == "Q8_0" else 1.0
            # (the fp16 scale is off by half an ulp, or by 2^-25 when subnormal)
            bound = step * near + (levels + 1) * np.maximum(step * fp16_ulp, 2.0 ** -25)
        fin = step < 65504  # the scale fits an fp16 (1e30 blocks: infinite scales)
        worst = float((eb.max(1)[fin] / np.maximum(bound[fin], 1e-45)).max())
        check(worst <= 1.0 + 1e-6, "%s: error %.3f of the bound" % (t, worst))
        check(np.all(eb[np.abs(xb).max(1) == 0] == 0), "%s: zero blocks are not zero" % t)
        print("%-5s max error %.3f of the bound" % (t, worst))
    else:
        # The final pass rounds each element to the nearest point of its
        # sub-block's grid: d * q - dm (Q4_K/Q5_K: d = d16 * scale, dm =
        # dmin16 * min, q in 0..15 / 0..31; Q6_K: dm = 0, q in -32..31).
        # Within the grid the error is at most d / 2; outside, the distance
        # to its end (plus float rounding).
        blk = np.frombuffer(raw, np.uint8).reshape(-1, nbytes)
        if t == "Q6_K":
            d = (blk[:, 208:210].copy().view("<f2").astype(F)
                 * blk[:, 192:208].view(np.int8).astype(F))          # [nb, 16]
            dm, lo_q, hi_q, sub = np.zeros_like(d), -32, 31, 16
        else:
            sc, mn = dtypes._scale_min_k4(blk[:, 4:16])
            d = blk[:, 0:2].copy().view("<f2").astype(F) * sc.astype(F)  # [nb, 8]
            dm = blk[:, 2:4].copy().view("<f2").astype(F) * mn.astype(F)
            lo_q, hi_q, sub = 0, 15 if t == "Q4_K" else 31, 32
        xs = x.reshape(-1, d.shape[1], sub)
        ys = y.reshape(xs.shape)
        d3, dm3 = d[:, :, None], dm[:, :, None]
        with np.errstate(all="ignore"):
            ends = (d3 * lo_q - dm3, d3 * hi_q - dm3)
            lo, hi = np.minimum(*ends), np.maximum(*ends)
            outside = np.maximum(lo - xs, 0) + np.maximum(xs - hi, 0)
            bound = (outside + np.abs(d3) * 0.5 * (1 + 2.0 ** -16)
                     + 1e-6 * (np.abs(xs) + np.abs(dm3)))
        ok = np.isfinite(d3) & np.isfinite(dm3) & (d3 != 0) & np.ones_like(xs, bool)
        err = np.abs(ys - xs)
        worst = float((err[ok] / bound[ok]).max())
        check(worst <= 1.0, "%s: error %.3f of the grid's bound" % (t, worst))
        inside = float((outside[ok] == 0).mean())
        check(inside > 0.9, "%s: only %.3f of the elements within the grid" % (t, inside))
        # and the grid is fine enough: relative RMS error on the Gaussian rows
        xn, yn = x[9:], y[9:]
        rel = float(np.sqrt(((yn - xn) ** 2).mean() / (xn ** 2).mean()))
        limit = {"Q4_K": 0.11, "Q5_K": 0.056, "Q6_K": 0.036}[t]
        check(rel <= limit, "%s: relative RMS error %.4f > %.3f" % (t, rel, limit))
        check(np.all(y[1, :256] == 0), "%s: a zero block is not zero" % t)
        print("%-5s max error %.3f of the grid's bound (%.4f of the elements within it); "
              "relative RMS error %.4f (limit %.3f)" % (t, worst, inside, rel, limit))
    # (1e30 rows: scales beyond fp16 dequantize to inf and NaN, as in ggml)
    check(np.all(np.isfinite(np.delete(y, 5, axis=0))), "%s: not finite" % t)

# -- 2. blocks by hand, and every type's bytes -----------------------------------
# Q8_0: the largest magnitude 127 makes d = 1.0 (fp16 0x3C00); roundf rounds
# halves away from zero (2.5 -> 3, -2.5 -> -3, 0.5 -> 1), not to even.
q8 = np.zeros(32, F)
q8[:10] = [127, -2.5, 2.5, 0.5, -0.5, 1.49, -1.5, 3.5, -126.6, 100.2]
want = bytes([0x00, 0x3C, 127, 0xFD, 3, 1, 0xFF, 1, 0xFE, 4, 0x81, 100] + [0] * 22)
check(quantize("Q8_0", q8) == want, "Q8_0 hand block: %s" % quantize("Q8_0", q8).hex())
# ... and d rounded to fp16: amax 16 -> d = 16/127 = 0.125984..., fp16 0x3008
# (1.0078125 * 2^-3); id = 7.9375; 1 * id = 7.9375 -> 8; -16 -> -127.
q8b = np.zeros(32, F)
q8b[:3] = [16, 1, -16]
want = bytes([0x08, 0x30, 127, 8, 0x81] + [0] * 29)
check(quantize("Q8_0", q8b) == want, "Q8_0 fp16 scale: %s" % quantize("Q8_0", q8b).hex())
# Q4_0: the first value of largest magnitude (-8, before 8) gives d = -8/-8
# = 1.0; q = min(15, trunc(x + 8.5)); bytes j = q[j] | q[j + 16] << 4.
q4 = np.zeros(32, F)
q4[:6] = [-8, 8, 7, -3.2, 0.5, -0.5]
q4[16:20] = [0.4, 7.6, -7.4, 2]
q = [0, 15, 15, 5, 9, 8] + [8] * 10 + [8, 15, 1, 10] + [8] * 12
want = bytes([0x00, 0x3C] + [q[j] | q[j + 16] << 4 for j in range(16)])
check(quantize("Q4_0", q4) == want, "Q4_0 hand block: %s" % quantize("Q4_0", q4).hex())
# 8 before -8: d = -1.0 (fp16 0xBC00), id = -1: q[0] = trunc(-8 + 8.5) = 0,
# q[1] = min(15, trunc(8 + 8.5)) = 15, q[16] = trunc(-0.4 + 8.5) = 8,
# q[17] = trunc(-7.6 + 8.5) = 0
q4[:2] = [8, -8]
check(quantize("Q4_0", q4)[:4] == bytes([0x00, 0xBC, 0 | 8 << 4, 15 | 0 << 4]),
      "Q4_0 with 8 before -8: %s" % quantize("Q4_0", q4)[:4].hex())
# fp16 conversion: round to nearest even, subnormals, overflow
f16 = np.array([1.0, 65504, 65520, 1e6, 2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -26, -0.0,
                1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11], F)
want = [0x3C00, 0x7BFF, 0x7C00, 0x7C00, 0x0001, 0x0000, 0x0001, 0x8000, 0x3C00, 0x3C02]
check(float_to_half(f16).tolist() == want, "fp16: %s" % [hex(h) for h in float_to_half(f16)])

# Every type's bytes on fixed data: SHA-256 of quantize(t, lcg_data(64, 1024, 1)),
# equal to kiln::convert::quantizeRow's (checked with a C++ driver when written).
GOLDEN = {
    "F16": "2d71dfd7c0e4dd7ce6051b477633e33793d7f994a8e4ff04a90230201a7d5695",
    "Q8_0": "e4969ef9d1bd27a1e920cdcddfd650ba6f15b9458c981e5bd37f2c85a828fe4f",
    "Q4_0": "0471df8153f5b2377afd1289c740171ee0a147a4c1fa5f75ac8021ec0cc42db4",
    "Q5_0": "b32045989cc4ef184c6692602133a400e5a4fa8913fb20eaa7b5c8223a5e238b",
    "Q5_1": "7caae231057912d64bd488a89d51c22cef6b48d5b4bed5aa82de7749a340002a",
    "Q4_K": "a21602b13c4a038d136b99f2cd723a0de164135b2a904cfd0294c1b095c5fb30",
    "Q5_K": "d1f3aa770627827ef72a43a59235b924c7678a1288944d8c115cadc94b0ea11c",
    "Q6_K": "503462dfc7f805d9a86e95196f815071f779aa9553e98f519c81a1c2d1cc6945",
}
fixed = lcg_data(64, 1024, 1)
for t in TYPES:
    h = hashlib.sha256(quantize(t, fixed)).hexdigest()
    check(h == GOLDEN[t], "%s: bytes of the fixed data changed (sha256 %s)" % (t, h))
print("hand blocks and fixed bytes ok")

# -- 3. the per-tensor rule ------------------------------------------------------
more_bits = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31}  # use_more_bits, 32 layers
for i in range(32):
    for role, row in (("attn_q", 4096), ("attn_k", 4096), ("attn_v", 4096),
                      ("attn_output", 4096), ("ffn_gate", 4096), ("ffn_up", 4096),
                      ("ffn_down", 11008)):
        name = "blk.%d.%s.weight" % (i, role)
        got = quantized_type("q4_k_m", name, row, 32, False)
        exp = "Q6_K" if role in ("attn_v", "ffn_down") and i in more_bits else "Q4_K"
        check(got == exp, "q4_k_m %s: %s, expected %s" % (name, got, exp))
        check(quantized_type("q8_0", name, row, 32, False) == "Q8_0", "q8_0 " + name)
        check(quantized_type("Q4_0", name, row, 32, False) == "Q4_0", "q4_0 " + name)
    for norm in ("attn_norm", "ffn_norm"):
        check(quantized_type("q4_k_m", "blk.%d.%s.weight" % (i, norm), 4096, 32, False) is None,
              "norms stay as they are")
for recipe, out, emb, emb_tied in (("q4_k_m", "Q6_K", "Q4_K", "Q6_K"),
                                   ("q4_0", "Q6_K", "Q4_0", "Q6_K"),
                                   ("q8_0", "Q8_0", "Q8_0", "Q8_0")):
    check(quantized_type(recipe, "output.weight", 4096, 32, False) == out, recipe + " output")
    check(quantized_type(recipe, "token_embd.weight", 4096, 32, False) == emb,
          recipe + " token_embd")
    check(quantized_type(recipe, "token_embd.weight", 4096, 32, True) == emb_tied,
          recipe + " tied token_embd")
    for none in ("output_norm.weight", "position_embd.weight", "blk.0.attn_qkv.bias"):
        check(quantized_type(recipe, none, 4096, 32, False) is None, recipe + " " + none)
# GPT-2's fused qkv follows attn_v's rule (12 layers: 0, 3, 6, 9, 10, 11).
for layer in range(12):
    exp = "Q6_K" if layer in (0, 3, 6, 9, 10, 11) else "Q4_K"
    got = quantized_type("q4_k_m", "blk.%d.attn_qkv.weight" % layer, 768, 12, False)
    check(got == exp, "gpt2 qkv layer %d: %s, expected %s" % (layer, got, exp))
# 192 wide: Q4_K -> Q5_0, Q6_K -> Q8_0; output Q8_0; 100 wide: F16
for name, exp in (("blk.5.attn_q.weight", "Q5_0"), ("blk.0.attn_v.weight", "Q8_0"),
                  ("blk.5.attn_v.weight", "Q5_0"), ("blk.0.ffn_down.weight", "Q8_0"),
                  ("blk.0.attn_qkv.weight", "Q8_0"), ("blk.5.attn_qkv.weight", "Q5_0"),
                  ("output.weight", "Q8_0"),
                  ("token_embd.weight", "Q5_0")):
    got = quantized_type("q4_k_m", name, 192, 32, False)
    check(got == exp, "q4_k_m 192 wide %s: %s, expected %s" % (name, got, exp))
check(quantized_type("q4_0", "output.weight", 192, 32, False) == "Q8_0", "q4_0 192 output")
check(quantized_type("q4_0", "blk.0.attn_q.weight", 100, 32, False) == "F16", "100 wide: F16")
check(quantized_type("q8_0", "output.weight", 100, 32, False) == "F16", "100 wide output: F16")
try:
    quantized_type("q3_k", "output.weight", 4096, 32, False)
    check(False, "an unknown recipe is accepted")
except ValueError:
    pass
print("quantized_type ok")

# -- 4. the exporters' dtype= ----------------------------------------------------
rng = np.random.default_rng(3)


def llama(tied):
    d, inter, layers, vocab = 256, 512, 4, 300
    sd = {"model.embed_tokens.weight": rng.standard_normal((vocab, d)),
          "model.norm.weight": 1 + 0.1 * rng.standard_normal(d)}
    for i in range(layers):
        p = "model.layers.%d." % i
        sd.update({p + "input_layernorm.weight": 1 + 0.1 * rng.standard_normal(d),
                   p + "post_attention_layernorm.weight": 1 + 0.1 * rng.standard_normal(d)})
        for n, shape in (("self_attn.q_proj", (d, d)), ("self_attn.k_proj", (128, d)),
                         ("self_attn.v_proj", (128, d)), ("self_attn.o_proj", (d, d)),
                         ("mlp.gate_proj", (inter, d)), ("mlp.up_proj", (inter, d)),
                         ("mlp.down_proj", (d, inter))):
            sd[p + n + ".weight"] = rng.standard_normal(shape) / np.sqrt(shape[1])
    if not tied:
        sd["lm_head.weight"] = rng.standard_normal((vocab, d)) / 16
    cfg = dict(hidden_size=d, intermediate_size=inter, num_hidden_layers=layers,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
               vocab_size=vocab, tie_word_embeddings=tied, bos_token_id=1, eos_token_id=2)
    return {k: v.astype(F) for k, v in sd.items()}, cfg


def llama_types(dtype, tied):
    """name -> the dtype expected in the file."""
    roles = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    mats = {"model.embed_tokens.weight": "token_embd"}
    if not tied:
        mats["lm_head.weight"] = "output"
    for i in range(4):
        for k, r in roles.items():
            mats["model.layers.%d.%s.weight" % (i, k)] = "blk.%d.%s" % (i, r)
    if dtype in ("f16", "bf16"):
        return {n: dtype.upper() for n in mats}
    if dtype == "f32":
        return {n: "F32" for n in mats}
    # 4 layers: use_more_bits holds in layers 2 and 3 (the last eighth: >= 3;
    # (i - 0) % 3 == 2: 2)
    big = {"q8_0": "Q8_0", "q4_0": "Q4_0", "q4_k_m": "Q4_K"}[dtype]
    head = "Q8_0" if dtype == "q8_0" else "Q6_K"
    out = {}
    for n, r in mats.items():
        if r == "output" or (tied and r == "token_embd"):
            out[n] = head
        elif dtype == "q4_k_m" and r.split(".")[-1] in ("attn_v", "ffn_down") \
                and int(r.split(".")[1]) in (2, 3):
            out[n] = "Q6_K"
        else:
            out[n] = big
    return out


tokens = [1, 5, 77, 200, 3, 299, 42, 8]
for tied in (False, True):
    sd, cfg = llama(tied)
    base = None
    for dtype in ("f32", "f16", "bf16", "q8_0", "q4_0", "Q4_K_M"):
        path = os.path.join(tmp, "llama-%s-%d.kiln" % (dtype, tied))
        kiln_export.export_llama(path, sd, cfg, dtype=dtype)
        m = kiln_export.load_model(path)
        want = llama_types(dtype.lower(), tied)
        for n, t in m.weight_dtypes.items():
            exp = want.get(n, "F32")  # norms stay F32
            check(t == exp, "llama %s tied=%s: %s is %s, expected %s" % (dtype, tied, n, t, exp))
        check(set(want) <= set(m.weight_dtypes), "llama %s: weights missing" % dtype)
        for n, t in m.weight_dtypes.items():
            if t in TYPES:
                check(bytes(m.weight_bytes[n]) == quantize(t, sd[n]),
                      "llama %s: %s holds other bytes than quantize(%s, it)" % (dtype, n, t))
            elif t == "BF16":
                u = sd[n].view(np.uint32)
                bf = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")
                check(bytes(m.weight_bytes[n]) == bf.tobytes(), "llama bf16: %s" % n)
        logits = kiln_export.reference_eval(path, tokens)
        check(logits.shape == (len(tokens), 300) and np.all(np.isfinite(logits)),
              "llama %s: reference_eval's logits" % dtype)
        if base is None:
            base = logits
            ref_bytes = open(path, "rb").read()
            kiln_export.export_llama(path + ".default", sd, cfg)
            check(open(path + ".default", "rb").read() == ref_bytes,
                  "the default differs from dtype='f32'")
        rel = float(np.abs(logits - base).max() / np.abs(base).max())
        limit = {"f32": 0, "f16": 0.01, "bf16": 0.05, "q8_0": 0.05}.get(dtype.lower(), 0.5)
        check(rel <= limit, "llama %s: logits %.3g from f32's (limit %g)" % (dtype, rel, limit))
        print("llama tied=%d %-6s %-20s logits within %.4f of f32's"
              % (tied, dtype, "+".join(sorted(set(m.weight_dtypes.values()))), rel))

# GPT-2: c_attn is written split into q, k and v; each part gets attn_qkv's
# type (attn_v's rule in q4_k_m) and holds quantize() of its rows of c_attn^T.
d, vocab = 256, 300
g = {"transformer.wte.weight": rng.standard_normal((vocab, d)),
     "transformer.wpe.weight": 0.1 * rng.standard_normal((32, d)),
     "transformer.ln_f.weight": 1 + 0.1 * rng.standard_normal(d),
     "transformer.ln_f.bias": 0.1 * rng.standard_normal(d)}
for i in range(2):
    p = "transformer.h.%d." % i
    for n, shape in (("ln_1.weight", (d,)), ("ln_1.bias", (d,)), ("ln_2.weight", (d,)),
                     ("ln_2.bias", (d,)), ("attn.c_attn.weight", (d, 3 * d)),
                     ("attn.c_attn.bias", (3 * d,)), ("attn.c_proj.weight", (d, d)),
                     ("attn.c_proj.bias", (d,)), ("mlp.c_fc.weight", (d, 4 * d)),
                     ("mlp.c_fc.bias", (4 * d,)), ("mlp.c_proj.weight", (4 * d, d)),
                     ("mlp.c_proj.bias", (d,))):
        g[p + n] = rng.standard_normal(shape) / 16
g = {k: v.astype(F) for k, v in g.items()}
gcfg = dict(n_embd=d, n_head=4, n_layer=2, n_positions=32, vocab_size=vocab)
path = os.path.join(tmp, "gpt2.kiln")
kiln_export.export_gpt2(path, g, gcfg, dtype="q4_k_m")
m = kiln_export.load_model(path)
ty = m.weight_dtypes
# 2 layers: use_more_bits in layer 1 (>= 7 * 2 / 8)
for n, exp in (("transformer.wte.weight", "Q6_K"), ("transformer.wpe.weight", "F32"),
               ("transformer.h.0.attn.q.weight", "Q4_K"),
               ("transformer.h.1.attn.v.weight", "Q6_K"),
               ("transformer.h.1.attn.q.weight", "Q6_K"),
               ("transformer.h.0.attn.q.bias", "F32"),
               ("transformer.h.0.attn.c_proj.weight", "Q4_K"),
               ("transformer.h.0.mlp.c_fc.weight", "Q4_K"),
               ("transformer.h.0.mlp.c_proj.weight", "Q4_K"),
               ("transformer.h.1.mlp.c_proj.weight", "Q6_K"), ("transformer.ln_f.weight", "F32")):
    check(ty[n] == exp, "gpt2 q4_k_m: %s is %s, expected %s" % (n, ty[n], exp))
c_attn_t = g["transformer.h.1.attn.c_attn.weight"].T
for j, part in enumerate("qkv"):
    check(bytes(m.weight_bytes["transformer.h.1.attn.%s.weight" % part])
          == quantize("Q6_K", c_attn_t[j * d:(j + 1) * d]), "gpt2: the %s part's bytes" % part)
check(bytes(m.weight_bytes["transformer.h.0.mlp.c_proj.weight"])
      == quantize("Q4_K", g["transformer.h.0.mlp.c_proj.weight"].T), "gpt2: c_proj transposed")
check(np.all(np.isfinite(kiln_export.reference_eval(path, tokens))), "gpt2 reference_eval")
print("gpt2 q4_k_m", "+".join(sorted(set(ty.values()))))

for bad in ("int8", "q4_k", "", None):
    try:
        kiln_export.export_gpt2(os.path.join(tmp, "bad.kiln"), g, gcfg, dtype=bad)
        check(False, "dtype=%r accepted" % (bad,))
    except ValueError as e:
        check("f32, f16, bf16, q8_0, q4_0, q4_k_m" in str(e), "message: %s" % e)
g2 = dict(g)
g2["transformer.wpe.weight"] = g["transformer.wpe.weight"] * F(1e6)
try:
    kiln_export.export_gpt2(os.path.join(tmp, "big.kiln"), g2, gcfg, dtype="f16")
    check(False, "f16 overflow accepted")
except ValueError as e:
    check("transformer.wpe.weight" in str(e), "message: %s" % e)
print("all %d quantize checks passed" % checks)
