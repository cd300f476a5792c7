//===- GGUF.cpp - GGUF files (llama.cpp's format) -> .kiln ----------------===//
//
// GGUF v2/v3: "GGUF", version, tensor count, key/value count, the key/value
// pairs, the tensor infos (name, dims innermost first, type, offset), then
// the tensor data at general.alignment. Every count, length and offset is
// checked against the file before it is used.
//
//===----------------------------------------------------------------------===//

#include "ConvertInternal.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstring>
#include <map>

using namespace llvm;

namespace kiln::convert {
namespace {

enum GGUFType : uint32_t {
  kU8 = 0, kI8, kU16, kI16, kU32, kI32, kF32, kBool, kString, kArray, kU64,
  kI64, kF64, kTypeCount
};

const char *ggufTypeName(uint32_t t) {
  static const char *names[] = {"uint8",  "int8",   "uint16", "int16",
                                "uint32", "int32",  "float32", "bool",
                                "string", "array",  "uint64", "int64",
                                "float64"};
  return t < kTypeCount ? names[t] : "unknown";
}

/// ggml's tensor type names, for messages.
std::string ggmlTypeName(uint32_t t) {
  static const std::map<uint32_t, const char *> names = {
      {0, "F32"},      {1, "F16"},     {2, "Q4_0"},    {3, "Q4_1"},
      {6, "Q5_0"},     {7, "Q5_1"},    {8, "Q8_0"},    {9, "Q8_1"},
      {10, "Q2_K"},    {11, "Q3_K"},   {12, "Q4_K"},   {13, "Q5_K"},
      {14, "Q6_K"},    {15, "Q8_K"},   {16, "IQ2_XXS"}, {17, "IQ2_XS"},
      {18, "IQ3_XXS"}, {19, "IQ1_S"},  {20, "IQ4_NL"}, {21, "IQ3_S"},
      {22, "IQ2_S"},   {23, "IQ4_XS"}, {24, "I8"},     {25, "I16"},
      {26, "I32"},     {27, "I64"},    {28, "F64"},    {29, "IQ1_M"},
      {30, "BF16"},    {34, "TQ1_0"},  {35, "TQ2_0"},  {39, "MXFP4"}};
  auto it = names.find(t);
  return it != names.end() ? it->second : "unknown type " + std::to_string(t);
}

/// The .kiln weight type of a GGML tensor type kiln-convert reads: the
/// float types and the block types llama-quantize's common recipes write
/// (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K_M and Q5_K_M's Q4_K, Q5_K, Q6_K),
/// whose blocks a .kiln file stores bit for bit.
std::optional<fb::DType> weightTypeOf(uint32_t ggmlType) {
  switch (ggmlType) {
  case 0:
    return fb::DType::F32;
  case 1:
    return fb::DType::F16;
  case 2:
    return fb::DType::Q4_0;
  case 3:
    return fb::DType::Q4_1;
  case 6:
    return fb::DType::Q5_0;
  case 7:
    return fb::DType::Q5_1;
  case 8:
    return fb::DType::Q8_0;
  case 12:
    return fb::DType::Q4_K;
  case 13:
    return fb::DType::Q5_K;
  case 14:
    return fb::DType::Q6_K;
  case 30:
    return fb::DType::BF16;
  }
  return std::nullopt;
}

/// For messages: the types weightTypeOf knows.
constexpr const char *kReadTypes =
    "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K";

struct Value {
  uint32_t type = 0;
  int64_t i = 0;  ///< signed and unsigned integers (uint64 above 2^63: error)
  double f = 0;   ///< floats; integers too
  bool b = false;
  std::string s;
  uint32_t arrayType = 0;
  std::vector<std::string> strings; ///< array of strings
  std::vector<double> numbers;      ///< array of numbers or bools
  bool isInteger() const { return type <= kI32 || type == kU64 || type == kI64; }
  bool isNumber() const {
    return isInteger() || type == kF32 || type == kF64;
  }
};

struct Tensor {
  TensorRef ref;
  uint32_t ggmlType = 0;
  bool supported = false;
};

class GGUFFile {
public:
  Error open(StringRef path);
  const Value *find(StringRef key) const {
    auto it = kv.find(key);
    return it == kv.end() ? nullptr : &it->second;
  }
  Expected<std::string> string(StringRef key, bool required = true,
                               StringRef fallback = "") const;
  Expected<int64_t> integer(StringRef key, bool required = true,
                            int64_t fallback = 0) const;
  Expected<double> number(StringRef key, bool required = true,
                          double fallback = 0) const;
  Expected<bool> boolean(StringRef key, bool fallback) const;

  std::string path;
  uint32_t version = 0;
  uint64_t alignment = 32;
  StringMap<Value> kv;
  std::vector<std::string> keys; ///< in file order
  std::vector<Tensor> tensors;
  StringMap<size_t> tensorIndex;

private:
  std::unique_ptr<MemoryBuffer> buffer;
};

/// A bounds-checked reader over the file's bytes.
class Cursor {
public:
  Cursor(const uint8_t *begin, const uint8_t *end) : p(begin), begin(begin),
                                                      end(end) {}
  uint64_t offset() const { return p - begin; }
  uint64_t left() const { return end - p; }
  bool read(void *out, size_t n) {
    if (left() < n)
      return false;
    std::memcpy(out, p, n);
    p += n;
    return true;
  }
  template <typename T> bool get(T &v) { return read(&v, sizeof v); }
  bool str(std::string &s) {
    uint64_t n;
    if (!get(n) || n > left())
      return false;
    s.assign(reinterpret_cast<const char *>(p), n);
    p += n;
    return true;
  }

private:
  const uint8_t *p, *begin, *end;
};

Error truncated(const Cursor &c, const Twine &what) {
  return fail("the GGUF file is truncated or corrupt: " + what +
              " at byte " + Twine(c.offset()) + " does not fit in the file");
}

bool readScalar(Cursor &c, uint32_t type, Value &v) {
  v.type = type;
  switch (type) {
#define INT_CASE(tag, ctype)                                                   \
  case tag: {                                                                  \
    ctype x;                                                                   \
    if (!c.get(x))                                                             \
      return false;                                                            \
    v.i = (int64_t)x;                                                          \
    v.f = (double)x;                                                           \
    return true;                                                               \
  }
    INT_CASE(kU8, uint8_t)
    INT_CASE(kI8, int8_t)
    INT_CASE(kU16, uint16_t)
    INT_CASE(kI16, int16_t)
    INT_CASE(kU32, uint32_t)
    INT_CASE(kI32, int32_t)
    INT_CASE(kI64, int64_t)
#undef INT_CASE
  case kU64: {
    uint64_t x;
    if (!c.get(x))
      return false;
    v.i = x > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)x;
    v.f = (double)x;
    return true;
  }
  case kF32: {
    float x;
    if (!c.get(x))
      return false;
    v.f = x;
    return true;
  }
  case kF64:
    return c.get(v.f);
  case kBool: {
    uint8_t x;
    if (!c.get(x))
      return false;
    v.b = x != 0;
    v.i = x != 0;
    v.f = v.i;
    return true;
  }
  case kString:
    return c.str(v.s);
  }
  return false;
}

size_t scalarSize(uint32_t type) {
  static const size_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 8, 0, 8, 8, 8};
  return type < kTypeCount ? sizes[type] : 0;
}

Error GGUFFile::open(StringRef p) {
  path = p.str();
  auto buf = MemoryBuffer::getFile(p, /*IsText=*/false,
                                   /*RequiresNullTerminator=*/false);
  if (!buf)
    return fail("cannot read '" + p + "': " + buf.getError().message());
  buffer = std::move(*buf);
  const uint8_t *data =
      reinterpret_cast<const uint8_t *>(buffer->getBufferStart());
  Cursor c(data, data + buffer->getBufferSize());
  char magic[4];
  if (!c.read(magic, 4) || std::memcmp(magic, "GGUF", 4) != 0)
    return fail("'" + p + "' is not a GGUF file (no \"GGUF\" magic)");
  uint64_t nTensors, nKV;
  if (!c.get(version))
    return truncated(c, "the version");
  if (version < 2 || version > 3)
    return fail("GGUF version " + Twine(version) +
                " is not supported (supported: 2, 3)");
  if (!c.get(nTensors) || !c.get(nKV))
    return truncated(c, "the header");
  // Each pair takes at least 12 bytes, each tensor info at least 28.
  if (nKV > c.left() / 12 || nTensors > c.left() / 28)
    return fail("the GGUF file is truncated or corrupt: its header claims " +
                Twine(nKV) + " keys and " + Twine(nTensors) +
                " tensors, more than its " + Twine(buffer->getBufferSize()) +
                " bytes can hold");
  for (uint64_t k = 0; k < nKV; ++k) {
    std::string key;
    uint32_t type;
    if (!c.str(key))
      return truncated(c, "key " + Twine(k));
    if (!c.get(type))
      return truncated(c, "the type of '" + key + "'");
    Value v;
    if (type == kArray) {
      uint64_t count;
      if (!c.get(v.arrayType) || !c.get(count))
        return truncated(c, "array '" + key + "'");
      v.type = kArray;
      if (v.arrayType == kArray || v.arrayType >= kTypeCount)
        return fail("GGUF key '" + key + "' is an array of " +
                    ggufTypeName(v.arrayType) + ", which is not supported");
      if (count > c.left() / scalarSize(v.arrayType))
        return truncated(c, "array '" + key + "' of " + Twine(count) +
                                " elements");
      if (v.arrayType == kString)
        v.strings.reserve(count);
      else
        v.numbers.reserve(count);
      for (uint64_t e = 0; e < count; ++e) {
        Value item;
        if (!readScalar(c, v.arrayType, item))
          return truncated(c, "element " + Twine(e) + " of '" + key + "'");
        if (v.arrayType == kString)
          v.strings.push_back(std::move(item.s));
        else
          v.numbers.push_back(item.f);
      }
    } else if (type >= kTypeCount) {
      return fail("GGUF key '" + key + "' has unknown value type " +
                  Twine(type));
    } else if (!readScalar(c, type, v)) {
      return truncated(c, "the value of '" + key + "'");
    }
    if (kv.count(key))
      return fail("GGUF key '" + key + "' appears twice");
    keys.push_back(key);
    kv[key] = std::move(v);
  }
  if (const Value *a = find("general.alignment")) {
    if (!a->isInteger() || a->i <= 0 || a->i > 65536 || (a->i & (a->i - 1)))
      return fail("general.alignment must be a power of two, got " +
                  Twine(a->i));
    alignment = a->i;
  }
  std::vector<uint64_t> offsets;
  for (uint64_t t = 0; t < nTensors; ++t) {
    Tensor tensor;
    uint32_t nDims;
    if (!c.str(tensor.ref.name))
      return truncated(c, "tensor info " + Twine(t));
    const std::string &name = tensor.ref.name;
    if (!c.get(nDims))
      return truncated(c, "tensor '" + name + "'");
    if (nDims == 0 || nDims > 4)
      return fail("tensor '" + name + "' has " + Twine(nDims) +
                  " dimensions (1 to 4 are valid)");
    std::vector<int64_t> dims(nDims);
    for (uint32_t d = 0; d < nDims; ++d) {
      uint64_t n;
      if (!c.get(n))
        return truncated(c, "tensor '" + name + "'");
      if (n == 0 || n > (uint64_t(1) << 40))
        return fail("tensor '" + name + "' has an invalid dimension " +
                    Twine(n));
      dims[nDims - 1 - d] = (int64_t)n; // ggml: innermost first
    }
    uint64_t offset;
    if (!c.get(tensor.ggmlType) || !c.get(offset))
      return truncated(c, "tensor '" + name + "'");
    tensor.ref.shape = dims;
    if (std::optional<fb::DType> type = weightTypeOf(tensor.ggmlType)) {
      tensor.ref.type = *type;
      tensor.supported = true;
    }
    if (tensorIndex.count(name))
      return fail("tensor '" + name + "' appears twice in the GGUF file");
    tensorIndex[name] = tensors.size();
    tensors.push_back(std::move(tensor));
    offsets.push_back(offset);
  }
  uint64_t dataStart = (c.offset() + alignment - 1) / alignment * alignment;
  uint64_t size = buffer->getBufferSize();
  if (dataStart > size && nTensors)
    return fail("the GGUF file is truncated: its tensor data would start at "
                "byte " + Twine(dataStart) + " of " + Twine(size));
  for (size_t t = 0; t < tensors.size(); ++t) {
    Tensor &tensor = tensors[t];
    auto n = elementCount(tensor.ref.shape, "tensor '" + tensor.ref.name + "'");
    if (!n)
      return n.takeError();
    if (offsets[t] % alignment)
      return fail("tensor '" + tensor.ref.name + "' has offset " +
                  Twine(offsets[t]) + ", not a multiple of the alignment " +
                  Twine(alignment));
    if (!tensor.supported)
      continue; // size unknown here; refused if the converter needs it
    auto bytes = storageBytes(tensor.ref.type, tensor.ref.shape,
                              "tensor '" + tensor.ref.name + "'");
    if (!bytes)
      return bytes.takeError();
    if (offsets[t] > size - dataStart || *bytes > size - dataStart - offsets[t])
      return fail("the GGUF file is truncated: tensor '" + tensor.ref.name +
                  "' (" + Twine(*bytes) + " bytes at data offset " +
                  Twine(offsets[t]) + ") ends past the end of the file");
    tensor.ref.data = data + dataStart + offsets[t];
    tensor.ref.bytes = *bytes;
  }
  return Error::success();
}

Expected<std::string> GGUFFile::string(StringRef key, bool required,
                                       StringRef fallback) const {
  const Value *v = find(key);
  if (!v) {
    if (required)
      return fail("the GGUF file lacks '" + key + "'");
    return fallback.str();
  }
  if (v->type != kString)
    return fail("GGUF key '" + key + "' is " + ggufTypeName(v->type) +
                ", expected a string");
  return v->s;
}

Expected<int64_t> GGUFFile::integer(StringRef key, bool required,
                                    int64_t fallback) const {
  const Value *v = find(key);
  if (!v) {
    if (required)
      return fail("the GGUF file lacks '" + key + "'");
    return fallback;
  }
  if (!v->isInteger())
    return fail("GGUF key '" + key + "' is " +
                (v->type == kArray ? std::string("an array")
                                   : std::string(ggufTypeName(v->type))) +
                ", expected an integer");
  return v->i;
}

Expected<double> GGUFFile::number(StringRef key, bool required,
                                  double fallback) const {
  const Value *v = find(key);
  if (!v) {
    if (required)
      return fail("the GGUF file lacks '" + key + "'");
    return fallback;
  }
  if (!v->isNumber())
    return fail("GGUF key '" + key + "' is " + ggufTypeName(v->type) +
                ", expected a number");
  return v->f;
}

Expected<bool> GGUFFile::boolean(StringRef key, bool fallback) const {
  const Value *v = find(key);
  if (!v)
    return fallback;
  if (v->type != kBool)
    return fail("GGUF key '" + key + "' is " + ggufTypeName(v->type) +
                ", expected a bool");
  return v->b;
}

class GGUFWeights : public WeightSource {
public:
  explicit GGUFWeights(std::shared_ptr<const GGUFFile> f)
      : owner(std::move(f)), file(*owner) {}
  bool has(StringRef name) const override {
    return file.tensorIndex.count(name);
  }
  Expected<SourceTensor> find(StringRef name,
                              ArrayRef<int64_t> shape) override {
    auto it = file.tensorIndex.find(name);
    if (it == file.tensorIndex.end())
      return fail("the GGUF file lacks tensor '" + name + "'");
    const Tensor &t = file.tensors[it->second];
    if (!t.supported)
      return fail("tensor '" + name + "' has type " +
                  ggmlTypeName(t.ggmlType) +
                  ", which kiln-convert does not read (supported: " +
                  kReadTypes + ")");
    if (ArrayRef<int64_t>(t.ref.shape) != shape)
      return fail("tensor '" + name + "' has shape [" +
                  join(map_range(t.ref.shape,
                                 [](int64_t d) { return itostr(d); }),
                       ", ") +
                  "] but the model's settings need [" +
                  join(map_range(shape, [](int64_t d) { return itostr(d); }),
                       ", ") +
                  "]");
    read.insert(name);
    return SourceTensor{&t.ref, false};
  }
  uint64_t totalElements() const override {
    uint64_t total = 0;
    for (const Tensor &t : file.tensors) {
      uint64_t n = 1;
      for (int64_t d : t.ref.shape)
        n *= (uint64_t)d; // each checked <= 2^40 when the file was opened
      total += n;
    }
    return total;
  }
  std::vector<std::string> unread() const override {
    std::vector<std::string> out;
    for (const Tensor &t : file.tensors)
      if (!read.count(t.ref.name))
        out.push_back(t.ref.name);
    return out;
  }

private:
  std::shared_ptr<const GGUFFile> owner;
  const GGUFFile &file;
  StringSet<> read;
};

Expected<TokenizerSpec> ggufTokenizer(const GGUFFile &f, int64_t vocab) {
  TokenizerSpec tok;
  auto model = f.string("tokenizer.ggml.model", false, "");
  if (!model)
    return model.takeError();
  if (model->empty())
    return fail("the GGUF file has no tokenizer (tokenizer.ggml.model)");
  bool spm = *model == "llama", gpt2 = *model == "gpt2";
  if (!spm && !gpt2)
    return fail("GGUF tokenizer model '" + *model +
                "' is not supported (supported: llama, gpt2)");
  if (gpt2) {
    auto pre = f.string("tokenizer.ggml.pre", false, "default");
    if (!pre)
      return pre.takeError();
    // llama.cpp's names (llama-vocab.cpp): Llama 3's regex also ignores
    // the merges for pre-tokens that are tokens.
    if (*pre == "default" || *pre == "gpt-2" || *pre == "gpt2") {
      tok.preTokenizer = fb::PreTokenizer::GPT2;
    } else if (*pre == "llama-bpe" || *pre == "llama3" || *pre == "llama-v3") {
      tok.preTokenizer = fb::PreTokenizer::Llama3;
      tok.ignoreMerges = true;
    } else if (*pre == "qwen2") {
      tok.preTokenizer = fb::PreTokenizer::Qwen2;
    } else {
      return fail("GGUF pre-tokenizer '" + *pre +
                  "' is not supported (supported: gpt-2, default, "
                  "llama-bpe, qwen2)");
    }
  }
  tok.kind = spm ? fb::TokenizerKind::SentencePieceBPE
                 : fb::TokenizerKind::GPT2BPE;
  const Value *tokens = f.find("tokenizer.ggml.tokens");
  if (!tokens || tokens->type != kArray || tokens->arrayType != kString)
    return fail("the GGUF file lacks tokenizer.ggml.tokens (an array of "
                "strings)");
  tok.tokens = tokens->strings;
  if ((int64_t)tok.tokens.size() != vocab)
    return fail("the GGUF vocabulary has " + Twine(tok.tokens.size()) +
                " tokens but the embedding has " + Twine(vocab) + " rows");
  auto numbers = [&](StringRef key, bool required,
                     std::vector<double> &out) -> Error {
    const Value *v = f.find(key);
    if (!v) {
      if (required)
        return fail("the GGUF file lacks '" + key + "'");
      return Error::success();
    }
    if (v->type != kArray || v->arrayType == kString)
      return fail("GGUF key '" + key + "' must be an array of numbers");
    if (v->numbers.size() != tok.tokens.size())
      return fail("GGUF key '" + key + "' has " + Twine(v->numbers.size()) +
                  " entries for " + Twine(tok.tokens.size()) + " tokens");
    out = v->numbers;
    return Error::success();
  };
  std::vector<double> scores, types;
  if (Error e = numbers("tokenizer.ggml.scores", spm, scores))
    return std::move(e);
  if (Error e = numbers("tokenizer.ggml.token_type", false, types))
    return std::move(e);
  for (double s : scores)
    tok.scores.push_back((float)s);
  for (double t : types) {
    if (t < 0 || t > 6 || t != std::floor(t))
      return fail("tokenizer.ggml.token_type holds an invalid type " +
                  Twine((int64_t)t) + " (valid: 1 to 6)");
    tok.types.push_back((int32_t)t);
  }
  if (gpt2) {
    const Value *merges = f.find("tokenizer.ggml.merges");
    if (!merges || merges->type != kArray || merges->arrayType != kString)
      return fail("a gpt2 GGUF tokenizer needs tokenizer.ggml.merges (an "
                  "array of strings)");
    tok.merges = merges->strings;
  }
  auto special = [&](StringRef key, int64_t &out) -> Error {
    auto v = f.integer(key, false, -1);
    if (!v)
      return v.takeError();
    if (*v < -1 || *v >= vocab)
      return fail("GGUF key '" + key + "' is " + Twine(*v) +
                  ", outside the vocabulary of " + Twine(vocab));
    out = *v;
    return Error::success();
  };
  if (Error e = special("tokenizer.ggml.bos_token_id", tok.bos))
    return std::move(e);
  if (Error e = special("tokenizer.ggml.eos_token_id", tok.eos))
    return std::move(e);
  if (Error e = special("tokenizer.ggml.padding_token_id", tok.pad))
    return std::move(e);
  // End-of-turn and end-of-message tokens also end generation.
  for (StringRef key :
       {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    int64_t id = -1;
    if (Error e = special(key, id))
      return std::move(e);
    if (id >= 0)
      tok.endTokens.push_back(id);
  }
  auto chatTemplate = f.string("tokenizer.chat_template", false, "");
  if (!chatTemplate)
    return chatTemplate.takeError();
  tok.chatTemplate = *chatTemplate;
  auto addBos = f.boolean("tokenizer.ggml.add_bos_token", spm);
  if (!addBos)
    return addBos.takeError();
  tok.addBos = *addBos && tok.bos >= 0;
  auto prefix = f.boolean("tokenizer.ggml.add_space_prefix", true);
  if (!prefix)
    return prefix.takeError();
  tok.addSpacePrefix = *prefix;
  return tok;
}

/// Gemma 3 as llama.cpp reads it (src/models/gemma3.cpp): embeddings x
/// sqrt(width); with attention.sliding_window, layer i is local unless
/// i % pattern == pattern - 1 (attention.sliding_window_pattern, default
/// 6), local layers rotate with rope.freq_base_swa (default 10000) and no
/// scaling; q scaled by 1/sqrt(width / heads) for the 62-layer (27B) model,
/// else 1/sqrt(head width); norm gains as stored (the converter added 1).
Error gemma3Hyperparameters(const GGUFFile &f, const std::string &a,
                            Hyperparameters &hp) {
  auto window = f.integer(a + "attention.sliding_window", false, 0);
  if (!window)
    return window.takeError();
  // The pattern: a period (every period-th layer global), or one bool per
  // layer (true: local), as gguf-py's add_sliding_window_pattern writes.
  std::string patternKey = a + "attention.sliding_window_pattern";
  std::vector<bool> local(hp.layers, false);
  if (const Value *v = f.find(patternKey); v && v->type == kArray) {
    if (v->arrayType != kBool || (int64_t)v->numbers.size() != hp.layers)
      return fail("GGUF key '" + patternKey +
                  "' must be a period or one bool per layer (" +
                  Twine(hp.layers) + ")");
    for (int64_t i = 0; i < hp.layers; ++i)
      local[i] = v->numbers[i] != 0;
  } else {
    auto pattern = f.integer(patternKey, false, 6);
    if (!pattern)
      return pattern.takeError();
    if (*pattern <= 0)
      return fail("GGUF key '" + patternKey + "' is " + Twine(*pattern) +
                  "; it must be positive");
    for (int64_t i = 0; i < hp.layers; ++i)
      local[i] = i % *pattern < *pattern - 1;
  }
  auto localBase = f.number(a + "rope.freq_base_swa", false, 10000.0);
  if (!localBase)
    return localBase.takeError();
  if (*window < 0)
    return fail("GGUF key '" + a + "attention.sliding_window' is " +
                Twine(*window) + "; it must not be negative");
  hp.layerWindows.assign(hp.layers, 0);
  bool windowed = *window > 0;
  for (int64_t i = 0; i < hp.layers; ++i)
    if (windowed && local[i])
      hp.layerWindows[i] = *window;
  hp.ropeLocalTheta = *localBase;
  hp.embedScale = std::sqrt((double)hp.dim);
  hp.attnScale = hp.layers == 62 ? 1.0 / std::sqrt((double)(hp.dim / hp.heads))
                                 : 1.0 / std::sqrt((double)hp.headDim);
  return Error::success();
}

Expected<ConvertedModel> convertFile(std::shared_ptr<const GGUFFile> file,
                                     const ConvertOptions &options) {
  const GGUFFile &f = *file;
  int64_t contextCap = options.contextLength;
  const std::string &name = options.name;
  auto arch = f.string("general.architecture");
  if (!arch)
    return arch.takeError();
  Hyperparameters hp;
  // qwen2 and qwen3 are llama's graph with q/k/v biases (qwen2) or per-head
  // q/k norms (qwen3), and q/k stored unpermuted for rotate-half RoPE
  // (llama.cpp's NEOX rope type).
  bool qwen2 = *arch == "qwen2", qwen3 = *arch == "qwen3",
       gemma3 = *arch == "gemma3";
  if (*arch == "llama" || qwen2 || qwen3)
    hp.family = Family::Llama;
  else if (gemma3)
    hp.family = Family::Gemma3;
  else if (*arch == "gpt2")
    hp.family = Family::GPT2;
  else
    return fail("GGUF architecture '" + *arch +
                "' is not supported (supported: llama, qwen2, qwen3, gemma3, "
                "gpt2)");
  hp.qkvBias = qwen2;
  hp.qkNorm = qwen3;
  std::string a = *arch + ".";
  auto req = [&](StringRef key, int64_t &out) -> Error {
    auto v = f.integer((a + key).str());
    if (!v)
      return v.takeError();
    out = *v;
    return Error::success();
  };
  for (auto [key, out] :
       {std::pair<const char *, int64_t *>{"embedding_length", &hp.dim},
        {"block_count", &hp.layers},
        {"feed_forward_length", &hp.ffn},
        {"attention.head_count", &hp.heads},
        {"context_length", &hp.context}})
    if (Error e = req(key, *out))
      return std::move(e);
  auto gname = f.string("general.name", false, *arch);
  if (!gname)
    return gname.takeError();
  hp.name = name.empty() ? *gname : name;
  auto weights = std::make_unique<GGUFWeights>(file);
  auto embd = f.tensorIndex.find("token_embd.weight");
  if (embd == f.tensorIndex.end())
    return fail("the GGUF file lacks tensor 'token_embd.weight'");
  hp.vocab = f.tensors[embd->second].ref.shape[0];
  hp.tied = !weights->has("output.weight");
  if (hp.heads <= 0)
    return fail("GGUF key '" + a + "attention.head_count' must be positive");
  if (hp.family != Family::GPT2) {
    auto kv = f.integer(a + "attention.head_count_kv", false, hp.heads);
    auto keyLen = f.integer(a + "attention.key_length", false,
                            hp.dim / hp.heads);
    if (!kv)
      return kv.takeError();
    if (!keyLen)
      return keyLen.takeError();
    hp.kvHeads = *kv;
    hp.headDim = *keyLen;
    auto valueLen = f.integer(a + "attention.value_length", false, hp.headDim);
    auto ropeDims = f.integer(a + "rope.dimension_count", false, hp.headDim);
    auto theta = f.number(a + "rope.freq_base", false, 10000.0);
    auto eps = f.number(a + "attention.layer_norm_rms_epsilon");
    auto experts = f.integer(a + "expert_count", false, 0);
    auto scaling = f.string(a + "rope.scaling.type", false, "none");
    if (!valueLen)
      return valueLen.takeError();
    if (!ropeDims)
      return ropeDims.takeError();
    if (!theta)
      return theta.takeError();
    if (!eps)
      return eps.takeError();
    if (!experts)
      return experts.takeError();
    if (!scaling)
      return scaling.takeError();
    if (*valueLen != hp.headDim)
      return fail("key width " + Twine(hp.headDim) + " != value width " +
                  Twine(*valueLen) + " is not supported");
    if (*ropeDims != hp.headDim)
      return fail("partial rotary embeddings (" + a + "rope.dimension_count " +
                  Twine(*ropeDims) + " of head width " + Twine(hp.headDim) +
                  ") are not supported");
    if (*experts > 0)
      return fail("mixture-of-experts models (" + a + "expert_count " +
                  Twine(*experts) + ") are not supported");
    hp.ropeTheta = *theta;
    hp.eps = *eps;
    // llama.cpp's converter permutes llama's q/k for interleaved pairs.
    hp.ropeStyle = *arch == "llama" ? fb::RopeStyle::Interleaved
                                    : fb::RopeStyle::RotateHalf;
    // Llama 3.1's frequency factors, as llama.cpp's converter writes them.
    if (weights->has("rope_freqs.weight")) {
      int64_t half = hp.headDim / 2;
      auto t = weights->find("rope_freqs.weight", {half});
      if (!t)
        return t.takeError();
      if (t->ref->type != fb::DType::F32)
        return fail("tensor 'rope_freqs.weight' must be F32");
      hp.ropeFreqFactors.resize(half);
      std::memcpy(hp.ropeFreqFactors.data(), t->ref->data,
                  half * sizeof(float));
      for (float f : hp.ropeFreqFactors)
        if (!(f > 0) || !std::isfinite(f))
          return fail("tensor 'rope_freqs.weight' holds " +
                      Twine(std::to_string(f)) +
                      "; RoPE frequency factors must be positive and finite");
    }
    // llama.cpp's rope.scaling.* keys: a factor (0: none), the trained
    // context, YaRN's correction range and log multiplier, and a magnitude.
    RopeScaling rs;
    rs.type = *scaling;
    auto factor = f.number(a + "rope.scaling.factor", false, 0.0);
    if (!factor)
      return factor.takeError();
    auto linear = f.number(a + "rope.scale_linear", false, 0.0);
    if (!linear)
      return linear.takeError();
    rs.factor = *factor != 0 ? *factor : *linear != 0 ? *linear : 1.0;
    if (rs.type == "linear" && rs.factor == 1.0)
      rs.type = "none"; // llama.cpp's default type, a no-op without a factor
    auto orig = f.integer(a + "rope.scaling.original_context_length", false,
                          hp.context);
    auto fast = f.number(a + "rope.scaling.yarn_beta_fast", false, 32.0);
    auto slow = f.number(a + "rope.scaling.yarn_beta_slow", false, 1.0);
    auto logMul = f.number(a + "rope.scaling.yarn_log_multiplier", false, 0.0);
    auto attn = f.number(a + "rope.scaling.attn_factor", false, 1.0);
    if (!orig)
      return orig.takeError();
    for (Expected<double> *v : {&fast, &slow, &logMul, &attn})
      if (!*v)
        return v->takeError();
    rs.originalContext = (double)*orig;
    rs.betaFast = *fast;
    rs.betaSlow = *slow;
    if (*logMul != 0) {
      rs.mscale = 1.0;
      rs.mscaleAllDim = *logMul;
    }
    if (Error e =
            applyRopeScaling(rs, hp, "GGUF key '" + a + "rope.scaling.type'"))
      return std::move(e);
    hp.ropeAttentionFactor *= *attn;
    if (gemma3)
      if (Error e = gemma3Hyperparameters(f, a, hp))
        return std::move(e);
  } else {
    auto eps = f.number(a + "attention.layer_norm_epsilon");
    if (!eps)
      return eps.takeError();
    hp.eps = *eps;
    hp.kvHeads = hp.heads;
    hp.headDim = hp.dim / hp.heads;
    hp.activation = fb::Activation::GELUTanh; // ggml_gelu: tanh form
    if (hp.dim % hp.heads)
      return fail("embedding width " + Twine(hp.dim) +
                  " is not a multiple of the head count " + Twine(hp.heads));
  }
  auto tok = ggufTokenizer(f, hp.vocab);
  if (!tok)
    return tok.takeError();
  hp.positions = hp.context;
  if (contextCap > 0 && contextCap < hp.context)
    hp.context = contextCap;
  return buildKilnModel(hp, std::move(weights), std::move(*tok), options);
}

} // namespace

Expected<ConvertedModel> convertGGUF(StringRef path,
                                     const ConvertOptions &options) {
  auto f = std::make_shared<GGUFFile>();
  if (Error e = f->open(path))
    return std::move(e);
  return convertFile(std::move(f), options);
}

Expected<std::string> describeGGUF(StringRef path) {
  GGUFFile f;
  if (Error e = f.open(path))
    return std::move(e);
  std::string out;
  raw_string_ostream os(out);
  os << "format: GGUF v" << f.version << " (" << f.tensors.size()
     << " tensors, " << f.keys.size() << " metadata keys, alignment "
     << f.alignment << ")\n";
  for (const std::string &key : f.keys) {
    const Value &v = f.kv.find(key)->second;
    os << "  " << key << " = ";
    if (v.type == kArray)
      os << "[" << (v.arrayType == kString ? v.strings.size()
                                           : v.numbers.size())
         << " x " << ggufTypeName(v.arrayType) << "]";
    else if (v.type == kString)
      os << "\"" << (v.s.size() > 60 ? v.s.substr(0, 60) + "..." : v.s)
         << "\"";
    else if (v.type == kBool)
      os << (v.b ? "true" : "false");
    else if (v.type == kF32 || v.type == kF64)
      os << v.f;
    else
      os << v.i;
    os << "\n";
  }
  std::map<std::string, uint64_t> types;
  uint64_t params = 0;
  for (const Tensor &t : f.tensors) {
    uint64_t n = 1;
    for (int64_t d : t.ref.shape)
      n *= d;
    params += n;
    types[ggmlTypeName(t.ggmlType)] += 1;
  }
  os << "parameters: " << params << "\ntensor types:";
  for (auto &[name, count] : types)
    os << " " << name << " x" << count;
  os << "\n";
  for (const Tensor &t : f.tensors)
    os << "  " << t.ref.name << " [" << join(map_range(t.ref.shape, [](int64_t d) {
                                       return itostr(d);
                                     }),
                                     ", ")
       << "] " << ggmlTypeName(t.ggmlType) << "\n";
  return out;
}

} // namespace kiln::convert
