//===- ConvertInternal.h - Pieces shared by the converters -------*- C++ -*-===//
#ifndef KILN_LIB_CONVERT_CONVERTINTERNAL_H
#define KILN_LIB_CONVERT_CONVERTINTERNAL_H

#include "kiln/Convert/Convert.h"
#include "kiln/rt/dtype.h"
#include "kiln_generated.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kiln::convert {

/// A conversion error: the message is what the user reads.
inline llvm::Error fail(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

/// A tensor inside a mapped input file; `shape` is row-major (outermost
/// first), `type` one of the weight types of kiln/rt/dtype.h, `data` has
/// been checked to lie inside the file and to hold `bytes` =
/// kiln::rt::storageBytes(type, shape).
struct TensorRef {
  std::string name;
  std::vector<int64_t> shape;
  fb::DType type{}; ///< F32
  const uint8_t *data = nullptr;
  uint64_t bytes = 0;
};

/// Elements of `shape`, or an error when a dimension is not positive or the
/// product overflows (or exceeds 2^40).
llvm::Expected<uint64_t> elementCount(llvm::ArrayRef<int64_t> shape,
                                      llvm::StringRef what);
/// kiln::rt::storageBytes with the message as an llvm::Error naming `what`.
llvm::Expected<uint64_t> storageBytes(fb::DType type,
                                      llvm::ArrayRef<int64_t> shape,
                                      llvm::StringRef what);

/// Where the graph builder reads a weight from: a tensor of the input,
/// stored as the weight's matrix or (`transposed`) as its transpose.
struct SourceTensor {
  const TensorRef *ref = nullptr;
  bool transposed = false;
};

/// Where the graph builder gets its weights, by canonical (GGUF) name:
/// token_embd.weight, blk.N.attn_q.weight, ..., row-major [out, in]. The
/// source owns the input it maps (the converted model keeps it alive until
/// its bytes are written).
class WeightSource {
public:
  virtual ~WeightSource() = default;
  virtual bool has(llvm::StringRef name) const = 0;
  /// The tensor for `name`, checked to be of a type the converter reads and
  /// to have exactly `shape` (once transposed); an error names the tensor.
  virtual llvm::Expected<SourceTensor> find(llvm::StringRef name,
                                            llvm::ArrayRef<int64_t> shape) = 0;
  /// Tensors of the input nothing read (and the source does not ignore).
  virtual std::vector<std::string> unread() const = 0;
  /// Elements of all tensors the input holds (their shapes are checked):
  /// an upper bound on what the output can hold, whatever the settings say.
  virtual uint64_t totalElements() const = 0;
};

/// One weight of the output file: its dtype, shape and place in the data
/// section, and how its bytes come from the input: elements [begin, begin +
/// count) of the source's matrix (transposed first when the source is
/// stored transposed), widened to f32 or copied as stored.
struct PlannedWeight {
  std::string name;
  std::vector<int64_t> shape;
  fb::DType dtype{};
  uint64_t offset = 0, size = 0;
  SourceTensor source;
  uint64_t begin = 0, count = 0;
  /// Added to every element (an f32 weight): Hugging Face Gemma's norm
  /// gains, which scale by 1 + w, are stored as 1 + w.
  float addend = 0.0f;
};

/// What ConvertedModel holds: the file's FlatBuffer (padded to the data
/// section) and the plan of its data section.
struct ConvertedModel::Impl {
  std::unique_ptr<WeightSource> source;
  std::vector<uint8_t> header; ///< [0, data_offset)
  std::vector<PlannedWeight> weights;
  uint64_t dataSize = 0;
};

enum class Family { Llama, GPT2, Gemma3 };

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
  /// RoPE scaling as the rope op's attributes (ropeScalingFactors): empty,
  /// or headDim / 2 divisors of the pairs' frequencies; cos/sin magnitude.
  std::vector<float> ropeFreqFactors;
  double ropeAttentionFactor = 1.0;
  bool qkvBias = false;
  /// Qwen3: an RMS norm over each head of q and of k before RoPE
  /// (attn_q_norm / attn_k_norm, head-width gains).
  bool qkNorm = false;
  /// Sliding-window attention: layer i's queries see the last
  /// layerWindows[i] positions (0: the whole context); empty: no layer has
  /// a window. Mistral windows every layer, Gemma 3 its local ones.
  std::vector<int64_t> layerWindows;
  /// Gemma 3: local layers rotate with base ropeLocalTheta and no scaling,
  /// embeddings are scaled by embedScale, attention by attnScale (0:
  /// 1/sqrt(head width)), and norm gains stored as w get normAddend added
  /// (Hugging Face's 1 + w; GGUF files hold 1 + w).
  double ropeLocalTheta = 10000.0;
  double embedScale = 1.0, attnScale = 0.0;
  float normAddend = 0.0f;
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
  fb::PreTokenizer preTokenizer = fb::PreTokenizer::GPT2;
  bool ignoreMerges = false;
  /// The chat template (Jinja), or empty.
  std::string chatTemplate;
  int64_t bos = -1, eos = -1, pad = -1;
  /// Tokens besides eos that end generation, as the input names them
  /// (GGUF's EOT/EOM ids, the rest of an eos_token_id list); the builder
  /// adds llama.cpp's end-of-generation tokens by text.
  std::vector<int64_t> endTokens;
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

/// RoPE scaling as a checkpoint describes it (Hugging Face rope_scaling,
/// GGUF rope.scaling.*).
struct RopeScaling {
  /// "none", "linear", "llama3" or "yarn".
  std::string type = "none";
  double factor = 1.0;
  /// llama3: wavelengths under original / high are kept, those over
  /// original / low divided by factor, those between blended.
  double lowFreqFactor = 0, highFreqFactor = 0;
  /// llama3, yarn: the context the model was trained with.
  double originalContext = 0;
  /// yarn: the correction range in rotations, whether its ends are rounded
  /// outwards, and the magnitude (absent: 0.1 ln(factor) + 1, or the ratio
  /// of mscale to mscale_all_dim's when both are given).
  double betaFast = 32, betaSlow = 1;
  bool truncate = true;
  std::optional<double> attentionFactor;
  double mscale = 0, mscaleAllDim = 0;
};

/// Sets hp.ropeFreqFactors and hp.ropeAttentionFactor for `scaling` (over
/// hp.headDim and hp.ropeTheta; `what` names the source in errors), times
/// any factors already there (GGUF's rope_freqs.weight).
llvm::Error applyRopeScaling(const RopeScaling &scaling, Hyperparameters &hp,
                             llvm::StringRef what);

/// Checks the hyperparameters, finds every weight the graph needs in
/// `weights`, decides each one's dtype (options.dtype and .quantize), size
/// and offset, and
/// builds the .kiln file's FlatBuffer; the weights' bytes are produced when
/// the result is written.
llvm::Expected<ConvertedModel>
buildKilnModel(const Hyperparameters &hp, std::unique_ptr<WeightSource> weights,
               TokenizerSpec tokenizer, const ConvertOptions &options);

/// Readers: the model of a GGUF file / a Hugging Face directory.
llvm::Expected<ConvertedModel> convertGGUF(llvm::StringRef path,
                                           const ConvertOptions &options);
llvm::Expected<ConvertedModel> convertHF(llvm::StringRef dir,
                                         const ConvertOptions &options);
llvm::Expected<std::string> describeGGUF(llvm::StringRef path);
llvm::Expected<std::string> describeHF(llvm::StringRef dir);
llvm::Expected<std::string> describeKiln(llvm::StringRef path);

} // namespace kiln::convert

#endif // KILN_LIB_CONVERT_CONVERTINTERNAL_H
