//===- dtype.cpp - Weight element types: block layouts, dequantization ----===//
//
// The dequantizers follow ggml's dequantize_row_* (ggml/src/ggml-quants.c)
// operation for operation, in float, without contraction into fused
// multiply-adds (ggml's reference code is built without FMA), so that every
// float is bit-identical to ggml's.
//
//===----------------------------------------------------------------------===//

#include "kiln/rt/dtype.h"

#include "kiln_generated.h"

#include <cstring>

#pragma clang fp contract(off)

namespace kiln::rt {
namespace fb = kiln::fb;

namespace {

// The schema's values, which the table below is indexed by (and others
// depend on).
static_assert((int)fb::DType::F32 == 0 && (int)fb::DType::F16 == 1 &&
              (int)fb::DType::BF16 == 2 && (int)fb::DType::I8 == 3 &&
              (int)fb::DType::I4 == 4 && (int)fb::DType::I32 == 5 &&
              (int)fb::DType::Q8_0 == 6 && (int)fb::DType::Q4_0 == 7 &&
              (int)fb::DType::Q4_1 == 8 && (int)fb::DType::Q5_0 == 9 &&
              (int)fb::DType::Q5_1 == 10 && (int)fb::DType::Q4_K == 11 &&
              (int)fb::DType::Q5_K == 12 && (int)fb::DType::Q6_K == 13 &&
              (int)fb::DType::MAX == 13,
              "kiln.fbs DType values changed");

/// By DType value; blockElems 0: not a weight type.
constexpr DTypeInfo kTypes[] = {
    {"F32", 1, 4, false},    {"F16", 1, 2, false},    {"BF16", 1, 2, false},
    {"I8", 0, 0, false},     {"I4", 0, 0, false},     {"I32", 0, 0, false},
    {"Q8_0", 32, 34, true},  {"Q4_0", 32, 18, true},  {"Q4_1", 32, 20, true},
    {"Q5_0", 32, 22, true},  {"Q5_1", 32, 24, true},  {"Q4_K", 256, 144, true},
    {"Q5_K", 256, 176, true}, {"Q6_K", 256, 210, true},
};
static_assert(sizeof(kTypes) / sizeof(kTypes[0]) == (size_t)fb::DType::MAX + 1,
              "one entry per DType");

constexpr int64_t kMaxElements = int64_t(1) << 40;

uint16_t load16(const uint8_t *p) { return p[0] | (uint16_t)p[1] << 8; }
uint32_t load32(const uint8_t *p) {
  return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}
float fp16(const uint8_t *p) { return halfToFloat(load16(p)); }

// Block layouts (ggml-common.h), byte offsets within a block.

void q8_0(const uint8_t *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 34, y += 32) {
    const float d = fp16(x);
    const int8_t *qs = reinterpret_cast<const int8_t *>(x + 2);
    for (int j = 0; j < 32; ++j)
      y[j] = qs[j] * d;
  }
}

void q4_0(const uint8_t *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 18, y += 32) {
    const float d = fp16(x);
    const uint8_t *qs = x + 2;
    for (int j = 0; j < 16; ++j) {
      const int x0 = (qs[j] & 0x0F) - 8;
      const int x1 = (qs[j] >> 4) - 8;
      y[j] = x0 * d;
      y[j + 16] = x1 * d;
    }
  }
}

void q4_1(const uint8_t *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 20, y += 32) {
    const float d = fp16(x), m = fp16(x + 2);
    const uint8_t *qs = x + 4;
    for (int j = 0; j < 16; ++j) {
      const int x0 = qs[j] & 0x0F;
      const int x1 = qs[j] >> 4;
      y[j] = x0 * d + m;
      y[j + 16] = x1 * d + m;
    }
  }
}

void q5_0(const uint8_t *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 22, y += 32) {
    const float d = fp16(x);
    const uint32_t qh = load32(x + 2);
    const uint8_t *qs = x + 6;
    for (int j = 0; j < 16; ++j) {
      const uint8_t xh0 = ((qh >> (j + 0)) << 4) & 0x10;
      const uint8_t xh1 = (qh >> (j + 12)) & 0x10;
      const int32_t x0 = ((qs[j] & 0x0F) | xh0) - 16;
      const int32_t x1 = ((qs[j] >> 4) | xh1) - 16;
      y[j] = x0 * d;
      y[j + 16] = x1 * d;
    }
  }
}

void q5_1(const uint8_t *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 24, y += 32) {
    const float d = fp16(x), m = fp16(x + 2);
    const uint32_t qh = load32(x + 4);
    const uint8_t *qs = x + 8;
    for (int j = 0; j < 16; ++j) {
      const uint8_t xh0 = ((qh >> (j + 0)) << 4) & 0x10;
      const uint8_t xh1 = (qh >> (j + 12)) & 0x10;
      const int x0 = (qs[j] & 0x0F) | xh0;
      const int x1 = (qs[j] >> 4) | xh1;
      y[j] = x0 * d + m;
      y[j + 16] = x1 * d + m;
    }
  }
}

/// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block.
void scaleMinK4(int j, const uint8_t *q, uint8_t &d, uint8_t &m) {
  if (j < 4) {
    d = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
  }
}

// Q4_K: d, dmin (fp16), scales[12], qs[128].
void q4_k(const uint8_t *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 144) {
    const float d = fp16(x), min = fp16(x + 2);
    const uint8_t *scales = x + 4, *q = x + 16;
    int is = 0;
    uint8_t sc, m;
    for (int j = 0; j < 256; j += 64) {
      scaleMinK4(is + 0, scales, sc, m);
      const float d1 = d * sc, m1 = min * m;
      scaleMinK4(is + 1, scales, sc, m);
      const float d2 = d * sc, m2 = min * m;
      for (int l = 0; l < 32; ++l)
        *y++ = d1 * (q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l)
        *y++ = d2 * (q[l] >> 4) - m2;
      q += 32;
      is += 2;
    }
  }
}

// Q5_K: d, dmin (fp16), scales[12], qh[32], qs[128].
void q5_k(const uint8_t *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 176) {
    const float d = fp16(x), min = fp16(x + 2);
    const uint8_t *scales = x + 4, *qh = x + 16, *ql = x + 48;
    int is = 0;
    uint8_t sc, m;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < 256; j += 64) {
      scaleMinK4(is + 0, scales, sc, m);
      const float d1 = d * sc, m1 = min * m;
      scaleMinK4(is + 1, scales, sc, m);
      const float d2 = d * sc, m2 = min * m;
      for (int l = 0; l < 32; ++l)
        *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l)
        *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
      ql += 32;
      is += 2;
      u1 <<= 2;
      u2 <<= 2;
    }
  }
}

// Q6_K: ql[128], qh[64], scales (int8)[16], d (fp16).
void q6_k(const uint8_t *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 210) {
    const float d = fp16(x + 208);
    const uint8_t *ql = x, *qh = x + 128;
    const int8_t *sc = reinterpret_cast<const int8_t *>(x + 192);
    for (int n = 0; n < 256; n += 128) {
      for (int l = 0; l < 32; ++l) {
        int is = l / 16;
        const int8_t q1 =
            (int8_t)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int8_t q2 =
            (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int8_t q3 =
            (int8_t)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int8_t q4 =
            (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l + 0] = d * sc[is + 0] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

} // namespace

const DTypeInfo *weightTypeInfo(fb::DType t) {
  auto i = (size_t)t;
  if (i >= sizeof(kTypes) / sizeof(kTypes[0]) || kTypes[i].blockElems == 0)
    return nullptr;
  return &kTypes[i];
}

std::string dtypeName(fb::DType t) {
  auto i = (size_t)t;
  if (i < sizeof(kTypes) / sizeof(kTypes[0]))
    return kTypes[i].name;
  return "unknown dtype " + std::to_string(i);
}

std::optional<std::string> storageBytes(fb::DType dtype, const int64_t *shape,
                                        size_t rank, uint64_t &bytes) {
  const DTypeInfo *info = weightTypeInfo(dtype);
  if (!info)
    return "has dtype " + dtypeName(dtype) +
           ", which is not a weight type (weights are F32, F16, BF16, Q8_0, "
           "Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K or Q6_K)";
  if (rank < 1 || rank > 4)
    return "has rank " + std::to_string(rank) + "; expected 1 to 4";
  uint64_t elements = 1;
  for (size_t i = 0; i < rank; ++i) {
    if (shape[i] <= 0)
      return "has invalid dimension " + std::to_string(shape[i]);
    if (__builtin_mul_overflow(elements, (uint64_t)shape[i], &elements) ||
        elements > (uint64_t)kMaxElements)
      return "is too large (more than 2^40 elements)";
  }
  if (shape[rank - 1] % info->blockElems)
    return std::string("is ") + info->name + " but its last dimension " +
           std::to_string(shape[rank - 1]) + " is not a multiple of the " +
           std::to_string(info->blockElems) + "-element block";
  // elements <= 2^40 and blockBytes / blockElems <= 4: no overflow.
  bytes = elements / info->blockElems * info->blockBytes;
  return std::nullopt;
}

float halfToFloat(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else { // subnormal: normalize
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while (!(mant & 0x400));
      bits = sign | (uint32_t)(127 - 15 - e) << 23 | (mant & 0x3FF) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000 | mant << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16ToFloat(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

void dequantizeRow(fb::DType t, const uint8_t *src, float *out, int64_t n) {
  switch (t) {
  case fb::DType::F32:
    std::memcpy(out, src, (size_t)n * 4);
    return;
  case fb::DType::F16:
    for (int64_t i = 0; i < n; ++i)
      out[i] = halfToFloat(load16(src + 2 * i));
    return;
  case fb::DType::BF16:
    for (int64_t i = 0; i < n; ++i)
      out[i] = bf16ToFloat(load16(src + 2 * i));
    return;
  case fb::DType::Q8_0:
    return q8_0(src, out, n / 32);
  case fb::DType::Q4_0:
    return q4_0(src, out, n / 32);
  case fb::DType::Q4_1:
    return q4_1(src, out, n / 32);
  case fb::DType::Q5_0:
    return q5_0(src, out, n / 32);
  case fb::DType::Q5_1:
    return q5_1(src, out, n / 32);
  case fb::DType::Q4_K:
    return q4_k(src, out, n / 256);
  case fb::DType::Q5_K:
    return q5_k(src, out, n / 256);
  case fb::DType::Q6_K:
    return q6_k(src, out, n / 256);
  case fb::DType::I8:
  case fb::DType::I4:
  case fb::DType::I32:
    break;
  }
}

} // namespace kiln::rt
