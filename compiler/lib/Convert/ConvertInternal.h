//===- ConvertInternal.h - Pieces shared by the converters -------*- C++ -*-===//
#ifndef KILN_LIB_CONVERT_CONVERTINTERNAL_H
#define KILN_LIB_CONVERT_CONVERTINTERNAL_H

#include "kiln/Convert/Convert.h"
#include "kiln_generated.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::convert {

/// A conversion error: the message is what the user reads.
inline llvm::Error fail(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

/// Element types the readers dequantize to f32.
enum class TensorType { F32, F16, BF16, Q8_0 };
const char *tensorTypeName(TensorType t);

/// A tensor inside a mapped input file; `shape` is row-major (outermost
/// first), `data` has been checked to lie inside the file.
struct TensorRef {
  std::string name;
  std::vector<int64_t> shape;
  TensorType type = TensorType::F32;
  const uint8_t *data = nullptr;
  uint64_t bytes = 0;
};

/// Elements of `shape`, or an error when a dimension is not positive or the
/// product overflows (or exceeds 2^40).
llvm::Expected<uint64_t> elementCount(llvm::ArrayRef<int64_t> shape,
                                      llvm::StringRef what);
/// Bytes `elements` of `type` take (Q8_0: blocks of 32).
llvm::Expected<uint64_t> storageBytes(TensorType type, uint64_t elements,
                                      llvm::StringRef what);
/// The tensor's values as f32 (row-major), `transpose` swapping the two
/// dimensions of a matrix.
std::vector<float> toF32(const TensorRef &t, bool transpose = false);
float halfToFloat(uint16_t h);

/// Where the graph builder gets its weights, by canonical (GGUF) name:
/// token_embd.weight, blk.N.attn_q.weight, ..., row-major [out, in].
class WeightSource {
public:
  virtual ~WeightSource() = default;
  virtual bool has(llvm::StringRef name) const = 0;
  /// The tensor as f32 with exactly `shape`; an error names the tensor.
  virtual llvm::Expected<std::vector<float>>
  get(llvm::StringRef name, llvm::ArrayRef<int64_t> shape) = 0;
  /// Tensors of the input nothing read (and the source does not ignore).
  virtual std::vector<std::string> unread() const = 0;
  /// Elements of all tensors the input holds (their shapes are checked):
  /// an upper bound on what the output can hold, whatever the settings say.
  virtual uint64_t totalElements() const = 0;
};

enum class Family { Llama, GPT2 };

/// The shape of a decoder-only model, whatever file it came from.
struct Hyperparameters {
  Family family = Family::Llama;
  std::string name;
  int64_t dim = 0, layers = 0, heads = 0, kvHeads = 0, headDim = 0, ffn = 0;
  int64_t vocab = 0, context = 0;
  double eps = 1e-5;
  /// Llama family.
  double ropeTheta = 10000.0;
  fb::RopeStyle ropeStyle = fb::RopeStyle::RotateHalf;
  bool qkvBias = false;
  /// GPT-2 family: rows of the learned position table (>= context).
  int64_t positions = 0;
  fb::Activation activation = fb::Activation::GELUTanh;
  /// The LM head reads the token embedding.
  bool tied = false;
};

struct TokenizerSpec {
  fb::TokenizerKind kind = fb::TokenizerKind::Bytes;
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<std::string> merges;
  std::vector<int32_t> types;
  bool addSpacePrefix = true;
  int64_t bos = -1, eos = -1, pad = -1;
  bool addBos = false;
};

/// GGUF token types (also used for tokenizer.json's added tokens).
enum TokenType : int32_t {
  kTokenNormal = 1,
  kTokenUnknown = 2,
  kTokenControl = 3,
  kTokenUserDefined = 4,
  kTokenUnused = 5,
  kTokenByte = 6,
};

/// Checks the hyperparameters, reads every weight the graph needs from
/// `weights` and writes the .kiln file's bytes.
llvm::Expected<ModelBytes>
buildKilnModel(const Hyperparameters &hp, WeightSource &weights,
               const TokenizerSpec &tokenizer);

/// Readers: the model of a GGUF file / a Hugging Face directory.
llvm::Expected<ModelBytes> convertGGUF(llvm::StringRef path,
                                                 int64_t contextCap,
                                                 const std::string &name);
llvm::Expected<ModelBytes> convertHF(llvm::StringRef dir,
                                               int64_t contextCap,
                                               const std::string &name);
llvm::Expected<std::string> describeGGUF(llvm::StringRef path);
llvm::Expected<std::string> describeHF(llvm::StringRef dir);
llvm::Expected<std::string> describeKiln(llvm::StringRef path);

} // namespace kiln::convert

#endif // KILN_LIB_CONVERT_CONVERTINTERNAL_H
