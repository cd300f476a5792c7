"""Quantizing weights as llama-quantize does, in NumPy: the port of
compiler/lib/Convert/Quantize.cpp (itself a port of ggml's
quantize_row_*_ref and of llama-quantize's per-tensor type rule), so that
export_llama / export_gpt2 with dtype="q8_0", "q4_0" or "q4_k_m" write the
very bytes `kiln-convert --quantize` writes.

    quantized_type("q4_k_m", "blk.0.attn_v.weight", 4096, 32, False)  # "Q6_K"
    data = quantize("Q4_K", matrix)   # bytes: GGUF's blocks, row after row

Bit-exactness: every operation is IEEE single precision, in the C++ order
(which is compiled with -ffp-contract=off: no fused multiply-adds). Sums
are accumulated element after element (never NumPy's pairwise sum), all
constants are float32 and no intermediate is widened to float64. Blocks are
processed side by side: arrays are [elements of a block, blocks], and the
data-dependent choices of make_qkx2_quants / make_qx_quants are masks.
"""
import re

import numpy as np

from . import dtypes
from .dtypes import BLOCKS

RECIPES = ("q8_0", "q4_0", "q4_k_m")
# The types quantize() writes.
TYPES = ("F16", "Q8_0", "Q4_0", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K")

_F = np.float32
_U = np.uint32
_GROUP_MAX_EPS = _F(1e-15)
# Elements quantized at a time (whole blocks): large enough that NumPy's
# per-call overhead is small, small enough that temporaries stay in cache.
_CHUNK = 1 << 17


# -- the per-tensor rule (llama-quant.cpp) -------------------------------------

def _cdiv(a, b):
    """C's integer division (truncating)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _cmod(a, b):
    """C's remainder (the sign of the dividend)."""
    return a - b * _cdiv(a, b)


def _use_more_bits(layer, layers):
    """The first and last eighth of the layers and every third between."""
    return (layer < _cdiv(layers, 8) or layer >= _cdiv(7 * layers, 8)
            or _cmod(layer - _cdiv(layers, 8), 3) == 2)


_INT = re.compile(r"-?[0-9]+\Z")


def _layer_of(name):
    """(N, rest) for "blk.N.rest"; (-1, None) otherwise."""
    if not name.startswith("blk."):
        return -1, None
    num, dot, tail = name[4:].partition(".")
    if not _INT.match(num) or not tail:
        return -1, None
    layer = int(num)
    if not -2**63 <= layer < 2**63:
        return -1, None
    return layer, tail


def _fallback(dtype, row_length):
    """tensor_type_fallback: a type whose block does not divide the row."""
    def fits(t):
        return row_length % BLOCKS[t][0] == 0
    if fits(dtype):
        return dtype
    to = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}.get(dtype, dtype)
    return to if fits(to) else "F16"


def quantized_type(recipe, gguf_name, row_length, layers, tied_embedding):
    """The type ("Q8_0", "Q6_K", "F16", ...) llama-quantize gives the matrix
    named `gguf_name` (token_embd.weight, blk.N.attn_v.weight, ...) with rows
    of `row_length` in a model of `layers` layers (`tied_embedding`: the head
    reads token_embd) under `recipe` (one of RECIPES, any case); None when it
    stays as it is (norms, biases, position_embd). Types whose block does not
    divide the row fall back: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, then
    F16. As kiln::convert::quantizedType."""
    r = recipe.lower() if isinstance(recipe, str) else recipe
    if r not in RECIPES:
        raise ValueError("quantization recipe %r is not one of %s"
                         % (recipe, ", ".join(RECIPES)))
    name = gguf_name
    row_length, layers = int(row_length), int(layers)
    if (not name.endswith("weight") or "_norm.weight" in name
            or name in ("position_embd.weight", "token_types.weight")):
        return None
    base = {"q8_0": "Q8_0", "q4_0": "Q4_0", "q4_k_m": "Q4_K"}[r]
    dtype = base
    layer, rest = _layer_of(name)
    if name == "output.weight" or (tied_embedding and name == "token_embd.weight"):
        if row_length % BLOCKS[base][0]:
            dtype = "Q8_0"
        elif dtype != "Q8_0":
            dtype = "Q6_K"
    elif r == "q4_k_m" and layer >= 0:
        # attn_qkv is attn_v-like in llama-quantize (category_is_attn_v).
        if rest in ("attn_v.weight", "attn_qkv.weight", "ffn_down.weight"):
            if _use_more_bits(layer, layers):
                dtype = "Q6_K"
    return _fallback(dtype, row_length)


# -- scalars -------------------------------------------------------------------

def float_to_half(f):
    """float32 array -> uint16 array: ggml's fp32 -> fp16 conversion (round
    to nearest even; overflow to infinity; NaN as 0x7E00), operation for
    operation as kiln::convert::floatToHalf."""
    f = np.asarray(f, _F)
    with np.errstate(over="ignore"):  # overflows to infinity, as in C
        base = (np.abs(f) * _F(2.0 ** 112)) * _F(2.0 ** -110)
    w = f.view(_U)
    shl1 = w + w
    sign = w & _U(0x80000000)
    bias = np.maximum(shl1 & _U(0xFF000000), _U(0x71000000))
    base = ((bias >> _U(1)) + _U(0x07800000)).view(_F) + base
    bits = base.view(_U)
    nonsign = ((bits >> _U(13)) & _U(0x7C00)) + (bits & _U(0x0FFF))
    h = (sign >> _U(16)) | np.where(shl1 > _U(0xFF000000), _U(0x7E00), nonsign)
    return (h & _U(0xFFFF)).astype(np.uint16)


def _half_bytes(h):
    """uint16 array [..., n] -> its little-endian bytes [..., 2n]."""
    h = np.ascontiguousarray(h.astype("<u2"))
    return h.view(np.uint8).reshape(h.shape[:-1] + (2 * h.shape[-1],))


def _half_value(h):
    """uint16 fp16 bits -> float32 (exact)."""
    return np.asarray(h, np.uint16).view(np.float16).astype(_F)


def _nearest_int(f):
    """ggml's nearest_int: the float adder's rounding (to nearest even), and
    its bit pattern, whatever the magnitude (int32)."""
    val = np.asarray(f + _F(12582912.0), _F)
    return (val.view(np.int32) & np.int32(0x007FFFFF)) - np.int32(0x00400000)


def _roundf(x):
    """C's roundf: to nearest, halves away from zero (float32)."""
    t = np.trunc(x)
    return np.where(np.abs(x - t) >= _F(0.5), t + np.sign(x), t).astype(_F)


def _to_int(x):
    """float32 -> int64, truncating; what x86's cvttss2si gives for values
    out of the int32 range (INT_MIN), for the conversions C leaves undefined."""
    ok = np.isfinite(x) & (x > _F(-2147483648.0)) & (x < _F(2147483648.0))
    return np.where(ok, np.trunc(np.where(ok, x, _F(0))), _F(-2147483648.0)).astype(np.int64)


def _wrap_int8(v):
    """An integer converted to int8_t (two's complement wrap)."""
    return ((v + 128) & 255) - 128


def _seqsum(a):
    """sum = 0; sum += a[0]; sum += a[1]; ...: the C loop's order."""
    s = np.zeros(a.shape[1:], _F)
    for i in range(a.shape[0]):
        s += a[i]
    return s


# -- 32-element block types ----------------------------------------------------

def _signed_abs_max(xt):
    """xt: [32, nb]. The value of largest magnitude (the first of equal ones)."""
    amax = np.zeros(xt.shape[1], _F)
    mx = np.zeros(xt.shape[1], _F)
    for j in range(xt.shape[0]):
        v = xt[j]
        a = np.abs(v)
        c = amax < a
        amax = np.where(c, a, amax)
        mx = np.where(c, v, mx)
    return mx


def _inverse(d):
    """d ? 1.0f / d : 0.0f"""
    nz = d != 0
    return np.where(nz, _F(1) / np.where(nz, d, _F(1)), _F(0)).astype(_F)


def _q8_0(x):
    amax = np.abs(x).max(axis=1)
    d = amax / _F(127)
    idv = _inverse(d)
    q = _wrap_int8(_to_int(_roundf(x * idv[:, None]))) & 255
    return np.concatenate([_half_bytes(float_to_half(d)[:, None]), q.astype(np.uint8)], axis=1)


def _q4_0(x):
    d = _signed_abs_max(x.T) / _F(-8)
    idv = _inverse(d)
    xi = np.minimum(15, _wrap_int8(_to_int(x * idv[:, None] + _F(8.5)))) & 255
    qs = xi[:, :16] | (xi[:, 16:] << 4)
    return np.concatenate([_half_bytes(float_to_half(d)[:, None]), qs.astype(np.uint8)], axis=1)


def _pack_q5(xi):
    """xi: [nb, 32] quants (0..31) -> [nb, 20]: qh (32 bits), then qs[16]."""
    xi = xi.astype(np.uint32)
    qs = ((xi[:, :16] & 0x0F) | ((xi[:, 16:] & 0x0F) << 4)).astype(np.uint8)
    bits = (xi & _U(0x10)) >> _U(4)
    qh = np.bitwise_or.reduce(bits << np.arange(32, dtype=np.uint32), axis=1)
    qh = np.ascontiguousarray(qh.astype("<u4")).view(np.uint8).reshape(-1, 4)
    return np.concatenate([qh, qs], axis=1)


def _q5_0(x):
    d = _signed_abs_max(x.T) / _F(-16)
    idv = _inverse(d)
    xi = np.minimum(31, _wrap_int8(_to_int(x * idv[:, None] + _F(16.5)))) & 255
    return np.concatenate([_half_bytes(float_to_half(d)[:, None]), _pack_q5(xi)], axis=1)


def _q5_1(x):
    xt = x.T
    mn = np.full(xt.shape[1], np.finfo(_F).max, _F)
    mx = np.full(xt.shape[1], -np.finfo(_F).max, _F)
    for j in range(32):
        v = xt[j]
        mn = np.where(v < mn, v, mn)
        mx = np.where(v > mx, v, mx)
    d = (mx - mn) / _F(31)
    idv = _inverse(d)
    xi = _to_int((x - mn[:, None]) * idv[:, None] + _F(0.5)) & 255
    head = _half_bytes(np.stack([float_to_half(d), float_to_half(mn)], axis=1))
    return np.concatenate([head, _pack_q5(xi)], axis=1)


# -- K-quants ------------------------------------------------------------------

def _make_qkx2_quants(X, W, nmax, rmin, rdelta, nstep):
    """make_qkx2_quants on the columns of X [n, m] with weights W [n, m]:
    (L [n, m] int64 in 0..nmax, scale [m], the_min [m])."""
    n = X.shape[0]
    mn = X[0].copy()
    mx = X[0].copy()
    sum_w = W[0].copy()
    sum_x = sum_w * X[0]
    for i in range(1, n):
        mn = np.where(X[i] < mn, X[i], mn)
        mx = np.where(X[i] > mx, X[i], mx)
        sum_w = sum_w + W[i]
        sum_x = sum_x + W[i] * X[i]
    mn = np.where(mn > 0, _F(0), mn)
    flat = mx == mn
    flat_min = mn
    iscale = _F(nmax) / (mx - mn)
    scale = _F(1) / iscale
    L = np.clip(_nearest_int(iscale * (X - mn)), 0, nmax)
    diff = scale * L.astype(_F) + mn - X
    best_error = _seqsum(W * (diff * diff))
    for step in range(nstep + 1):
        iscale = (_F(rmin) + _F(rdelta) * _F(step) + _F(nmax)) / (mx - mn)
        laux = np.clip(_nearest_int(iscale * (X - mn)), 0, nmax)
        lf = laux.astype(_F)
        wl = W * lf
        sum_l = _seqsum(wl)
        sum_l2 = _seqsum(wl * lf)
        sum_xl = _seqsum(wl * X)
        D = sum_w * sum_l2 - sum_l * sum_l
        this_scale = (sum_w * sum_xl - sum_x * sum_l) / D
        this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D
        pos = this_min > 0
        this_min = np.where(pos, _F(0), this_min)
        this_scale = np.where(pos, sum_xl / sum_l2, this_scale)
        diff = this_scale * lf + this_min - X
        cur_error = _seqsum(W * (diff * diff))
        better = (D > 0) & (cur_error < best_error)
        L = np.where(better, laux, L)
        best_error = np.where(better, cur_error, best_error)
        scale = np.where(better, this_scale, scale)
        mn = np.where(better, this_min, mn)
    L = np.where(flat, 0, L)
    scale = np.where(flat, _F(0), scale)
    mn = np.where(flat, flat_min, mn)
    return L, scale.astype(_F), (-mn).astype(_F)


def _k_super_block(x, nmax, rmin, nstep):
    """The shared part of Q4_K and Q5_K: x [nb, 256] -> (head [nb, 16]: d,
    dmin and the 12 bytes of 6-bit scales; L [nb, 256] in 0..nmax)."""
    nb = x.shape[0]
    X = np.ascontiguousarray(x.reshape(nb * 8, 32).T)  # [32, sub-blocks]
    sum_x2 = _seqsum(X * X)
    av_x = np.sqrt(sum_x2 / _F(32))
    W = av_x + np.abs(X)
    L, scales, mins = _make_qkx2_quants(X, W, nmax, rmin, 0.1, nstep)
    L = L.T.reshape(nb, 8, 32)
    scales = scales.reshape(nb, 8)
    mins = mins.reshape(nb, 8)
    max_scale = np.zeros(nb, _F)
    max_min = np.zeros(nb, _F)
    for j in range(8):
        max_scale = np.where(scales[:, j] > max_scale, scales[:, j], max_scale)
        max_min = np.where(mins[:, j] > max_min, mins[:, j], max_min)
    inv_scale = np.where(max_scale > 0, _F(63) / np.where(max_scale > 0, max_scale, _F(1)), _F(0))
    inv_min = np.where(max_min > 0, _F(63) / np.where(max_min > 0, max_min, _F(1)), _F(0))
    ls = np.minimum(63, _nearest_int(inv_scale[:, None].astype(_F) * scales) & 255)
    lm = np.minimum(63, _nearest_int(inv_min[:, None].astype(_F) * mins) & 255)
    sc = np.zeros((nb, 12), np.int64)
    for j in range(8):
        if j < 4:
            sc[:, j] = ls[:, j]
            sc[:, j + 4] = lm[:, j]
        else:
            sc[:, j + 4] = (ls[:, j] & 0xF) | ((lm[:, j] & 0xF) << 4)
            sc[:, j - 4] |= (ls[:, j] >> 4) << 6
            sc[:, j] |= (lm[:, j] >> 4) << 6
    dh = float_to_half(max_scale / _F(63))
    mh = float_to_half(max_min / _F(63))
    # get_scale_min_k4: the scales read back from the packed bytes.
    s, m = dtypes._scale_min_k4(sc)
    d = _half_value(dh)[:, None] * s.astype(_F)
    dm = _half_value(mh)[:, None] * m.astype(_F)
    nz = d != 0
    xs = x.reshape(nb, 8, 32)
    l = np.clip(_nearest_int((xs + dm[:, :, None]) / np.where(nz, d, _F(1))[:, :, None]), 0, nmax)
    L = np.where(nz[:, :, None], l, L).reshape(nb, 256)
    head = np.concatenate([_half_bytes(np.stack([dh, mh], axis=1)), sc.astype(np.uint8)], axis=1)
    return head, L


def _q4_k(x):
    head, L = _k_super_block(x, 15, -1.0, 20)
    Lr = L.reshape(-1, 4, 2, 32)
    q = (Lr[:, :, 0, :] | (Lr[:, :, 1, :] << 4)).reshape(-1, 128).astype(np.uint8)
    return np.concatenate([head, q], axis=1)


def _q5_k(x):
    head, L = _k_super_block(x, 31, -0.5, 15)
    Lr = L.reshape(-1, 4, 2, 32)  # [nb, 64-element chunk, half, 32]
    qh = np.zeros((L.shape[0], 32), np.int64)
    for c in range(4):
        for h in range(2):
            qh |= (Lr[:, c, h, :] > 15).astype(np.int64) << (2 * c + h)
    low = Lr & 0xF
    ql = (low[:, :, 0, :] | (low[:, :, 1, :] << 4)).reshape(-1, 128)
    return np.concatenate([head, qh.astype(np.uint8), ql.astype(np.uint8)], axis=1)


def _make_qx_quants(X, nmax):
    """make_qx_quants (rmse_type 1, no importance weights) on the columns of
    X [n, m]: (L [n, m] in 0..2*nmax-1, scale [m])."""
    amax = np.zeros(X.shape[1], _F)
    mx = np.zeros(X.shape[1], _F)
    for i in range(X.shape[0]):
        ax = np.abs(X[i])
        c = ax > amax
        amax = np.where(c, ax, amax)
        mx = np.where(c, X[i], mx)
    small = amax < _GROUP_MAX_EPS
    mxs = np.where(small, _F(1), mx)
    w = X * X
    wx = w * X

    def sums(iscale):
        l = np.clip(_nearest_int(iscale * X), -nmax, nmax - 1)
        lf = l.astype(_F)
        return l, _seqsum(wx * lf), _seqsum((w * lf) * lf)

    L, sumlx, suml2 = sums(_F(-nmax) / mxs)
    L = L + nmax
    nz = suml2 != 0
    scale = np.where(nz, sumlx / np.where(nz, suml2, _F(1)), _F(0))
    best = scale * sumlx
    for step in range(-9, 10):
        if step == 0:
            continue
        iscale = -(_F(nmax) + _F(0.1) * _F(step)) / mxs
        l, sumlx, suml2 = sums(iscale)
        c = (suml2 > 0) & (sumlx * sumlx > best * suml2)
        L = np.where(c, l + nmax, L)
        scale = np.where(c, sumlx / np.where(c, suml2, _F(1)), scale)
        best = np.where(c, scale * sumlx, best)
    L = np.where(small, 0, L)
    scale = np.where(small, _F(0), scale)
    return L, scale.astype(_F)


def _q6_k(x):
    nb = x.shape[0]
    X = np.ascontiguousarray(x.reshape(nb * 16, 16).T)  # [16, sub-blocks]
    L, scales = _make_qx_quants(X, 32)
    L = L.T.reshape(nb, 16, 16)
    scales = scales.reshape(nb, 16)
    max_scale = np.zeros(nb, _F)
    max_abs = np.zeros(nb, _F)
    for ib in range(16):
        a = np.abs(scales[:, ib])
        c = a > max_abs
        max_abs = np.where(c, a, max_abs)
        max_scale = np.where(c, scales[:, ib], max_scale)
    zero = max_abs < _GROUP_MAX_EPS
    iscale = _F(-128) / np.where(zero, _F(1), max_scale)
    dh = float_to_half(_F(1) / iscale)
    sc = _wrap_int8(np.minimum(127, _nearest_int(iscale[:, None] * scales)))
    d = _half_value(dh)[:, None] * sc.astype(_F)
    nz = d != 0
    xs = x.reshape(nb, 16, 16)
    l = np.clip(_nearest_int(xs / np.where(nz, d, _F(1))[:, :, None]), -32, 31) + 32
    L = np.where(nz[:, :, None], l, L).reshape(nb, 2, 4, 32)  # [nb, half, k, 32]
    ql = np.concatenate([(L[:, :, 0] & 0xF) | ((L[:, :, 2] & 0xF) << 4),
                         (L[:, :, 1] & 0xF) | ((L[:, :, 3] & 0xF) << 4)], axis=2)
    qh = ((L[:, :, 0] >> 4) | ((L[:, :, 1] >> 4) << 2) | ((L[:, :, 2] >> 4) << 4)
          | ((L[:, :, 3] >> 4) << 6))
    out = np.concatenate([ql.reshape(nb, 128).astype(np.uint8), qh.reshape(nb, 64).astype(np.uint8),
                          (sc & 255).astype(np.uint8), _half_bytes(dh[:, None])], axis=1)
    out[zero] = 0
    return out


_QUANTIZERS = {"Q8_0": _q8_0, "Q4_0": _q4_0, "Q5_0": _q5_0, "Q5_1": _q5_1,
               "Q4_K": _q4_k, "Q5_K": _q5_k, "Q6_K": _q6_k}


def quantize(dtype, array):
    """The bytes of `array` (float32, any shape whose last dimension is a
    multiple of the type's block) stored as `dtype` (one of TYPES): GGUF's
    blocks row after row, exactly as kiln::convert::quantizeRow (ggml's
    quantize_row_<type>_ref; F16: ggml's round-to-nearest-even conversion)
    writes them."""
    if dtype not in TYPES:
        raise ValueError("quantize: dtype %r is not one of %s" % (dtype, ", ".join(TYPES)))
    a = np.ascontiguousarray(array, dtype=_F)
    elems, nbytes = BLOCKS[dtype]
    if a.ndim == 0 or a.shape[-1] % elems:
        raise ValueError("quantize: %s needs a last dimension that is a multiple of %d, got "
                         "shape %s" % (dtype, elems, tuple(a.shape)))
    flat = a.reshape(-1)
    with np.errstate(all="ignore"):
        if dtype == "F16":
            return float_to_half(flat).astype("<u2").tobytes()
        blocks = flat.reshape(-1, elems)
        fn = _QUANTIZERS[dtype]
        per = max(1, _CHUNK // elems)
        out = bytearray()
        for b in range(0, blocks.shape[0], per):
            q = fn(blocks[b:b + per])
            assert q.shape == (min(per, blocks.shape[0] - b), nbytes) and q.dtype == np.uint8
            out += q.tobytes()
    return bytes(out)
