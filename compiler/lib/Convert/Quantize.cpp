//===- Quantize.cpp - ggml's reference quantizers and llama-quantize's rule ===//
//
// Ported from llama.cpp (ggml/src/ggml-quants.c: quantize_row_*_ref,
// nearest_int, make_qx_quants, make_qkx2_quants; src/llama-quant.cpp:
// llama_tensor_get_type_impl, tensor_type_fallback), keeping every
// operation and its order. Compiled with -ffp-contract=off (CMakeLists.txt):
// no fused multiply-adds, so results are the IEEE single-precision ones a
// NumPy port reproduces.
//
//===----------------------------------------------------------------------===//

#include "kiln/Convert/Quantize.h"
#include "kiln/rt/dtype.h"
#include "kiln_generated.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/ErrorHandling.h"

#include <algorithm>
#include <cassert>
#include <cfloat>
#include <cmath>
#include <cstring>

using namespace llvm;

namespace kiln::convert {

//===----------------------------------------------------------------------===//
// Recipes
//===----------------------------------------------------------------------===//

std::optional<QuantizeRecipe> parseQuantizeRecipe(StringRef name) {
  std::string n = name.lower();
  if (n == "q8_0")
    return QuantizeRecipe::Q8_0;
  if (n == "q4_0")
    return QuantizeRecipe::Q4_0;
  if (n == "q4_k_m")
    return QuantizeRecipe::Q4_K_M;
  return std::nullopt;
}

const char *quantizeRecipeName(QuantizeRecipe recipe) {
  switch (recipe) {
  case QuantizeRecipe::None:
    return "none";
  case QuantizeRecipe::Q8_0:
    return "q8_0";
  case QuantizeRecipe::Q4_0:
    return "q4_0";
  case QuantizeRecipe::Q4_K_M:
    return "q4_k_m";
  }
  llvm_unreachable("unknown recipe");
}

namespace {

/// llama-quant.cpp's use_more_bits: the first and last eighth of the layers
/// and every third layer in between.
bool useMoreBits(int64_t layer, int64_t layers) {
  return layer < layers / 8 || layer >= 7 * layers / 8 ||
         (layer - layers / 8) % 3 == 2;
}

/// The layer N of "blk.N.<rest>", with `rest` set; -1 otherwise.
int64_t layerOf(StringRef name, StringRef &rest) {
  if (!name.consume_front("blk."))
    return -1;
  auto [num, tail] = name.split('.');
  int64_t layer;
  if (num.getAsInteger(10, layer) || tail.empty())
    return -1;
  rest = tail;
  return layer;
}

/// tensor_type_fallback: a type whose block does not divide the row.
fb::DType fallback(fb::DType type, int64_t rowLength) {
  auto fits = [&](fb::DType t) {
    return rowLength % rt::weightTypeInfo(t)->blockElems == 0;
  };
  if (fits(type))
    return type;
  fb::DType to = type;
  switch (type) {
  case fb::DType::Q4_K:
    to = fb::DType::Q5_0;
    break;
  case fb::DType::Q5_K:
    to = fb::DType::Q5_1;
    break;
  case fb::DType::Q6_K:
    to = fb::DType::Q8_0;
    break;
  default: // a 32-block type: nothing smaller to demote to
    break;
  }
  return fits(to) ? to : fb::DType::F16;
}

} // namespace

std::optional<fb::DType> quantizedType(QuantizeRecipe recipe,
                                       const QuantizeTarget &t) {
  if (recipe == QuantizeRecipe::None)
    return std::nullopt;
  StringRef name = t.ggufName;
  // tensor_allows_quantization: matrices named *weight, not norms, not the
  // learned position table.
  if (!name.ends_with("weight") || name.contains("_norm.weight") ||
      name == "position_embd.weight" || name == "token_types.weight")
    return std::nullopt;

  fb::DType base = recipe == QuantizeRecipe::Q8_0   ? fb::DType::Q8_0
                   : recipe == QuantizeRecipe::Q4_0 ? fb::DType::Q4_0
                                                    : fb::DType::Q4_K;
  fb::DType type = base;
  int64_t baseBlock = rt::weightTypeInfo(base)->blockElems;
  StringRef rest;
  int64_t layer = layerOf(name, rest);
  if (name == "output.weight" ||
      (t.tiedEmbedding && name == "token_embd.weight")) {
    // The output matrix (or the tied embedding that serves as it).
    if (t.rowLength % baseBlock != 0)
      type = fb::DType::Q8_0;
    else if (type != fb::DType::Q8_0)
      type = fb::DType::Q6_K;
  } else if (recipe == QuantizeRecipe::Q4_K_M && layer >= 0 &&
             (rest == "attn_v.weight" || rest == "attn_qkv.weight" ||
              rest == "ffn_down.weight")) {
    // attn_qkv is "attn_v-like" (category_is_attn_v), so it takes attn_v's
    // rule; llama-quantize's own branch for it (Q5_K) is never reached.
    if (useMoreBits(layer, t.layers))
      type = fb::DType::Q6_K;
  }
  return fallback(type, t.rowLength);
}

bool canQuantizeTo(fb::DType type) {
  switch (type) {
  case fb::DType::F16:
  case fb::DType::Q8_0:
  case fb::DType::Q4_0:
  case fb::DType::Q5_0:
  case fb::DType::Q5_1:
  case fb::DType::Q4_K:
  case fb::DType::Q5_K:
  case fb::DType::Q6_K:
    return true;
  default:
    return false;
  }
}

//===----------------------------------------------------------------------===//
// Scalars
//===----------------------------------------------------------------------===//

namespace {

uint32_t bitsOf(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float floatOf(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

} // namespace

uint16_t floatToHalf(float f) {
  // ggml_compute_fp32_to_fp16 (Maratos' branch-free rounding).
  const float scaleToInf = 0x1.0p+112f;
  const float scaleToZero = 0x1.0p-110f;
  float base = (std::fabs(f) * scaleToInf) * scaleToZero;
  const uint32_t w = bitsOf(f);
  const uint32_t shl1 = w + w;
  const uint32_t sign = w & 0x80000000u;
  uint32_t bias = shl1 & 0xFF000000u;
  if (bias < 0x71000000u)
    bias = 0x71000000u;
  base = floatOf((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = bitsOf(base);
  const uint32_t expBits = (bits >> 13) & 0x00007C00u;
  const uint32_t mantissaBits = bits & 0x00000FFFu;
  const uint32_t nonsign = expBits + mantissaBits;
  return (uint16_t)((sign >> 16) | (shl1 > 0xFF000000u ? 0x7E00u : nonsign));
}

namespace {

/// The fp16 `h` written little-endian at `p`, and read back.
void putHalf(uint8_t *p, uint16_t h) {
  p[0] = (uint8_t)h;
  p[1] = (uint8_t)(h >> 8);
}
float halfAt(const uint8_t *p) {
  return rt::halfToFloat((uint16_t)(p[0] | p[1] << 8));
}

/// ggml's nearest_int: round to nearest even through the float adder (for
/// |f| <= 4194303; ggml asserts that in debug builds only, and so does this
/// port keep its release behaviour for larger values).
int nearestInt(float f) {
  float val = f + 12582912.f;
  int i;
  std::memcpy(&i, &val, sizeof(int));
  return (i & 0x007fffff) - 0x00400000;
}

/// C's float -> int8_t / uint8_t conversion (truncation), defined also where
/// C leaves it undefined (NaN, infinity, out of range: a block whose scale
/// is below ~1e-36, where 1/d loses precision or overflows; its fp16 scale
/// is then 0, so the quants do not matter) as x86 code computes it: through
/// a 32-bit conversion (cvttss2si: INT32_MIN when out of range) and its low
/// byte. kiln_export.quantize does the same.
int32_t truncInt32(float v) {
  return v > -2147483648.f && v < 2147483648.f ? (int32_t)v : INT32_MIN;
}
int8_t truncInt8(float v) { return (int8_t)(uint8_t)(truncInt32(v) & 255); }
uint8_t truncUInt8(float v) { return (uint8_t)(truncInt32(v) & 255); }

constexpr float kGroupMaxEps = 1e-15f;
constexpr int QK_K = 256;

//===----------------------------------------------------------------------===//
// 32-element block types
//===----------------------------------------------------------------------===//

void quantizeQ8_0(const float *x, uint8_t *y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 32, y += 34) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j)
      amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / ((1 << 7) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    putHalf(y, floatToHalf(d));
    for (int j = 0; j < 32; ++j) {
      const float x0 = x[j] * id;
      y[2 + j] = (uint8_t)truncInt8(std::roundf(x0));
    }
  }
}

/// The value of largest magnitude in x[0, 32) (the first of equal ones).
float signedAbsMax(const float *x) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < 32; ++j) {
    const float v = x[j];
    if (amax < std::fabs(v)) {
      amax = std::fabs(v);
      max = v;
    }
  }
  return max;
}

void quantizeQ4_0(const float *x, uint8_t *y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 32, y += 18) {
    const float d = signedAbsMax(x) / -8;
    const float id = d ? 1.0f / d : 0.0f;
    putHalf(y, floatToHalf(d));
    for (int j = 0; j < 16; ++j) {
      const float x0 = x[j] * id;
      const float x1 = x[16 + j] * id;
      const uint8_t xi0 = (uint8_t)std::min<int>(15, truncInt8(x0 + 8.5f));
      const uint8_t xi1 = (uint8_t)std::min<int>(15, truncInt8(x1 + 8.5f));
      y[2 + j] = (uint8_t)(xi0 | (xi1 << 4));
    }
  }
}

/// The 4 low bits of the 32 quants xi[] packed as Q5's qs[16] and their
/// fifth bits as the 32-bit qh, at q (qh) and q + 4 (qs).
void packQ5(const uint8_t *xi, uint8_t *q) {
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    q[4 + j] = (uint8_t)((xi[j] & 0x0F) | ((xi[16 + j] & 0x0F) << 4));
    qh |= ((xi[j] & 0x10u) >> 4) << (j + 0);
    qh |= ((xi[16 + j] & 0x10u) >> 4) << (j + 16);
  }
  for (int b = 0; b < 4; ++b)
    q[b] = (uint8_t)(qh >> (8 * b));
}

void quantizeQ5_0(const float *x, uint8_t *y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 32, y += 22) {
    const float d = signedAbsMax(x) / -16;
    const float id = d ? 1.0f / d : 0.0f;
    putHalf(y, floatToHalf(d));
    uint8_t xi[32];
    for (int j = 0; j < 32; ++j) {
      const float x0 = x[j] * id;
      xi[j] = (uint8_t)std::min<int>(31, truncInt8(x0 + 16.5f));
    }
    packQ5(xi, y + 2);
  }
}

void quantizeQ5_1(const float *x, uint8_t *y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 32, y += 24) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < 32; ++j) {
      if (x[j] < min)
        min = x[j];
      if (x[j] > max)
        max = x[j];
    }
    const float d = (max - min) / ((1 << 5) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    putHalf(y, floatToHalf(d));
    putHalf(y + 2, floatToHalf(min));
    uint8_t xi[32];
    for (int j = 0; j < 32; ++j) {
      const float x0 = (x[j] - min) * id;
      xi[j] = truncUInt8(x0 + 0.5f);
    }
    packQ5(xi, y + 4);
  }
}

//===----------------------------------------------------------------------===//
// K-quants
//===----------------------------------------------------------------------===//

/// make_qx_quants with rmse_type 1 and no importance weights (Q6_K).
float makeQxQuants(int n, int nmax, const float *x, int8_t *L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i)
      L[i] = 0;
    return 0.f;
  }
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearestInt(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = (int8_t)(l + nmax);
    float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0)
      continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearestInt(iscale * x[i]);
      l = std::max(-nmax, std::min(nmax - 1, l));
      float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        int l = nearestInt(iscale * x[i]);
        L[i] = (int8_t)(nmax + std::max(-nmax, std::min(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

/// make_qkx2_quants without mean absolute deviation (Q4_K, Q5_K).
float makeQkx2Quants(int n, int nmax, const float *x, const float *weights,
                     uint8_t *L, float *theMin, uint8_t *Laux, float rmin,
                     float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sumW = weights[0];
  float sumX = sumW * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min)
      min = x[i];
    if (x[i] > max)
      max = x[i];
    float w = weights[i];
    sumW += w;
    sumX += w * x[i];
  }
  if (min > 0)
    min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i)
      L[i] = 0;
    *theMin = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float bestError = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearestInt(iscale * (x[i] - min));
    L[i] = (uint8_t)std::max(0, std::min(nmax, l));
    float diff = scale * L[i] + min - x[i];
    diff = diff * diff;
    bestError += weights[i] * diff;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sumL = 0, sumL2 = 0, sumXL = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearestInt(iscale * (x[i] - min));
      l = std::max(0, std::min(nmax, l));
      Laux[i] = (uint8_t)l;
      float w = weights[i];
      sumL += w * l;
      sumL2 += w * l * l;
      sumXL += w * l * x[i];
    }
    float D = sumW * sumL2 - sumL * sumL;
    if (D > 0) {
      float thisScale = (sumW * sumXL - sumX * sumL) / D;
      float thisMin = (sumL2 * sumX - sumL * sumXL) / D;
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = sumXL / sumL2;
      }
      float curError = 0;
      for (int i = 0; i < n; ++i) {
        float diff = thisScale * Laux[i] + thisMin - x[i];
        diff = diff * diff;
        curError += weights[i] * diff;
      }
      if (curError < bestError) {
        for (int i = 0; i < n; ++i)
          L[i] = Laux[i];
        bestError = curError;
        scale = thisScale;
        min = thisMin;
      }
    }
  }
  *theMin = -min;
  return scale;
}

/// get_scale_min_k4: sub-block j's 6-bit scale and min.
void scaleMinK4(int j, const uint8_t *q, uint8_t &d, uint8_t &m) {
  if (j < 4) {
    d = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
}

/// The shared part of quantize_row_q4_K_ref and quantize_row_q5_K_ref: one
/// 256-element super-block's d, dmin and 12 bytes of 6-bit scales at
/// `head` (d, dmin, scales), and its quants (0..nmax) in L.
void quantizeKSuperBlock(const float *x, int nmax, float rmin, int nstep,
                         uint8_t *head, uint8_t L[QK_K]) {
  uint8_t Laux[32];
  float weights[32], mins[QK_K / 32], scales[QK_K / 32];
  float maxScale = 0, maxMin = 0;
  for (int j = 0; j < QK_K / 32; ++j) {
    float sumX2 = 0;
    for (int l = 0; l < 32; ++l)
      sumX2 += x[32 * j + l] * x[32 * j + l];
    float avX = std::sqrt(sumX2 / 32);
    for (int l = 0; l < 32; ++l)
      weights[l] = avX + std::fabs(x[32 * j + l]);
    scales[j] = makeQkx2Quants(32, nmax, x + 32 * j, weights, L + 32 * j,
                               &mins[j], Laux, rmin, 0.1f, nstep);
    if (scales[j] > maxScale)
      maxScale = scales[j];
    if (mins[j] > maxMin)
      maxMin = mins[j];
  }
  float invScale = maxScale > 0 ? 63.f / maxScale : 0.f;
  float invMin = maxMin > 0 ? 63.f / maxMin : 0.f;
  uint8_t *sc = head + 4;
  for (int j = 0; j < QK_K / 32; ++j) {
    uint8_t ls = (uint8_t)nearestInt(invScale * scales[j]);
    uint8_t lm = (uint8_t)nearestInt(invMin * mins[j]);
    ls = std::min<uint8_t>(63, ls);
    lm = std::min<uint8_t>(63, lm);
    if (j < 4) {
      sc[j] = ls;
      sc[j + 4] = lm;
    } else {
      sc[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
      sc[j - 4] |= (uint8_t)((ls >> 4) << 6);
      sc[j - 0] |= (uint8_t)((lm >> 4) << 6);
    }
  }
  putHalf(head, floatToHalf(maxScale / 63.f));
  putHalf(head + 2, floatToHalf(maxMin / 63.f));
  for (int j = 0; j < QK_K / 32; ++j) {
    uint8_t s, m;
    scaleMinK4(j, sc, s, m);
    const float d = halfAt(head) * s;
    if (!d)
      continue;
    const float dm = halfAt(head + 2) * m;
    for (int ii = 0; ii < 32; ++ii) {
      int l = nearestInt((x[32 * j + ii] + dm) / d);
      L[32 * j + ii] = (uint8_t)std::max(0, std::min(nmax, l));
    }
  }
}

void quantizeQ4_K(const float *x, uint8_t *y, int64_t nb) {
  uint8_t L[QK_K];
  for (int64_t i = 0; i < nb; ++i, x += QK_K, y += 144) {
    quantizeKSuperBlock(x, 15, -1.f, 20, y, L);
    uint8_t *q = y + 16;
    for (int j = 0; j < QK_K; j += 64, q += 32)
      for (int l = 0; l < 32; ++l)
        q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
  }
}

void quantizeQ5_K(const float *x, uint8_t *y, int64_t nb) {
  uint8_t L[QK_K];
  for (int64_t i = 0; i < nb; ++i, x += QK_K, y += 176) {
    quantizeKSuperBlock(x, 31, -0.5f, 15, y, L);
    uint8_t *qh = y + 16, *ql = y + 48;
    std::memset(qh, 0, QK_K / 8);
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < QK_K; n += 64, ql += 32) {
      for (int j = 0; j < 32; ++j) {
        int l1 = L[n + j];
        if (l1 > 15) {
          l1 -= 16;
          qh[j] |= m1;
        }
        int l2 = L[n + j + 32];
        if (l2 > 15) {
          l2 -= 16;
          qh[j] |= m2;
        }
        ql[j] = (uint8_t)(l1 | (l2 << 4));
      }
      m1 <<= 2;
      m2 <<= 2;
    }
  }
}

void quantizeQ6_K(const float *x, uint8_t *y, int64_t nb) {
  int8_t L[QK_K];
  float scales[QK_K / 16];
  for (int64_t i = 0; i < nb; ++i, x += QK_K, y += 210) {
    uint8_t *ql = y, *qh = y + 128;
    int8_t *sc = reinterpret_cast<int8_t *>(y + 192);
    uint8_t *d16 = y + 208;
    float maxScale = 0, maxAbsScale = 0;
    for (int ib = 0; ib < QK_K / 16; ++ib) {
      const float scale = makeQxQuants(16, 32, x + 16 * ib, L + 16 * ib);
      scales[ib] = scale;
      const float absScale = std::fabs(scale);
      if (absScale > maxAbsScale) {
        maxAbsScale = absScale;
        maxScale = scale;
      }
    }
    if (maxAbsScale < kGroupMaxEps) {
      std::memset(y, 0, 210);
      putHalf(d16, floatToHalf(0.f));
      continue;
    }
    float iscale = -128.f / maxScale;
    putHalf(d16, floatToHalf(1 / iscale));
    for (int ib = 0; ib < QK_K / 16; ++ib)
      sc[ib] = (int8_t)std::min(127, nearestInt(iscale * scales[ib]));
    for (int j = 0; j < QK_K / 16; ++j) {
      float d = halfAt(d16) * sc[j];
      if (!d)
        continue;
      for (int ii = 0; ii < 16; ++ii) {
        int l = nearestInt(x[16 * j + ii] / d);
        l = std::max(-32, std::min(31, l));
        L[16 * j + ii] = (int8_t)(l + 32);
      }
    }
    for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t q1 = L[j + l + 0] & 0xF;
        const uint8_t q2 = L[j + l + 32] & 0xF;
        const uint8_t q3 = L[j + l + 64] & 0xF;
        const uint8_t q4 = L[j + l + 96] & 0xF;
        ql[l + 0] = (uint8_t)(q1 | (q3 << 4));
        ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
        qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                          ((L[j + l + 64] >> 4) << 4) |
                          ((L[j + l + 96] >> 4) << 6));
      }
    }
  }
}

} // namespace

void quantizeRow(fb::DType type, const float *src, uint8_t *dst, int64_t n) {
  const rt::DTypeInfo *info = rt::weightTypeInfo(type);
  assert(info && canQuantizeTo(type) && n % info->blockElems == 0);
  int64_t nb = n / info->blockElems;
  switch (type) {
  case fb::DType::F16:
    for (int64_t i = 0; i < n; ++i)
      putHalf(dst + 2 * i, floatToHalf(src[i]));
    return;
  case fb::DType::Q8_0:
    return quantizeQ8_0(src, dst, nb);
  case fb::DType::Q4_0:
    return quantizeQ4_0(src, dst, nb);
  case fb::DType::Q5_0:
    return quantizeQ5_0(src, dst, nb);
  case fb::DType::Q5_1:
    return quantizeQ5_1(src, dst, nb);
  case fb::DType::Q4_K:
    return quantizeQ4_K(src, dst, nb);
  case fb::DType::Q5_K:
    return quantizeQ5_K(src, dst, nb);
  case fb::DType::Q6_K:
    return quantizeQ6_K(src, dst, nb);
  default:
    llvm_unreachable("quantizeRow: not a type it writes");
  }
}

} // namespace kiln::convert
