//===- session.cpp - Generation, scoring and the forward over a session ---===//
//
// The decoder-only session (prefill, then decode token by token; teacher-
// forced scoring; the whole-sequence forward) and the process setup the
// sessions need (memory checks, threads, malloc tuning).
//
//===----------------------------------------------------------------------===//

#include "runtime_internal.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <malloc.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

namespace kiln::rt {

const char *stopReasonName(StopReason r) {
  switch (r) {
  case StopReason::Eos:
    return "eos";
  case StopReason::Length:
    return "length";
  case StopReason::Context:
    return "context";
  case StopReason::Stop:
    return "stop";
  }
  return "?";
}

std::string StopMatcher::push(const std::string &bytes) {
  if (hit)
    return "";
  pending += bytes;
  size_t first = std::string::npos;
  for (const std::string &s : stops)
    first = std::min(first, pending.find(s));
  if (first != std::string::npos) {
    hit = true;
    std::string out = pending.substr(0, first);
    pending.clear();
    return out;
  }
  // Hold back the longest end of the text that begins some stop string.
  size_t hold = 0;
  for (const std::string &s : stops)
    for (size_t k = std::min(s.size() - 1, pending.size()); k > hold; --k)
      if (pending.compare(pending.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  std::string out = pending.substr(0, pending.size() - hold);
  pending.erase(0, pending.size() - hold);
  return out;
}

std::string StopMatcher::flush() {
  std::string out;
  out.swap(pending);
  return out;
}

// libomp's; weak so that the runtime's unit tests link without it.
extern "C" void omp_set_num_threads(int) __attribute__((weak));

// The compiled @prefill allocates its prompt-sized temporaries per call.
// Above glibc's default mmap threshold (128 KiB, adapting upwards) each would
// be a fresh mmap whose pages fault in on first touch and are unmapped on
// free; they are kept in the heap, reused from call to call, instead.
// Allocations up to this size come from the heap. Not tuned: it covers a
// layer's temporaries at the prompt lengths benchmarked (the largest, the
// feed-forward's [tokens, ffn] f32 rows, is 1024 x 5632 x 4 bytes = 22 MiB
// for a 1024-token TinyLlama prompt); larger ones are mapped as before.
constexpr int kHeapAllocationMax = 32 << 20;
// Free heap memory at the top is given back to the system only above this
// much, so that the next call's temporaries reuse the same (already faulted
// in) pages rather than growing the heap again.
constexpr int kHeapKeepFree = 256 << 20;

void reuseFreedMemory() {
  mallopt(M_MMAP_THRESHOLD, kHeapAllocationMax);
  mallopt(M_TRIM_THRESHOLD, kHeapKeepFree);
}

void setThreads(int64_t threads) {
  if (!omp_set_num_threads)
    return;
  if (threads <= 0) {
    cpu_set_t set;
    threads = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
  }
  omp_set_num_threads((int)std::max<int64_t>(1, threads));
}

std::optional<Error> checkMemory(uint64_t bytes, const std::string &what) {
  auto mib = [](uint64_t b) { return std::to_string((b + (1 << 20) - 1) >> 20); };
  // What the kernel can back: MemAvailable + SwapFree.
  MemoryInfo mem = readMemoryInfo();
  uint64_t availableKb = mem.available / 1024, swapKb = mem.swapFree / 1024;
  if (mem.known && bytes / 1024 > availableKb + swapKb)
    return Error{kExitInternal,
                 "out of memory: " + what + " needs " + mib(bytes) +
                     " MiB but only " + mib((availableKb + swapKb) * 1024) +
                     " MiB of memory is available"};
  // What the address-space limit (ulimit -v) leaves.
  struct rlimit lim;
  if (getrlimit(RLIMIT_AS, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY) {
    uint64_t pages = 0;
    std::ifstream statm("/proc/self/statm");
    statm >> pages;
    uint64_t used = pages * (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t left = lim.rlim_cur > used ? lim.rlim_cur - used : 0;
    if (bytes > left)
      return Error{kExitInternal, "out of memory: " + what + " needs " +
                                      mib(bytes) + " MiB but the address-space "
                                      "limit (ulimit -v) leaves " +
                                      mib(left) + " MiB"};
  }
  return std::nullopt;
}

uint64_t sessionMemoryBytes(const kiln_model_info &info) {
  // In double: the values come from the compiled model; they cannot
  // overflow a real allocation, but the product is only an estimate here.
  double bytes;
  double kv = (double)info.kv_element_bytes;
  if (info.kind == KILN_MODEL_ENCODER_DECODER)
    bytes = (double)info.num_layers * 2 * info.capacity * info.kv_width * kv +
            ((double)info.cross_layers * 2 * info.source_capacity *
                 info.cross_width +
             (double)info.vocab_size) *
                sizeof(float);
  else
    bytes = (double)info.num_layers * 2 * info.batch * info.capacity *
                info.kv_width * kv +
            (double)info.batch * info.vocab_size * sizeof(float);
  return bytes > 1e18 ? (uint64_t)1e18 : (uint64_t)bytes;
}

float *allocFloats(size_t n) {
  size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
  void *p = std::aligned_alloc(64, bytes ? bytes : 64);
  if (p)
    std::memset(p, 0, bytes);
  return static_cast<float *>(p);
}

float *allocCache(size_t elements, int64_t elementBytes) {
  return allocFloats((elements * (size_t)elementBytes + 3) / 4);
}

kiln_memref_5d cacheMemref(float *data, int64_t layers, int64_t capacity,
                           int64_t width) {
  int64_t c = capacity, w = width;
  return {data, data, 0, {layers, 2, 1, c, w}, {2 * c * w, c * w, c * w, w, 1}};
}

void modelBuffers(const ModelFile &model, kiln_memref_1d &weights,
                  kiln_memref_1d &offsets) {
  weights = {const_cast<uint8_t *>(model.data),
             const_cast<uint8_t *>(model.data),
             0,
             {(int64_t)model.size},
             {1}};
  auto *offs = const_cast<int64_t *>(model.weightOffsets.data());
  offsets = {offs, offs, 0, {(int64_t)model.weightOffsets.size()}, {1}};
}

Session::Session(const ModelFile &model, const EntryPoints &entry)
    : model(model), entry(entry) {}

std::optional<Error> Session::init() {
  const kiln_model_info &info = entry.info;
  cacheSize =
      (size_t)info.num_layers * 2 * info.batch * info.capacity * info.kv_width;
  size_t cacheBytes = cacheSize * (size_t)info.kv_element_bytes;
  if (auto err = checkMemory(
          cacheBytes + (size_t)info.batch * info.vocab_size * sizeof(float),
          "the KV cache (" + std::to_string(info.capacity) + " positions)"))
    return err;
  cache.reset(allocCache(cacheSize, info.kv_element_bytes));
  logits.reset(allocFloats((size_t)info.batch * info.vocab_size));
  if (!cache || !logits)
    return Error{kExitInternal, "out of memory allocating the KV cache (" +
                                    std::to_string(cacheBytes) + " bytes)"};
  modelBuffers(model, weights, offsets);
  return std::nullopt;
}

double msSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now() - t0)
      .count();
}

std::optional<Error>
Session::generate(const std::vector<int32_t> &prompt, int64_t nPredict,
                  const SamplingParams &sampling, Rng &rng, bool ignoreEos,
                  bool keepLogits, const std::function<void(int32_t)> &onToken,
                  GenerationResult &result) {
  return generateAt(
      0, prompt, nPredict, sampling, rng, ignoreEos, keepLogits,
      [&](int32_t t) {
        onToken(t);
        return true;
      },
      result);
}

std::optional<Error> Session::generateAt(
    int64_t pos, const std::vector<int32_t> &prompt, int64_t nPredict,
    const SamplingParams &sampling, Rng &rng, bool ignoreEos, bool keepLogits,
    const std::function<bool(int32_t)> &onToken, GenerationResult &result) {
  const kiln_model_info &info = entry.info;
  int64_t capacity = info.capacity, vocab = info.vocab_size;
  int64_t n = prompt.size();
  if (n == 0 || pos < 0 || pos + n > capacity)
    return Error{kExitPrompt, "prompt of " + std::to_string(n) +
                                  " tokens at position " + std::to_string(pos) +
                                  " does not fit the context of " +
                                  std::to_string(capacity)};
  kiln_memref_5d cacheRef =
      cacheMemref(cache.get(), info.num_layers, capacity, info.kv_width);
  kiln_memref_2d logitsRef = rowMemref(logits.get(), vocab);
  std::vector<int32_t> ids = prompt;
  kiln_memref_2d tokens = rowMemref(ids.data(), n);

  auto t0 = std::chrono::steady_clock::now();
  entry.prefill(&weights, &offsets, &tokens, pos, &cacheRef, &logitsRef);
  result.prefillMs = msSince(t0);
  result.stop = StopReason::Length;
  if (nPredict == 0)
    return std::nullopt;

  // Nothing in the loop below allocates (test/Runtime/no-alloc.test): the
  // token list is reserved, the sampler's scratch is kept, and the compiled
  // @decode keeps its temporaries on the stack. --logits copies are the
  // exception the caller asked for.
  int64_t room = capacity - pos - n + 1;
  int64_t most = nPredict > 0 ? std::min(nPredict, room) : room;
  result.tokens.reserve(result.tokens.size() + most);
  // What the penalties read: the prompt, then each token chosen.
  ids.reserve(n + most);
  int32_t token;
  for (;;) {
    token = sample(logits.get(), vocab, sampling, rng, scratch, ids.data(),
                   (int64_t)ids.size());
    ids.push_back(token);
    if (result.tokens.empty())
      result.firstTokenMs = msSince(t0);
    if (keepLogits)
      result.logits.emplace_back(logits.get(), logits.get() + vocab);
    result.tokens.push_back(token);
    bool more = onToken(token);
    if (model.isEndToken(token) && !ignoreEos) {
      result.stop = StopReason::Eos;
      break;
    }
    if (!more || (nPredict > 0 && (int64_t)result.tokens.size() >= nPredict))
      break;
    int64_t p = pos + n + (int64_t)result.tokens.size() - 1;
    if (p >= capacity) {
      result.stop = StopReason::Context;
      break;
    }
    kiln_memref_2d one = rowMemref(&token, 1);
    auto t1 = std::chrono::steady_clock::now();
    entry.decode(&weights, &offsets, &one, p, &cacheRef, &logitsRef);
    result.decodeMs += msSince(t1);
  }
  return std::nullopt;
}

std::optional<Error> Session::score(const std::vector<int32_t> &tokens,
                                    int64_t stride, ScoreResult &r) {
  int64_t n = tokens.size(), vocab = entry.info.vocab_size;
  r.window = entry.info.capacity;
  // Windows overlap by at least one token, so every token after the first
  // has left context and is scored.
  int64_t maxStride = std::max<int64_t>(1, r.window - 1);
  r.stride = stride > 0 ? std::min(stride, maxStride)
                        : std::max<int64_t>(1, r.window / 2);
  if (n < 2)
    return Error{kExitPrompt,
                 "scoring needs at least 2 tokens, got " + std::to_string(n)};
  auto t0 = std::chrono::steady_clock::now();
  std::vector<float> logits;
  int64_t prevEnd = 0;
  for (int64_t begin = 0; begin < n; begin += r.stride) {
    int64_t end = std::min(begin + r.window, n);
    std::vector<int32_t> window(tokens.begin() + begin, tokens.begin() + end);
    if (auto err = forward(window, logits))
      return err;
    for (int64_t t = std::max(prevEnd, begin + 1); t < end; ++t) {
      const float *row = logits.data() + (t - 1 - begin) * vocab;
      double mx = row[0];
      for (int64_t j = 1; j < vocab; ++j)
        mx = std::max(mx, (double)row[j]);
      double sum = 0;
      for (int64_t j = 0; j < vocab; ++j)
        sum += std::exp((double)row[j] - mx);
      r.nll.push_back(mx + std::log(sum) - row[tokens[t]]);
    }
    prevEnd = end;
    if (end == n)
      break;
  }
  double total = 0;
  for (double x : r.nll)
    total += x;
  r.meanNll = total / r.nll.size();
  r.perplexity = std::exp(r.meanNll);
  r.ms = msSince(t0);
  return std::nullopt;
}

std::optional<Error> Session::forward(const std::vector<int32_t> &tokens,
                                      std::vector<float> &out) {
  int64_t n = tokens.size(), vocab = entry.info.vocab_size;
  out.assign((size_t)n * vocab, 0.0f);
  std::vector<int32_t> ids = tokens;
  kiln_memref_2d t = rowMemref(ids.data(), n);
  kiln_memref_3d l = {
      out.data(), out.data(), 0, {1, n, vocab}, {n * vocab, vocab, 1}};
  entry.forward(&weights, &offsets, &t, &l);
  return std::nullopt;
}

} // namespace kiln::rt

extern "C" void kiln_fatal_position(int64_t pos, int64_t rows,
                                    int64_t capacity) {
  std::fflush(stdout);
  std::fprintf(stderr,
               "kiln: error: internal: KV cache write at positions %lld..%lld "
               "past the capacity of %lld\n",
               (long long)pos, (long long)(pos + rows - 1),
               (long long)capacity);
  std::exit(kiln::rt::kExitInternal);
}
