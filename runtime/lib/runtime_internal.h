//===- runtime_internal.h - Kiln runtime internals -------------*- C++ -*-===//
//
// The pieces of the runtime behind kiln_main(): model file mapping and
// validation, tokenizers, sampling, flags, JSON and the generation loop.
// Nothing here includes LLVM or MLIR.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_INTERNAL_H
#define KILN_RUNTIME_INTERNAL_H

#include "kiln_runtime.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace kiln::rt {

/// Documented exit codes of generated executables.
enum ExitCode : int {
  kExitOk = 0,
  kExitUsage = 1,
  kExitModel = 2,
  kExitPrompt = 3,
  kExitInternal = 4,
};

/// An error with the exit code it maps to.
struct Error {
  int code;
  std::string message;
};

//===----------------------------------------------------------------------===//
// Model file
//===----------------------------------------------------------------------===//

enum class TokenizerKind { Bytes = 0, GPT2BPE = 1, SentencePieceBPE = 2 };

struct ModelFile {
  const uint8_t *data = nullptr; ///< the whole file (mmap'd or owned)
  size_t size = 0;
  std::vector<int64_t> weightOffsets; ///< byte offset of weight i's data
  uint64_t weightsFingerprint = 0;    ///< kiln_fingerprint_weight over all
  int64_t contextLength = 0, vocabSize = 0;
  int64_t bosId = -1, eosId = -1, padId = -1;
  bool addBos = false;
  /// Encoder-decoder models: two graph inputs (source, target ids).
  bool encoderDecoder = false;
  int64_t sourceLength = 0, sourceVocabSize = 0;
  /// pad_id of the graph's PaddingMaskOp (-1: none).
  int64_t sourcePadId = -1;
  std::string name;
  TokenizerKind tokenizer = TokenizerKind::Bytes;
  std::vector<std::string> pieces; ///< token pieces by id (may be empty)
  std::vector<float> scores;       ///< by id, or empty
  std::vector<std::string> merges; ///< "left right" by rank, or empty
  std::vector<int32_t> tokenTypes; ///< GGUF token types by id, or empty
  bool addSpacePrefix = true;      ///< SentencePiece: leading space

  ModelFile() = default;
  ModelFile(const ModelFile &) = delete;
  ModelFile &operator=(const ModelFile &) = delete;
  ~ModelFile();

private:
  friend std::optional<Error> loadModelFile(const std::string &, ModelFile &);
  friend std::optional<Error> loadModelBuffer(std::vector<uint8_t>,
                                              ModelFile &);
  void *mapBase = nullptr; ///< what loadModelFile mapped (munmap on exit)
  size_t mapLength = 0;
  std::vector<uint8_t> owned;
  void *alignedCopy = nullptr;
};

/// Refuses (kExitInternal, "out of memory: WHAT needs N MiB ...") an
/// allocation of `bytes` that the machine cannot back: more than the kernel
/// reports available (MemAvailable + SwapFree) or than the address-space
/// limit leaves. Caches are zeroed when allocated, so without this check a
/// cache too large for the machine would end with the OOM killer mid-way.
std::optional<Error> checkMemory(uint64_t bytes, const std::string &what);

/// Sizes the thread pool the compiled kernels run on (the OpenMP runtime's,
/// linked into every compiled model): `threads` workers, or with 0 one per
/// CPU this process may run on. Without a compiled model (unit tests) there
/// is no pool and this does nothing.
void setThreads(int64_t threads);

/// Tunes malloc so that the compiled code's per-call temporaries are
/// reused from the heap rather than mapped and unmapped on every call.
void reuseFreedMemory();

/// Maps `path` read-only and validates it (FlatBuffers verifier, then
/// semantic checks). Errors carry kExitModel.
std::optional<Error> loadModelFile(const std::string &path, ModelFile &out);
/// The same for bytes in memory (tests).
std::optional<Error> loadModelBuffer(std::vector<uint8_t> bytes,
                                     ModelFile &out);
/// Checks that the file is the one the executable was compiled for.
std::optional<Error> checkCompatible(const ModelFile &model,
                                     const kiln_model_info &info);

//===----------------------------------------------------------------------===//
// Tokenizer
//===----------------------------------------------------------------------===//

class Tokenizer {
public:
  /// Builds the lookup tables; the model file has been validated (its
  /// merges name tokens of the vocabulary).
  explicit Tokenizer(const ModelFile &model);
  /// Encodes text as the model was trained: raw bytes, GPT-2's byte-level
  /// BPE (pre-tokenizer regex, byte-to-unicode map, merges by rank) or
  /// SentencePiece-style BPE (space prefix, U+2581 for spaces, merges by
  /// rank or by score, byte fallback). Prepends BOS when the model asks for
  /// it. BPE vocabularies need valid UTF-8.
  std::optional<Error> encode(const std::string &text,
                              std::vector<int32_t> &ids) const;
  /// The bytes a token stands for in generated text (control tokens such as
  /// BOS and EOS stand for nothing).
  const std::string &piece(int32_t id) const;
  /// The text of a whole encoding: the pieces, less the space prefix
  /// SentencePiece added. decode(encode(s)) == s for valid UTF-8.
  std::string decode(const std::vector<int32_t> &ids) const;

private:
  struct Merge {
    double priority; ///< lower merges first
    int32_t result;
  };
  void bpe(const std::string &text, std::vector<int32_t> &ids) const;
  std::optional<Merge> findMerge(const std::string &text, size_t aBegin,
                                 int32_t a, size_t bEnd, int32_t b) const;
  void appendBytes(const std::string &bytes, std::vector<int32_t> &ids) const;

  const ModelFile &model;
  std::vector<std::string> decoded; ///< the bytes each id prints
  std::unordered_map<std::string, int32_t> byPiece;
  std::unordered_map<uint64_t, Merge> mergeByPair; ///< (left << 32 | right)
  int32_t byteToken[256];                          ///< -1: none
  int32_t unkId = -1;
};

/// GPT-2's printable character for byte b (bytes_to_unicode()), as UTF-8.
std::string gpt2ByteChar(int b);

/// Checks a model file's tokenizer: pieces, scores and types per token,
/// merges that name tokens, what each kind needs. Returns a message.
std::optional<std::string> validateTokenizer(const ModelFile &model);

/// Buffers output bytes so that a multi-byte UTF-8 character is never split
/// across writes.
class Utf8Stream {
public:
  /// Appends bytes; returns the prefix that ends on a character boundary.
  std::string push(const std::string &bytes);
  /// Whatever is left (an incomplete sequence at the end of generation).
  std::string flush();

private:
  std::string pending;
};

/// Escapes `s` as a JSON string (with quotes); invalid UTF-8 bytes become
/// U+FFFD.
std::string jsonString(const std::string &s);

/// Token ids as a JSON array: [1,2,3].
std::string idList(const std::vector<int32_t> &ids);

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

struct SamplingParams {
  double temperature = 0.8; ///< 0: greedy
  int64_t topK = 40;        ///< 0: off
  double topP = 0.95;       ///< 1: off
};

/// The sampler's working memory, kept from token to token so that a
/// generation loop allocates nothing after its first step.
struct SamplerScratch {
  std::vector<int32_t> idx;
  std::vector<double> prob;
};

/// Greedy (lowest index wins ties) or temperature / top-k / top-p sampling.
int32_t sample(const float *logits, int64_t vocab, const SamplingParams &p,
               Rng &rng, SamplerScratch &scratch);
int32_t sample(const float *logits, int64_t vocab, const SamplingParams &p,
               Rng &rng);

//===----------------------------------------------------------------------===//
// Flags
//===----------------------------------------------------------------------===//

enum class OutputFormat { Text, Json };

struct Options {
  std::string modelPath;
  std::optional<std::string> prompt;
  std::optional<std::vector<int32_t>> promptTokens;
  /// Encoder-decoder models: the source as ids (-p gives it as text).
  std::optional<std::vector<int32_t>> srcTokens;
  int64_t beams = 1;          ///< --beams: 1 = no beam search
  double lengthPenalty = 1.0; ///< --length-penalty
  bool earlyStop = false;     ///< --early-stop
  int64_t nPredict = 128;
  SamplingParams sampling;
  std::optional<uint64_t> seed;
  int64_t threads = 0; ///< -t: 0 = every CPU this process may run on
  bool ignoreEos = false;
  OutputFormat output = OutputFormat::Text;
  bool logits = false;
  bool forwardLogits = false;
  std::optional<std::string> perplexityFile; ///< --perplexity FILE
  std::optional<std::string> scoreText;      ///< --score TEXT
  int64_t stride = 0;                        ///< 0: half the context
  bool interactive = false;                  ///< -i
  bool stats = true;                         ///< the stats line on stderr
  bool help = false;
};

/// Parses argv (llama.cpp-style names). Errors carry kExitUsage.
std::optional<Error> parseOptions(int argc, char **argv, Options &out);
std::string helpText(const char *argv0);

//===----------------------------------------------------------------------===//
// Generation
//===----------------------------------------------------------------------===//

/// 64-byte aligned, zeroed floats (free with std::free); null when out of
/// memory.
float *allocFloats(size_t n);
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
EntryPoints linkedEntryPoints();

enum class StopReason { Eos, Length, Context };
const char *stopReasonName(StopReason r);

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
  /// Cache size in floats (tests).
  size_t cacheFloats() const { return cacheSize; }

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
  size_t cacheFloats = 0, crossFloats = 0, copyBytes = 0;
  std::vector<int32_t> source;
  kiln_memref_1d weights{}, offsets{};
};

/// main() for encoder-decoder executables (after the model is loaded).
int runSeq2Seq(const Options &opts, const ModelFile &model,
               const Tokenizer &tokenizer, const EntryPoints &entry);

/// The executable's main, with the entry points to call.
int run(int argc, char **argv, const EntryPoints &entry);

} // namespace kiln::rt

#endif // KILN_RUNTIME_INTERNAL_H
