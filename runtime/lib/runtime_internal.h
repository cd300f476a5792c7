//===- runtime_internal.h - Kiln runtime internals -------------*- C++ -*-===//
//
// What the session library's sources share and no other code needs: buffer
// allocation, timing and the memref descriptors the entry points take.
// Private to runtime/lib; the libraries' interfaces are the public headers
// kiln/rt/model.h, kiln/rt/session.h and kiln/rt/driver.h.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_INTERNAL_H
#define KILN_RUNTIME_INTERNAL_H

#include "kiln/rt/session.h"

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace kiln::rt {

/// 64-byte aligned, zeroed floats (free with std::free); null when out of
/// memory.
float *allocFloats(size_t n);
/// A zeroed, 64-byte aligned KV cache of `elements` elements of
/// `elementBytes` (2 or 4) bytes each (free with std::free).
float *allocCache(size_t elements, int64_t elementBytes);
/// Milliseconds since t0.
double msSince(std::chrono::steady_clock::time_point t0);
/// The descriptor of a batch-1 cache buffer laid out as kiln_runtime.h says:
/// f32[layers][2][1][capacity][width].
kiln_memref_5d cacheMemref(float *data, int64_t layers, int64_t capacity,
                           int64_t width);
/// The descriptor of `n` contiguous elements as one row: [1][n].
template <typename T> kiln_memref_2d rowMemref(T *data, int64_t n) {
  return {data, data, 0, {1, n}, {n, 1}};
}
/// Memref descriptors of the mapped model file and its weight offsets.
void modelBuffers(const ModelFile &model, kiln_memref_1d &weights,
                  kiln_memref_1d &offsets);

} // namespace kiln::rt

#endif // KILN_RUNTIME_INTERNAL_H
