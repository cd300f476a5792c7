//===- model.h - Kiln model files and tokenizers ----------------*- C++ -*-===//
//
// The model-file and tokenizer library (kiln_model), shared by the runtime
// and the converters: mapping and validating a .kiln file, the tokenizers it
// describes, and what prints their output (UTF-8 streaming, JSON strings).
// Nothing here includes LLVM, MLIR or FlatBuffers; the tokenizer kinds are
// the schema's (runtime/schema/kiln.fbs), whose enumerators kiln_generated.h
// defines.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RT_MODEL_H
#define KILN_RT_MODEL_H

#include "kiln_runtime.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace kiln::fb {
/// The schema's `TokenizerKind` (Bytes, GPT2BPE, SentencePieceBPE) and
/// `PreTokenizer` (GPT2, Llama3, Qwen2): declared here, defined with their
/// enumerators in kiln_generated.h.
enum class TokenizerKind : uint8_t;
enum class PreTokenizer : uint8_t;
} // namespace kiln::fb

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

/// The schema version writers write and readers read (runtime/schema/kiln.fbs).
constexpr uint32_t kModelSchemaVersion = 2;
/// The data section starts at a multiple of this (a page: it maps directly).
constexpr uint64_t kDataSectionAlignment = 4096;
/// Every weight's offset in the data section is a multiple of this.
constexpr uint64_t kWeightAlignment = 64;
/// How to turn a version 1 file into a version 2 one (the end of the message
/// readers refuse version 1 files with).
extern const char kUpgradeAdvice[];

/// Where the parts of a version 2 file lie, as checkModelLayout found them.
struct ModelLayout {
  uint32_t version = 0;
  uint64_t dataOffset = 0; ///< absolute file offset of the data section
  uint64_t dataSize = 0;   ///< bytes of the data section
  /// By weight, the offset of its bytes from the data section's start.
  std::vector<int64_t> weightOffsets;
};

/// Checks a model file's framing and weight table before anything trusts
/// it: the identifier, the FlatBuffers verifier (on the whole file first,
/// then on [0, data_offset)), the version (1: refused with kUpgradeAdvice;
/// newer than kModelSchemaVersion: refused), data_offset a multiple of 4096,
/// data_offset + data_size == fileSize, and every weight: a weight dtype,
/// its shape (storageBytes), offset a multiple of 64, offset + size within
/// the data section (without overflow), size == storageBytes(dtype, shape),
/// and no two weights overlapping. `file` holds (or maps) the whole file and
/// is 8-byte aligned; only the FlatBuffer's bytes are read. `reader` names
/// the program in the version messages ("runtime", "compiler"). Returns the
/// message of the first problem; fb::GetModel(file) is safe to use after
/// success.
std::optional<std::string> checkModelLayout(const uint8_t *file,
                                            uint64_t fileSize,
                                            const char *reader,
                                            ModelLayout &out);

/// What the kernel reports in /proc/meminfo (bytes).
struct MemoryInfo {
  bool known = false;      ///< /proc/meminfo was readable
  uint64_t available = 0;  ///< MemAvailable
  uint64_t swapFree = 0;   ///< SwapFree
};
MemoryInfo readMemoryInfo();

struct ModelFile {
  /// The data section's first byte (every weight lies at data +
  /// weightOffsets[i]): anonymous memory the section was read into, or the
  /// read-only mapping of the file (see `mapped`).
  const uint8_t *data = nullptr;
  size_t size = 0;                    ///< bytes of the data section
  std::vector<int64_t> weightOffsets; ///< weight i's bytes: data + offset
  uint64_t weightsFingerprint = 0;    ///< kiln_fingerprint_weight over all
  /// How loadModelFile placed the data section (reported by -v): the file's
  /// size, where the data section starts, whether it stayed a read-only
  /// file mapping (true) or was read into anonymous memory (false), and why.
  uint64_t fileSize = 0, dataOffset = 0;
  bool mapped = false;
  std::string placement;
  int64_t contextLength = 0, vocabSize = 0;
  int64_t bosId = -1, eosId = -1, padId = -1;
  /// Tokens besides eosId that end generation (Metadata.end_token_ids).
  std::vector<int64_t> endIds;
  /// Whether generation ends at `id`: the EOS token or another end token.
  bool isEndToken(int64_t id) const {
    return id >= 0 && (id == eosId || std::find(endIds.begin(), endIds.end(),
                                                id) != endIds.end());
  }
  bool addBos = false;
  /// Encoder-decoder models: two graph inputs (source, target ids).
  bool encoderDecoder = false;
  int64_t sourceLength = 0, sourceVocabSize = 0;
  /// pad_id of the graph's PaddingMaskOp (-1: none).
  int64_t sourcePadId = -1;
  std::string name;
  /// The schema's kind; value-initialised to fb::TokenizerKind::Bytes (0).
  fb::TokenizerKind tokenizer{};
  std::vector<std::string> pieces; ///< token pieces by id (may be empty)
  std::vector<float> scores;       ///< by id, or empty
  std::vector<std::string> merges; ///< "left right" by rank, or empty
  std::vector<int32_t> tokenTypes; ///< GGUF token types by id, or empty
  bool addSpacePrefix = true;      ///< SentencePiece: leading space
  /// GPT2BPE: the schema's pre-tokenizer (value-initialised: GPT2) and
  /// whether pre-tokens that are tokens skip the merges.
  fb::PreTokenizer preTokenizer{};
  bool ignoreMerges = false;
  /// The chat template the file carries (empty: none).
  std::string chatTemplate;

  ModelFile() = default;
  ModelFile(const ModelFile &) = delete;
  ModelFile &operator=(const ModelFile &) = delete;
  ~ModelFile();

private:
  friend std::optional<Error> loadModelFile(const std::string &, ModelFile &,
                                            uint64_t);
  friend std::optional<Error> loadModelBuffer(std::vector<uint8_t>,
                                              ModelFile &);
  void *mapBase = nullptr; ///< what loadModelFile mapped (munmap on exit)
  size_t mapLength = 0;
  void *alignedCopy = nullptr;
  /// Frees what an earlier load placed (a ModelFile may be loaded again).
  void releaseStorage();
};

/// Validates `path` (checkModelLayout, then the metadata and tokenizer)
/// before anything is allocated for its weights, then places the data
/// section: read into anonymous memory on transparent huge pages when the
/// kernel offers them and the section, plus `reserveBytes` (the caches the
/// session will allocate), fits comfortably in MemAvailable (decode streams
/// every weight once per token; huge pages measured +8%); otherwise the
/// file's read-only mapping (MAP_PRIVATE, no copy) is used as it is.
/// Errors carry kExitModel.
std::optional<Error> loadModelFile(const std::string &path, ModelFile &out,
                                   uint64_t reserveBytes = 0);
/// The same for a whole file's bytes in memory (tests, kiln-convert).
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
  /// it. BPE vocabularies need valid UTF-8. As llama.cpp's llama_tokenize:
  /// user-defined tokens written in the text become their ids, and so do
  /// control and unknown tokens (`<s>`, `<|im_end|>`, ...) with
  /// `parseSpecial`; the rest of the text is encoded around them.
  std::optional<Error> encode(const std::string &text,
                              std::vector<int32_t> &ids,
                              bool parseSpecial = false) const;
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
  /// Tokens matched in text before BPE, longest piece first.
  struct Special {
    int32_t id;
    bool userDefined; ///< matched even without parseSpecial
  };
  std::vector<Special> specials;
};

/// GPT-2's printable character for byte b (bytes_to_unicode()), as UTF-8.
std::string gpt2ByteChar(int b);

/// Checks a model file's tokenizer: pieces, scores and types per token,
/// merges that name tokens, what each kind needs. Returns a message.
std::optional<std::string> validateTokenizer(const ModelFile &model);

//===----------------------------------------------------------------------===//
// Printing tokenizer output
//===----------------------------------------------------------------------===//

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

/// `s` with each byte that is not part of a valid UTF-8 sequence (overlong
/// forms, surrogates and code points above U+10FFFF included) replaced by
/// U+FFFD, one per byte.
std::string replaceInvalidUtf8(const std::string &s);

/// `s` as a JSON string (with quotes; replaceInvalidUtf8 first).
std::string jsonString(const std::string &s);

/// Token ids as a JSON array: [1,2,3].
std::string idList(const std::vector<int32_t> &ids);

} // namespace kiln::rt

#endif // KILN_RT_MODEL_H
