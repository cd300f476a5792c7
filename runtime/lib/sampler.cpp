//===- sampler.cpp - Seeded sampling: llama.cpp's sampler chain ----------===//
//
// Greedy, or llama.cpp's default chain (common/common.h) restricted to
// the samplers Kiln offers, in its order: penalties (repeat, frequency,
// presence over the last N tokens), top-k, top-p, min-p, temperature, then
// a draw from the softmax of the tokens left. Top-p and min-p read the
// probabilities before temperature, as llama.cpp's do.

#include "kiln/rt/session.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace kiln::rt {

static uint64_t splitmix64(uint64_t &x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

Rng::Rng(uint64_t seed) {
  for (uint64_t &w : s)
    w = splitmix64(seed);
}

static inline uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

uint64_t Rng::next() {
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double Rng::uniform() { return (next() >> 11) * 0x1.0p-53; }

int32_t sample(const float *logits, int64_t vocab, const SamplingParams &p,
               Rng &rng) {
  SamplerScratch scratch;
  return sample(logits, vocab, p, rng, scratch);
}

// llama.cpp's penalties sampler (llama_sampler_penalties_apply): for each
// distinct token among the last `repeatLastN` of `history` (all with -1),
// seen `count` times, its logit is divided by repeatPenalty if positive
// and multiplied by it otherwise, then lowered by count * frequencyPenalty
// + presencePenalty.
static const float *penalize(const float *logits, int64_t vocab,
                             const SamplingParams &p, SamplerScratch &scratch,
                             const int32_t *history, int64_t historyLen) {
  int64_t n = p.repeatLastN < 0 ? historyLen
                                : std::min<int64_t>(p.repeatLastN, historyLen);
  if (!p.penalizes() || n == 0)
    return logits;
  std::vector<std::pair<int32_t, int32_t>> &counts = scratch.counts;
  counts.clear();
  for (int64_t i = historyLen - n; i < historyLen; ++i)
    if (history[i] >= 0 && history[i] < vocab)
      counts.push_back({history[i], 1});
  std::sort(counts.begin(), counts.end());
  std::vector<float> &out = scratch.logits;
  out.assign(logits, logits + vocab);
  for (size_t i = 0; i < counts.size();) {
    size_t j = i;
    while (j < counts.size() && counts[j].first == counts[i].first)
      ++j;
    int32_t token = counts[i].first;
    float count = (float)(j - i);
    float &l = out[token];
    if (l <= 0)
      l *= (float)p.repeatPenalty;
    else
      l /= (float)p.repeatPenalty;
    l -= count * (float)p.frequencyPenalty + (float)p.presencePenalty;
    i = j;
  }
  return out.data();
}

int32_t sample(const float *rawLogits, int64_t vocab, const SamplingParams &p,
               Rng &rng, SamplerScratch &scratch, const int32_t *history,
               int64_t historyLen) {
  const float *logits =
      penalize(rawLogits, vocab, p, scratch, history, historyLen);
  int64_t best = 0;
  for (int64_t i = 1; i < vocab; ++i)
    if (logits[i] > logits[best] || std::isnan(logits[best]))
      best = i;
  // Top-k, top-p and min-p always keep the largest logit, so greedy is the
  // argmax whatever they are.
  if (p.temperature <= 0.0)
    return (int32_t)best;

  // top-k: candidates sorted by logit (ties: lower id first), truncated.
  // resize() keeps the capacity of earlier calls: no allocation after the
  // first token.
  std::vector<int32_t> &idx = scratch.idx;
  idx.resize(vocab);
  std::iota(idx.begin(), idx.end(), 0);
  auto byLogit = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  int64_t k = (p.topK > 0 && p.topK < vocab) ? p.topK : vocab;
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), byLogit);
  idx.resize(k);

  // Probabilities of the candidates before temperature, as llama.cpp's
  // top-p and min-p read them (its temperature sampler comes last).
  std::vector<double> &prob = scratch.prob;
  auto softmax = [&](double temperature) {
    prob.resize(idx.size());
    double maxl = logits[idx[0]] / temperature, sum = 0.0;
    for (size_t i = 0; i < idx.size(); ++i) {
      prob[i] = std::exp(logits[idx[i]] / temperature - maxl);
      sum += prob[i];
    }
    for (double &q : prob)
      q /= sum;
  };
  // top-p (nucleus): the smallest prefix whose mass reaches top_p (at least
  // one token).
  if (p.topP < 1.0) {
    softmax(1.0);
    double cum = 0.0;
    size_t keep = 0;
    while (keep < idx.size()) {
      cum += prob[keep++];
      if (cum >= p.topP)
        break;
    }
    idx.resize(keep);
  }
  // min-p: the tokens whose probability is at least min_p times the
  // largest, i.e. logit >= max logit + log(min_p) (llama.cpp compares
  // logits so).
  if (p.minP > 0.0) {
    float floor = logits[idx[0]] + (float)std::log(p.minP);
    size_t keep = 1;
    while (keep < idx.size() && logits[idx[keep]] >= floor)
      ++keep;
    idx.resize(keep);
  }
  // Temperature, then a draw from the softmax of what is left.
  softmax(p.temperature);
  double r = rng.uniform(), cum = 0.0;
  for (size_t i = 0; i < prob.size(); ++i) {
    cum += prob[i];
    if (r < cum)
      return idx[i];
  }
  return idx.back();
}

} // namespace kiln::rt
