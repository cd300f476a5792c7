//===- sampler.cpp - Seeded sampling: greedy, temperature, top-k, top-p ---===//

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

int32_t sample(const float *logits, int64_t vocab, const SamplingParams &p,
               Rng &rng, SamplerScratch &scratch) {
  int64_t best = 0;
  for (int64_t i = 1; i < vocab; ++i)
    if (logits[i] > logits[best] || std::isnan(logits[best]))
      best = i;
  if (p.temperature <= 0.0)
    return (int32_t)best;

  // Candidates sorted by logit (ties: lower id first), truncated by top-k.
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

  std::vector<double> &prob = scratch.prob;
  prob.resize(k);
  double maxl = logits[idx[0]] / p.temperature, sum = 0.0;
  for (int64_t i = 0; i < k; ++i) {
    prob[i] = std::exp(logits[idx[i]] / p.temperature - maxl);
    sum += prob[i];
  }
  for (double &q : prob)
    q /= sum;
  // Nucleus: the smallest prefix whose mass reaches top_p (at least one).
  if (p.topP < 1.0) {
    double cum = 0.0;
    int64_t keep = 0;
    while (keep < k) {
      cum += prob[keep++];
      if (cum >= p.topP)
        break;
    }
    prob.resize(keep);
    idx.resize(keep);
    double s2 = std::accumulate(prob.begin(), prob.end(), 0.0);
    for (double &q : prob)
      q /= s2;
  }
  double r = rng.uniform(), cum = 0.0;
  for (size_t i = 0; i < prob.size(); ++i) {
    cum += prob[i];
    if (r < cum)
      return idx[i];
  }
  return idx.back();
}

} // namespace kiln::rt
