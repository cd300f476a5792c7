"""Weight element types of the .kiln schema (runtime/schema/kiln.fbs, DType):
how each is stored, and their values as float32 (NumPy).

The C++ description is kiln::rt (runtime/include/kiln/rt/dtype.h); this is
the Python exporter's own, for writing and reading files. Quantized blocks
are GGUF's bit for bit; dequantize() follows ggml's dequantize_row_* (in
float32, so its values equal ggml's and kiln::rt::dequantizeRow's).
"""
import numpy as np

# name -> (elements per block, bytes per block); the weight types only.
BLOCKS = {
    "F32": (1, 4), "F16": (1, 2), "BF16": (1, 2),
    "Q8_0": (32, 34), "Q4_0": (32, 18), "Q4_1": (32, 20), "Q5_0": (32, 22),
    "Q5_1": (32, 24), "Q4_K": (256, 144), "Q5_K": (256, 176), "Q6_K": (256, 210),
}
QUANTIZED = [k for k, (e, _) in BLOCKS.items() if e > 1]


def storage_bytes(dtype, shape, what="weight"):
    """Bytes a weight of `dtype` (a name) and `shape` takes; ValueError when
    dtype is not a weight type, the shape is invalid, or a block type's last
    dimension is not a multiple of its block."""
    if dtype not in BLOCKS:
        raise ValueError("%s has dtype %s, which is not a weight type (weights are %s)"
                         % (what, dtype, ", ".join(BLOCKS)))
    shape = [int(d) for d in shape]
    if not 1 <= len(shape) <= 4:
        raise ValueError("%s has rank %d; expected 1 to 4" % (what, len(shape)))
    n = 1
    for d in shape:
        if d <= 0:
            raise ValueError("%s has invalid dimension %d" % (what, d))
        n *= d
    if n > 1 << 40:
        raise ValueError("%s is too large (more than 2^40 elements)" % what)
    elems, nbytes = BLOCKS[dtype]
    if shape[-1] % elems:
        raise ValueError("%s is %s but its last dimension %d is not a multiple of the "
                         "%d-element block" % (what, dtype, shape[-1], elems))
    return n // elems * nbytes


def _f16(raw, offset, nblocks, stride):
    """The fp16 at byte `offset` of each of `nblocks` blocks, as float32."""
    b = raw.reshape(nblocks, stride)[:, offset:offset + 2].copy()
    return b.view("<f2").astype(np.float32).reshape(nblocks, 1)


def _scale_min_k4(scales):
    """Q4_K/Q5_K: the 6-bit scales and mins of the 8 sub-blocks, [nb, 8] each."""
    q = scales.astype(np.uint8)
    sc = np.empty((q.shape[0], 8), np.uint8)
    mn = np.empty((q.shape[0], 8), np.uint8)
    for j in range(8):
        if j < 4:
            sc[:, j] = q[:, j] & 63
            mn[:, j] = q[:, j + 4] & 63
        else:
            sc[:, j] = (q[:, j + 4] & 0xF) | ((q[:, j - 4] >> 6) << 4)
            mn[:, j] = (q[:, j + 4] >> 4) | ((q[:, j] >> 6) << 4)
    return sc, mn


def dequantize(dtype, raw, shape):
    """The values of a weight stored as `dtype` in bytes `raw` (a uint8
    array or bytes), as a float32 array of `shape`."""
    raw = np.frombuffer(raw, np.uint8) if not isinstance(raw, np.ndarray) else raw
    raw = raw.reshape(-1)
    n = int(np.prod(shape, dtype=np.int64))
    if dtype == "F32":
        out = raw.view("<f4").astype(np.float32)
    elif dtype == "F16":
        out = raw.view("<f2").astype(np.float32)
    elif dtype == "BF16":
        out = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        elems, nbytes = BLOCKS[dtype]
        nb = n // elems
        blk = raw.reshape(nb, nbytes)
        f32 = np.float32
        if dtype == "Q8_0":
            d = _f16(raw, 0, nb, nbytes)
            out = blk[:, 2:].view(np.int8).astype(f32) * d
        elif dtype in ("Q4_0", "Q4_1", "Q5_0", "Q5_1"):
            d = _f16(raw, 0, nb, nbytes)
            has_min = dtype in ("Q4_1", "Q5_1")
            m = _f16(raw, 2, nb, nbytes) if has_min else None
            five = dtype.startswith("Q5")
            qs_at = (2 if not has_min else 4) + (4 if five else 0)
            qs = blk[:, qs_at:qs_at + 16].astype(np.int32)
            q = np.concatenate([qs & 0x0F, qs >> 4], axis=1)
            if five:
                qh = blk[:, qs_at - 4:qs_at].copy().view("<u4").astype(np.int64)
                bits = (qh >> np.arange(32)) & 1
                q = q | (bits.astype(np.int32) << 4)
            if not has_min:
                q = q - (16 if five else 8)
                out = q.astype(f32) * d
            else:
                out = q.astype(f32) * d + m
        elif dtype in ("Q4_K", "Q5_K"):
            d = _f16(raw, 0, nb, nbytes)
            dmin = _f16(raw, 2, nb, nbytes)
            sc, mn = _scale_min_k4(blk[:, 4:16])
            five = dtype == "Q5_K"
            qh = blk[:, 16:48].astype(np.int32) if five else None
            ql = blk[:, 48:176] if five else blk[:, 16:144]
            out = np.empty((nb, 256), f32)
            for c in range(4):  # 64-element chunks: low nibbles, then high
                q = ql[:, 32 * c:32 * c + 32].astype(np.int32)
                for h in range(2):
                    v = (q & 0xF) if h == 0 else (q >> 4)
                    if five:
                        v = v + np.where(qh & (1 << (2 * c + h)), 16, 0)
                    s = 2 * c + h
                    d1 = d * sc[:, s:s + 1].astype(f32)
                    m1 = dmin * mn[:, s:s + 1].astype(f32)
                    out[:, 64 * c + 32 * h:64 * c + 32 * h + 32] = d1 * v.astype(f32) - m1
        elif dtype == "Q6_K":
            d = _f16(raw, 208, nb, nbytes)
            ql = blk[:, 0:128].astype(np.int32)
            qh = blk[:, 128:192].astype(np.int32)
            sc = blk[:, 192:208].view(np.int8).astype(f32)
            out = np.empty((nb, 256), f32)
            for half in range(2):
                L, H = ql[:, 64 * half:64 * half + 64], qh[:, 32 * half:32 * half + 32]
                S = sc[:, 8 * half:8 * half + 8]
                parts = [(L[:, 0:32] & 0xF) | (((H >> 0) & 3) << 4),
                         (L[:, 32:64] & 0xF) | (((H >> 2) & 3) << 4),
                         (L[:, 0:32] >> 4) | (((H >> 4) & 3) << 4),
                         (L[:, 32:64] >> 4) | (((H >> 6) & 3) << 4)]
                for k, q in enumerate(parts):
                    q = (q - 32).astype(f32)
                    for l16 in range(2):
                        cols = slice(128 * half + 32 * k + 16 * l16,
                                     128 * half + 32 * k + 16 * l16 + 16)
                        s = S[:, 2 * k + l16:2 * k + l16 + 1]
                        out[:, cols] = (d * s) * q[:, 16 * l16:16 * l16 + 16]
        else:
            raise ValueError("dtype %s is not a weight type" % dtype)
    return np.ascontiguousarray(out.reshape(shape), dtype=np.float32)
