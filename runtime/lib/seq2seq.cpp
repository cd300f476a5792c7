//===- seq2seq.cpp - Encoder-decoder generation: encode, decode, beams ----===//

#include "runtime_internal.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>

namespace kiln::rt {

Seq2SeqSession::Seq2SeqSession(const ModelFile &model,
                               const EntryPoints &entry)
    : model(model), entry(entry) {}

std::optional<Error> Seq2SeqSession::init() {
  const kiln_model_info &info = entry.info;
  if (!entry.encode || !entry.seq2seqDecode || !entry.seq2seqForward)
    return Error{kExitInternal,
                 "the executable lacks the encoder-decoder entry points"};
  cacheElements = (size_t)info.num_layers * 2 * info.capacity * info.kv_width;
  crossFloats =
      (size_t)info.cross_layers * 2 * info.source_capacity * info.cross_width;
  size_t bytes = cacheElements * (size_t)info.kv_element_bytes +
                 crossFloats * sizeof(float);
  if (auto err = checkMemory(bytes, "the decoder and cross-attention caches"))
    return err;
  cross.reset(allocFloats(crossFloats));
  caches.emplace_back(allocCache(cacheElements, info.kv_element_bytes));
  if (!cross || !caches[0])
    return Error{kExitInternal, "out of memory allocating the caches (" +
                                    std::to_string(bytes) + " bytes)"};
  logits.assign(info.vocab_size, 0.0f);
  modelBuffers(model, weights, offsets);
  return std::nullopt;
}

kiln_memref_5d Seq2SeqSession::crossRef() const {
  return cacheMemref(cross.get(), entry.info.cross_layers,
                     entry.info.source_capacity, entry.info.cross_width);
}

std::optional<Error> Seq2SeqSession::encode(const std::vector<int32_t> &src,
                                            Seq2SeqResult &result) {
  const kiln_model_info &info = entry.info;
  int64_t n = src.size();
  if (n == 0)
    return Error{kExitPrompt, "the source is empty"};
  if (n > info.source_capacity)
    return Error{kExitPrompt, "source has " + std::to_string(n) +
                                  " tokens but the model reads at most " +
                                  std::to_string(info.source_capacity)};
  bool allPadding = model.sourcePadId >= 0;
  for (int32_t id : src) {
    if (id < 0 || id >= model.sourceVocabSize)
      return Error{kExitPrompt, "source token id " + std::to_string(id) +
                                    " is outside the source vocabulary of " +
                                    std::to_string(model.sourceVocabSize)};
    allPadding = allPadding && id == model.sourcePadId;
  }
  if (allPadding)
    return Error{kExitPrompt, "the source is all padding (id " +
                                  std::to_string(model.sourcePadId) + ")"};
  source = src;
  kiln_memref_2d s = rowMemref(source.data(), n);
  kiln_memref_5d x = crossRef();
  auto t0 = std::chrono::steady_clock::now();
  entry.encode(&weights, &offsets, &s, &x);
  result.encodeMs = msSince(t0);
  return std::nullopt;
}

void Seq2SeqSession::step(float *cacheData, int32_t token, int64_t pos,
                          float *logitsOut) {
  const kiln_model_info &info = entry.info;
  kiln_memref_2d one = rowMemref(&token, 1);
  kiln_memref_5d c = cacheMemref(cacheData, info.num_layers, info.capacity,
                                 info.kv_width);
  kiln_memref_2d s = rowMemref(source.data(), (int64_t)source.size());
  kiln_memref_5d x = crossRef();
  kiln_memref_2d l = rowMemref(logitsOut, info.vocab_size);
  entry.seq2seqDecode(&weights, &offsets, &one, pos, &c, &s, &x, &l);
}

std::optional<Error> Seq2SeqSession::generate(
    int64_t nPredict, const SamplingParams &sampling, Rng &rng, bool ignoreEos,
    bool keepLogits, const std::function<bool(int32_t)> &onToken,
    Seq2SeqResult &result) {
  if (source.empty())
    return Error{kExitInternal, "generate() before encode()"};
  int64_t capacity = entry.info.capacity, vocab = entry.info.vocab_size;
  result.stop = StopReason::Length;
  int32_t token = (int32_t)model.bosId;
  for (int64_t pos = 0; nPredict < 0 || pos < nPredict; ++pos) {
    if (pos >= capacity) {
      result.stop = StopReason::Context;
      break;
    }
    auto t0 = std::chrono::steady_clock::now();
    step(caches[0].get(), token, pos, logits.data());
    result.decodeMs += msSince(t0);
    ++result.decodeCalls;
    // The penalties read the target tokens chosen so far.
    token = sample(logits.data(), vocab, sampling, rng, scratch,
                   result.tokens.data(), (int64_t)result.tokens.size());
    if (keepLogits)
      result.logits.push_back(logits);
    result.tokens.push_back(token);
    bool more = onToken(token);
    if (model.isEndToken(token) && !ignoreEos) {
      result.stop = StopReason::Eos;
      break;
    }
    if (!more)
      break;
  }
  return std::nullopt;
}

namespace {
struct Beam {
  std::vector<int32_t> tokens;
  double logProb = 0;
  size_t cache = 0; ///< index into the session's caches
};
struct Candidate {
  double logProb;
  size_t beam;
  int32_t token;
};
} // namespace

std::optional<Error> Seq2SeqSession::beamSearch(int64_t nPredict,
                                                int64_t numBeams,
                                                double lengthPenalty,
                                                bool earlyStop,
                                                Seq2SeqResult &result) {
  if (source.empty())
    return Error{kExitInternal, "beamSearch() before encode()"};
  const kiln_model_info &info = entry.info;
  int64_t capacity = info.capacity, vocab = info.vocab_size;
  size_t K = numBeams;
  if (caches.size() < K)
    if (auto err = checkMemory((K - caches.size()) * cacheElements *
                                   (size_t)info.kv_element_bytes,
                               "the caches of " + std::to_string(K) + " beams"))
      return err;
  while (caches.size() < K) {
    caches.emplace_back(allocCache(cacheElements, info.kv_element_bytes));
    if (!caches.back())
      return Error{kExitInternal, "out of memory allocating " +
                                      std::to_string(K) + " beam caches"};
  }
  if (logits.size() < K * vocab)
    logits.assign(K * vocab, 0.0f);
  copyBytes = 0;
  auto bestFirst = [](const Hypothesis &a, const Hypothesis &b) {
    return a.score > b.score;
  };
  auto finalScore = [&](const std::vector<int32_t> &tokens, double lp) {
    return lp / std::pow((double)tokens.size(), lengthPenalty);
  };
  std::vector<Hypothesis> finished;
  std::vector<Beam> live(1);
  live[0].cache = 0;
  result.stop = StopReason::Length;
  std::vector<double> logSoftmax(vocab);
  std::vector<Candidate> candidates;
  std::vector<int32_t> order(vocab);
  for (int64_t pos = 0;; ++pos) {
    if (nPredict >= 0 && pos >= nPredict)
      break;
    if (pos >= capacity) {
      result.stop = StopReason::Context;
      break;
    }
    // One decode step per live beam, each over its own cache.
    candidates.clear();
    size_t keep = 2 * K;
    for (size_t b = 0; b < live.size(); ++b) {
      int32_t last =
          live[b].tokens.empty() ? (int32_t)model.bosId : live[b].tokens.back();
      float *row = logits.data() + b * vocab;
      auto t0 = std::chrono::steady_clock::now();
      step(caches[live[b].cache].get(), last, pos, row);
      result.decodeMs += msSince(t0);
      ++result.decodeCalls;
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < vocab; ++j)
        mx = std::max(mx, (double)row[j]);
      double sum = 0;
      for (int64_t j = 0; j < vocab; ++j)
        sum += std::exp((double)row[j] - mx);
      double lse = mx + std::log(sum);
      for (int64_t j = 0; j < vocab; ++j)
        logSoftmax[j] = (double)row[j] - lse;
      // This beam's best `keep` tokens (ties: lower id first).
      std::iota(order.begin(), order.end(), 0);
      size_t m = std::min<size_t>(keep, vocab);
      auto better = [&](int32_t a, int32_t c) {
        return logSoftmax[a] > logSoftmax[c] ||
               (logSoftmax[a] == logSoftmax[c] && a < c);
      };
      std::partial_sort(order.begin(), order.begin() + m, order.end(), better);
      for (size_t i = 0; i < m; ++i)
        candidates.push_back(
            {live[b].logProb + logSoftmax[order[i]], b, order[i]});
    }
    std::sort(candidates.begin(), candidates.end(),
              [](const Candidate &a, const Candidate &c) {
                if (a.logProb != c.logProb)
                  return a.logProb > c.logProb;
                if (a.beam != c.beam)
                  return a.beam < c.beam;
                return a.token < c.token;
              });
    std::vector<Beam> next;
    for (size_t r = 0; r < candidates.size() && r < keep && next.size() < K;
         ++r) {
      const Candidate &c = candidates[r];
      if (model.isEndToken(c.token)) {
        if (r < K) {
          Hypothesis h;
          h.tokens = live[c.beam].tokens;
          h.tokens.push_back(c.token);
          h.logProb = c.logProb;
          h.score = finalScore(h.tokens, h.logProb);
          finished.push_back(std::move(h));
        }
        continue;
      }
      Beam nb;
      nb.tokens = live[c.beam].tokens;
      nb.tokens.push_back(c.token);
      nb.logProb = c.logProb;
      nb.cache = c.beam; // parent, resolved to a buffer below
      next.push_back(std::move(nb));
    }
    // Keep the K best finished hypotheses.
    std::stable_sort(finished.begin(), finished.end(), bestFirst);
    if (finished.size() > K)
      finished.resize(K);
    // Done when K have finished and (early stop, or the best live beam
    // scored at its current length cannot beat the worst of them).
    bool done = next.empty();
    if (!done && finished.size() >= K)
      done = earlyStop || finalScore(next.front().tokens, next.front().logProb) <=
                              finished.back().score;
    if (done) {
      result.stop = StopReason::Eos;
      live.clear();
      break;
    }
    // Reorder caches: the first child of a parent takes over the parent's
    // buffer; a parent's further children get buffers of parents that have
    // no children left, with the filled rows [0, pos] of every layer copied.
    std::vector<int> children(live.size(), 0);
    for (const Beam &nb : next)
      ++children[nb.cache];
    std::vector<size_t> freeBuffers;
    std::vector<bool> used(caches.size(), false);
    for (size_t b = 0; b < live.size(); ++b)
      used[live[b].cache] = children[b] > 0;
    for (size_t i = 0; i < caches.size(); ++i)
      if (!used[i])
        freeBuffers.push_back(i);
    std::vector<bool> taken(live.size(), false);
    int64_t rows = pos + 1, width = info.kv_width, cap = info.capacity;
    for (Beam &nb : next) {
      size_t parent = nb.cache;
      size_t from = live[parent].cache;
      if (!taken[parent]) {
        taken[parent] = true;
        nb.cache = from;
        continue;
      }
      size_t to = freeBuffers.back();
      freeBuffers.pop_back();
      auto *src = reinterpret_cast<const char *>(caches[from].get());
      auto *dst = reinterpret_cast<char *>(caches[to].get());
      size_t elt = (size_t)info.kv_element_bytes;
      for (int64_t plane = 0; plane < info.num_layers * 2; ++plane) {
        std::memcpy(dst + plane * cap * width * elt,
                    src + plane * cap * width * elt, rows * width * elt);
        copyBytes += rows * width * elt;
      }
      nb.cache = to;
    }
    live = std::move(next);
  }
  // Beams still alive at the length or context limit are hypotheses too.
  for (Beam &b : live) {
    Hypothesis h;
    h.tokens = b.tokens;
    h.logProb = b.logProb;
    h.score = h.tokens.empty() ? -std::numeric_limits<double>::infinity()
                               : finalScore(h.tokens, h.logProb);
    finished.push_back(std::move(h));
  }
  std::stable_sort(finished.begin(), finished.end(), bestFirst);
  result.hypotheses = std::move(finished);
  if (!result.hypotheses.empty())
    result.tokens = result.hypotheses.front().tokens;
  return std::nullopt;
}

std::optional<Error>
Seq2SeqSession::forward(const std::vector<int32_t> &src,
                        const std::vector<int32_t> &target,
                        std::vector<float> &out) {
  int64_t n = src.size(), m = target.size(), vocab = entry.info.vocab_size;
  if (n == 0 || m == 0)
    return Error{kExitPrompt, "source and target must not be empty"};
  out.assign((size_t)m * vocab, 0.0f);
  std::vector<int32_t> s = src, t = target;
  kiln_memref_2d sr = rowMemref(s.data(), n);
  kiln_memref_2d tr = rowMemref(t.data(), m);
  kiln_memref_3d l = {
      out.data(), out.data(), 0, {1, m, vocab}, {m * vocab, vocab, 1}};
  entry.seq2seqForward(&weights, &offsets, &sr, &tr, &l);
  return std::nullopt;
}

} // namespace kiln::rt
