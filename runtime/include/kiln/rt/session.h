//===- session.h - Kiln generation sessions ---------------------*- C++ -*-===//
//
// The session library (kiln_runtime_core): sampling, the compiled entry
// points, and the sessions that own a model's caches and run generation,
// scoring and the whole-sequence forward over them. The command-line driver
// (kiln/rt/driver.h) and the C API (kiln.h) are layers over it. Nothing here
// includes LLVM or MLIR.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RT_SESSION_H
#define KILN_RT_SESSION_H

#include "kiln/rt/model.h"
#include "kiln_runtime.h"

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kiln::rt {

//===----------------------------------------------------------------------===//
// Process setup
//===----------------------------------------------------------------------===//

/// Refuses (kExitInternal, "out of memory: WHAT needs N MiB ...") an
/// allocation of `bytes` that the machine cannot back: more than the kernel
/// reports available (MemAvailable + SwapFree) or than the address-space
/// limit leaves. Caches are zeroed when allocated, so without this check a
/// cache too large for the machine would end with the OOM killer mid-way.
std::optional<Error> checkMemory(uint64_t bytes, const std::string &what);

/// The bytes a session for `info` allocates besides the weights: the KV
/// cache and logits (decoder-only) or the decoder and cross-attention
/// caches (encoder-decoder). loadModelFile counts them when it decides
/// whether the weights are copied into memory or mapped.
uint64_t sessionMemoryBytes(const kiln_model_info &info);

/// Sizes the thread pool the compiled kernels run on (the OpenMP runtime's,
/// linked into every compiled model): `threads` workers, or with 0 one per
/// CPU this process may run on. Without a compiled model (unit tests) there
/// is no pool and this does nothing.
void setThreads(int64_t threads);

/// Tunes malloc so that the compiled code's per-call temporaries are
/// reused from the heap rather than mapped and unmapped on every call.
void reuseFreedMemory();

//===----------------------------------------------------------------------===//
// Sampling
//===----------------------------------------------------------------------===//

/// xoshiro256** seeded through splitmix64: the same numbers on every
/// platform for the same seed.
class Rng {
public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  /// Uniform in [0, 1) with 53 random bits.
  double uniform();

private:
  uint64_t s[4];
};

/// llama.cpp's sampling parameters, applied in the order of its default
/// sampler chain: penalties, top-k, top-p, min-p, temperature, then a draw
/// (sampler.cpp says how each is defined).
struct SamplingParams {
  double temperature = 0.8; ///< 0: greedy
  int64_t topK = 40;        ///< 0: off
  double topP = 0.95;       ///< 1: off
  double minP = 0.0;        ///< 0: off
  double repeatPenalty = 1.0;    ///< 1: off
  int64_t repeatLastN = 64;      ///< tokens penalized; 0: off, -1: all
  double presencePenalty = 0.0;  ///< 0: off
  double frequencyPenalty = 0.0; ///< 0: off

  bool penalizes() const {
    return repeatLastN != 0 &&
           (repeatPenalty != 1.0 || presencePenalty != 0.0 ||
            frequencyPenalty != 0.0);
  }
};

/// The sampler's working memory, kept from token to token so that a
/// generation loop allocates nothing after its first step.
struct SamplerScratch {
  std::vector<int32_t> idx;
  std::vector<double> prob;
  std::vector<float> logits;                       ///< penalized copy
  std::vector<std::pair<int32_t, int32_t>> counts; ///< (token, count)
};

/// Chooses the next token from `logits` (`vocab` of them). `history` (the
/// prompt and the tokens generated so far, oldest first; `historyLen` of
/// them) is what the penalties read. Greedy (temperature 0: the largest
/// penalized logit, lowest index on ties) or the chain of SamplingParams.
int32_t sample(const float *logits, int64_t vocab, const SamplingParams &p,
               Rng &rng, SamplerScratch &scratch,
               const int32_t *history = nullptr, int64_t historyLen = 0);
int32_t sample(const float *logits, int64_t vocab, const SamplingParams &p,
               Rng &rng);

//===----------------------------------------------------------------------===//
// Entry points
//===----------------------------------------------------------------------===//

/// The compiled entry points (function pointers so tests can substitute a
/// model written in C++).
struct EntryPoints {
  decltype(&_mlir_ciface_forward) forward = nullptr;
  decltype(&_mlir_ciface_prefill) prefill = nullptr;
  decltype(&_mlir_ciface_decode) decode = nullptr;
  /// Encoder-decoder models (info.kind == KILN_MODEL_ENCODER_DECODER).
  decltype(&_mlir_ciface_encode) encode = nullptr;
  kiln_seq2seq_forward_fn seq2seqForward = nullptr;
  kiln_seq2seq_step_fn seq2seqPrefill = nullptr, seq2seqDecode = nullptr;
  kiln_model_info info{};
};

/// The entry points the compiler's object defines (weak references: an
/// encoder-decoder object has no decoder-only signatures and vice versa).
/// Defined in the archives that executables and shared libraries link
/// (entry_points.cpp), not in kiln_runtime_core.
EntryPoints linkedEntryPoints();

//===----------------------------------------------------------------------===//
// Decoder-only models
//===----------------------------------------------------------------------===//

/// Why generation ended: the end-of-sequence token, the token budget, a
/// full context, or a stop string (StopMatcher).
enum class StopReason { Eos, Length, Context, Stop };
const char *stopReasonName(StopReason r);

/// Generated text checked against stop strings (`--stop`), as llama.cpp's
/// server and OpenAI's API treat them: generation ends at the first
/// occurrence of any of them, and the text returned ends just before it.
/// Bytes that could still be the start of a stop string are held back
/// until the next piece decides.
class StopMatcher {
public:
  explicit StopMatcher(std::vector<std::string> stops)
      : stops(std::move(stops)) {}
  /// Appends generated bytes; returns those that can be emitted now.
  std::string push(const std::string &bytes);
  /// The bytes held back, at the end of generation (none after a stop).
  std::string flush();
  /// Whether a stop string has appeared.
  bool stopped() const { return hit; }

private:
  std::vector<std::string> stops;
  std::string pending;
  bool hit = false;
};

struct GenerationResult {
  std::vector<int32_t> tokens;
  std::vector<std::vector<float>> logits; ///< with keepLogits
  StopReason stop = StopReason::Length;
  double prefillMs = 0, decodeMs = 0;
  double firstTokenMs = 0; ///< prefill + choosing the first token
};

/// Teacher-forced scoring of a text longer than the context: windows of up
/// to `window` tokens advance by `stride`; each window scores only the
/// tokens the previous windows did not (as in Hugging Face's perplexity
/// recipe), so every token after the first is scored exactly once, with as
/// much left context as the window allows.
struct ScoreResult {
  std::vector<double> nll; ///< per scored token, nats
  double meanNll = 0, perplexity = 0;
  int64_t window = 0, stride = 0;
  double ms = 0;
};

/// Buffers allocated once, before the first token.
class Session {
public:
  Session(const ModelFile &model, const EntryPoints &entry);
  std::optional<Error> init();
  /// prefill(prompt) then decode until EOS, `nPredict` tokens (-1: no
  /// limit) or the context is full. `onToken` is called as each token is
  /// chosen.
  std::optional<Error> generate(const std::vector<int32_t> &prompt,
                                int64_t nPredict,
                                const SamplingParams &sampling, Rng &rng,
                                bool ignoreEos, bool keepLogits,
                                const std::function<void(int32_t)> &onToken,
                                GenerationResult &result);
  /// The whole-sequence form over `tokens`: logits of every position.
  std::optional<Error> forward(const std::vector<int32_t> &tokens,
                               std::vector<float> &logits);
  /// Scores `tokens` with the whole-sequence form (see ScoreResult).
  std::optional<Error> score(const std::vector<int32_t> &tokens, int64_t stride,
                             ScoreResult &result);
  /// Keeps the cache between calls: prefill `tokens` at `pos` (interactive
  /// mode continues a conversation without recomputing it).
  std::optional<Error>
  generateAt(int64_t pos, const std::vector<int32_t> &tokens, int64_t nPredict,
             const SamplingParams &sampling, Rng &rng, bool ignoreEos,
             bool keepLogits, const std::function<bool(int32_t)> &onToken,
             GenerationResult &result);
  /// Cache size in elements (of kiln_model_info::kv_element_bytes; tests).
  size_t cacheElements() const { return cacheSize; }

private:
  const ModelFile &model;
  EntryPoints entry;
  struct Free {
    void operator()(float *p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> cache, logits;
  size_t cacheSize = 0;
  SamplerScratch scratch;
  kiln_memref_1d weights{}, offsets{};
};

//===----------------------------------------------------------------------===//
// Encoder-decoder models
//===----------------------------------------------------------------------===//

/// One finished beam-search hypothesis.
struct Hypothesis {
  std::vector<int32_t> tokens; ///< generated ids (EOS included if reached)
  double logProb = 0;          ///< sum of the tokens' log-probabilities
  double score = 0;            ///< logProb / tokens.size() ^ length_penalty
};

struct Seq2SeqResult {
  std::vector<int32_t> tokens;            ///< the output (best hypothesis)
  std::vector<std::vector<float>> logits; ///< with keepLogits (not beams)
  std::vector<Hypothesis> hypotheses;     ///< beam search, best first
  StopReason stop = StopReason::Length;
  double encodeMs = 0, decodeMs = 0;
  int64_t decodeCalls = 0;
};

/// encode(source) once, then decode over the target from bos_token_id.
/// Self-attention caches are allocated per beam; the cross state once.
class Seq2SeqSession {
public:
  Seq2SeqSession(const ModelFile &model, const EntryPoints &entry);
  std::optional<Error> init();
  /// Runs the encoder over `source` (validated: non-empty, within the
  /// source length and vocabulary, not all padding).
  std::optional<Error> encode(const std::vector<int32_t> &source,
                              Seq2SeqResult &result);
  /// Greedy or sampled decoding after encode(); `onToken` returns false
  /// to stop.
  std::optional<Error> generate(int64_t nPredict,
                                const SamplingParams &sampling, Rng &rng,
                                bool ignoreEos, bool keepLogits,
                                const std::function<bool(int32_t)> &onToken,
                                Seq2SeqResult &result);
  /// Beam search after encode(): `beams` live hypotheses; each step keeps
  /// the 2 * beams best continuations by total log-probability; one ending
  /// in EOS among the best `beams` finishes, scored logProb / length^alpha
  /// (length counts the generated tokens, EOS included), and the `beams`
  /// best finished ones are kept; the others (up to `beams`) live on. Ends
  /// once `beams` have finished and either `earlyStop` or the best live
  /// beam, scored at its current length, is no better than the worst
  /// finished one; or after `nPredict` tokens or when the context is full
  /// (live beams then count as hypotheses). The caches of beams are
  /// reordered by swapping buffers; only a beam that forks copies the
  /// filled rows.
  std::optional<Error> beamSearch(int64_t nPredict, int64_t beams,
                                  double lengthPenalty, bool earlyStop,
                                  Seq2SeqResult &result);
  /// Teacher forcing: logits [target.size(), vocab] of @forward.
  std::optional<Error> forward(const std::vector<int32_t> &source,
                               const std::vector<int32_t> &target,
                               std::vector<float> &logits);
  /// Bytes copied between beam caches by the last beamSearch (tests).
  size_t beamCopyBytes() const { return copyBytes; }

private:
  struct Free {
    void operator()(float *p) const { std::free(p); }
  };
  using Buffer = std::unique_ptr<float, Free>;
  kiln_memref_5d crossRef() const;
  void step(float *cacheData, int32_t token, int64_t pos, float *logitsOut);

  const ModelFile &model;
  EntryPoints entry;
  Buffer cross;
  std::vector<Buffer> caches; ///< one per beam (grown on demand)
  std::vector<float> logits;
  SamplerScratch scratch;
  /// The decoder cache in elements (kv_element_bytes each), the cross
  /// state in floats.
  size_t cacheElements = 0, crossFloats = 0, copyBytes = 0;
  std::vector<int32_t> source;
  kiln_memref_1d weights{}, offsets{};
};

} // namespace kiln::rt

#endif // KILN_RT_SESSION_H
