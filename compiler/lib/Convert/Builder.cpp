//===- Builder.cpp - Decoder-only graphs as .kiln files -------------------===//
//
// The converters' common back end: the graphs of the Llama and GPT-2
// families as .kiln files (the same graphs the Python exporter,
// kiln_export.export_llama / export_gpt2, writes). A layout pass decides
// every weight's dtype, shape, offset and size and builds the FlatBuffer;
// writing then streams each weight from the mapped input, widened to f32
// (kiln::rt::dequantizeRow), copied as stored, or quantized
// (kiln-convert --quantize: kiln/Convert/Quantize.h), one tensor at a time.
//
//===----------------------------------------------------------------------===//

#include "ConvertInternal.h"
#include "kiln/Convert/Quantize.h"
#include "kiln/rt/model.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

using namespace llvm;

namespace kiln::convert {

Expected<uint64_t> elementCount(ArrayRef<int64_t> shape, StringRef what) {
  uint64_t n = 1;
  for (int64_t d : shape)
    if (d <= 0 || __builtin_mul_overflow(n, (uint64_t)d, &n) ||
        n > (uint64_t(1) << 40))
      return fail(what + " has an invalid shape [" +
                  join(map_range(shape, [](int64_t d) { return itostr(d); }),
                       ", ") +
                  "]");
  return n;
}

Expected<uint64_t> storageBytes(fb::DType type, ArrayRef<int64_t> shape,
                                StringRef what) {
  uint64_t bytes = 0;
  if (auto msg = rt::storageBytes(type, shape.data(), shape.size(), bytes))
    return fail(what + " " + *msg);
  return bytes;
}

//===----------------------------------------------------------------------===//
// ConvertedModel: writing the planned weights
//===----------------------------------------------------------------------===//

namespace {

/// Streams one planned weight's bytes to `os`.
class WeightWriter {
public:
  explicit WeightWriter(raw_ostream &os) : os(os) {}

  /// False with `error` set when a weight cannot be quantized (a value that
  /// is not finite).
  bool write(const PlannedWeight &w, std::string &error) {
    const TensorRef &src = *w.source.ref;
    const rt::DTypeInfo &in = *rt::weightTypeInfo(src.type);
    int64_t rowElems = w.shape.back();
    if (!w.source.transposed) {
      // Elements [begin, begin + count) of the source, in order: whole
      // blocks (the plan keeps slices on block boundaries).
      const uint8_t *p = src.data + w.begin / in.blockElems * in.blockBytes;
      if (w.dtype == src.type && w.addend == 0.0f) {
        os.write(reinterpret_cast<const char *>(p), w.size);
        return true;
      }
      // Widened in chunks of whole blocks (of whole rows when quantized:
      // the input is then F32, F16 or BF16).
      uint64_t unit = w.dtype == fb::DType::F32 ? in.blockElems : rowElems;
      uint64_t chunk = std::max<uint64_t>(unit, kChunk);
      chunk -= chunk % unit;
      for (uint64_t done = 0; done < w.count; done += chunk) {
        uint64_t n = std::min(chunk, w.count - done);
        floats.resize(n);
        rt::dequantizeRow(src.type, p + done / in.blockElems * in.blockBytes,
                          floats.data(), (int64_t)n);
        if (w.addend != 0.0f)
          for (float &f : floats)
            f += w.addend;
        if (!emit(w, done, floats.data(), n, error))
          return false;
      }
      return true;
    }
    // Stored transposed (element types only): output row r is column r of
    // the source [cols, rows].
    int64_t rows = src.shape[1], cols = src.shape[0];
    uint64_t firstRow = w.begin / cols, numRows = w.count / cols;
    size_t es = in.blockBytes;
    bool copy = w.dtype == src.type;
    for (uint64_t r = firstRow; r < firstRow + numRows; ++r) {
      if (copy) {
        raw.resize(cols * es);
        for (int64_t c = 0; c < cols; ++c)
          std::memcpy(&raw[c * es], src.data + (c * rows + r) * es, es);
        os.write(reinterpret_cast<const char *>(raw.data()), raw.size());
      } else {
        floats.resize(cols);
        for (int64_t c = 0; c < cols; ++c)
          rt::dequantizeRow(src.type, src.data + (c * rows + r) * es,
                            &floats[c], 1);
        if (!emit(w, (r - firstRow) * cols, floats.data(), cols, error))
          return false;
      }
    }
    return true;
  }

private:
  static constexpr uint64_t kChunk = 1 << 20; ///< elements widened at a time

  /// Writes elements [at, at + n) of `w` (whole rows when quantized) from
  /// the floats `f`, as w.dtype.
  bool emit(const PlannedWeight &w, uint64_t at, const float *f, uint64_t n,
            std::string &error) {
    // Little-endian hosts only (as the whole format).
    if (w.dtype == fb::DType::F32) {
      os.write(reinterpret_cast<const char *>(f), n * sizeof(float));
      return true;
    }
    for (uint64_t i = 0; i < n; ++i)
      if (!std::isfinite(f[i])) {
        int64_t rowElems = w.shape.back();
        error = formatv("cannot quantize weight '{0}' to {1}: element {2} "
                        "(row {3}, column {4}) is {5}",
                        w.name, rt::dtypeName(w.dtype), at + i,
                        (at + i) / rowElems, (at + i) % rowElems, f[i])
                    .str();
        return false;
      }
    const rt::DTypeInfo &out = *rt::weightTypeInfo(w.dtype);
    raw.resize(n / out.blockElems * out.blockBytes);
    quantizeRow(w.dtype, f, raw.data(), (int64_t)n);
    os.write(reinterpret_cast<const char *>(raw.data()), raw.size());
    return true;
  }

  raw_ostream &os;
  std::vector<float> floats;
  std::vector<uint8_t> raw;
};

void writeZeros(raw_ostream &os, uint64_t n) {
  static const char zeros[4096] = {};
  while (n) {
    uint64_t k = std::min<uint64_t>(n, sizeof zeros);
    os.write(zeros, k);
    n -= k;
  }
}

} // namespace

ConvertedModel::ConvertedModel(std::unique_ptr<Impl> impl)
    : impl(std::move(impl)) {}
ConvertedModel::ConvertedModel(ConvertedModel &&) noexcept = default;
ConvertedModel &ConvertedModel::operator=(ConvertedModel &&) noexcept = default;
ConvertedModel::~ConvertedModel() = default;

uint64_t ConvertedModel::fileSize() const {
  return impl->header.size() + impl->dataSize;
}

ArrayRef<uint8_t> ConvertedModel::header() const { return impl->header; }

bool ConvertedModel::write(raw_ostream &os, std::string &error) const {
  os.write(reinterpret_cast<const char *>(impl->header.data()),
           impl->header.size());
  WeightWriter writer(os);
  uint64_t at = 0; // position in the data section
  for (const PlannedWeight &w : impl->weights) {
    writeZeros(os, w.offset - at);
    if (!writer.write(w, error))
      return false;
    at = w.offset + w.size;
  }
  writeZeros(os, impl->dataSize - at);
  // Write errors are the stream's (raw_fd_ostream::has_error, which
  // writeFileAtomically reports).
  return true;
}

std::unique_ptr<MemoryBuffer> ConvertedModel::toMemoryBuffer() const {
  auto buf = WritableMemoryBuffer::getNewUninitMemBuffer(
      fileSize(), "converted.kiln", Align(4096));
  if (!buf)
    return nullptr;
  // A stream over the buffer (raw_svector_ostream would copy).
  struct BufferStream : raw_ostream {
    explicit BufferStream(char *p) : p(p) { SetUnbuffered(); }
    void write_impl(const char *ptr, size_t size) override {
      std::memcpy(p + pos, ptr, size);
      pos += size;
    }
    uint64_t current_pos() const override { return pos; }
    char *p;
    uint64_t pos = 0;
  } os(buf->getBufferStart());
  std::string error;
  if (!write(os, error))
    return nullptr;
  return std::move(buf);
}

namespace {

/// Builds the FlatBuffer and the plan of the data section: weights as the
/// graph names them (each found in the source, its dtype and size decided),
/// then nodes, metadata and tokenizer.
class KilnWriter {
public:
  using Strings = flatbuffers::Offset<
      flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>>;

  KilnWriter(std::unique_ptr<WeightSource> source, const Hyperparameters &hp,
             WeightDType dtype, QuantizeRecipe recipe)
      : b(1 << 20), source(std::move(source)), hp(hp), dtype(dtype),
        recipe(recipe) {}

  WeightSource &input() { return *source; }

  /// Plans `name` with `shape` from the source; returns the weight's name
  /// for node inputs.
  Expected<std::string> weight(StringRef name, ArrayRef<int64_t> shape) {
    return part(name, shape, name, 0, shape.empty() ? 0 : shape[0]);
  }

  /// A norm's gains `name` of `shape`, stored with hp.normAddend added.
  Expected<std::string> gain(StringRef name, ArrayRef<int64_t> shape) {
    auto w = weight(name, shape);
    if (w)
      planned.back().addend = hp.normAddend;
    return w;
  }

  /// Plans weight `name` of `shape` as rows [rowBegin, rowBegin + rows) of
  /// the source tensor `from`, whose (transposed) shape is `fromShape` (a
  /// 1-D tensor's rows are its elements).
  Expected<std::string> part(StringRef from, ArrayRef<int64_t> fromShape,
                             StringRef name, int64_t rowBegin, int64_t rows) {
    auto src = source->find(from, fromShape);
    if (!src)
      return src.takeError();
    uint64_t rowElems = 1;
    for (int64_t d : fromShape.drop_front())
      rowElems *= (uint64_t)d; // checked by find()
    std::vector<int64_t> shape(fromShape.begin(), fromShape.end());
    shape[0] = rows;
    PlannedWeight w;
    w.name = name.str();
    w.shape = shape;
    w.source = *src;
    w.begin = (uint64_t)rowBegin * rowElems;
    w.count = (uint64_t)rows * rowElems;
    fb::DType from_type = src->ref->type;
    const rt::DTypeInfo *info = rt::weightTypeInfo(from_type);
    if (!info)
      return fail("internal error: tensor '" + from +
                  "' has no weight type");
    // 1-D tensors (norms, biases) are always f32; quantized tensors keep
    // their blocks whole (GGUF never transposes, Hugging Face never
    // quantizes). --quantize: the matrices the recipe names get its type.
    std::optional<fb::DType> quantized;
    if (shape.size() == 2)
      quantized = quantizedType(
          recipe, QuantizeTarget{from, shape.back(), hp.layers, hp.tied});
    if (quantized && info->quantized)
      return fail("tensor '" + from + "' is already quantized (" +
                  info->name + "); --quantize " +
                  quantizeRecipeName(recipe) +
                  " reads F32, F16 or BF16 weights (quantizing again would "
                  "compound the rounding; convert without --quantize to "
                  "keep the file's own blocks)");
    if (quantized)
      w.dtype = *quantized;
    else
      w.dtype = dtype == WeightDType::Stored && shape.size() >= 2
                    ? from_type
                    : fb::DType::F32;
    if (info->quantized &&
        (src->transposed || w.begin % info->blockElems ||
         w.count % info->blockElems))
      return fail("tensor '" + from + "' is " + info->name +
                  " and cannot be split or transposed on its block "
                  "boundaries");
    auto size = storageBytes(w.dtype, shape, ("weight '" + name + "'").str());
    if (!size)
      return size.takeError();
    w.size = *size;
    uint64_t offset = (dataSize + rt::kWeightAlignment - 1) /
                      rt::kWeightAlignment * rt::kWeightAlignment;
    w.offset = offset;
    dataSize = offset + w.size;
    weights.push_back(fb::CreateWeight(
        b, b.CreateString(w.name), w.dtype, b.CreateVector(w.shape),
        w.offset, w.size));
    planned.push_back(std::move(w));
    return name.str();
  }

  template <typename T>
  std::string node(fb::Op kind, flatbuffers::Offset<T> op, StringRef name,
                   ArrayRef<std::string> inputs, StringRef output) {
    std::vector<flatbuffers::Offset<flatbuffers::String>> in;
    for (const std::string &s : inputs)
      in.push_back(b.CreateString(s));
    auto out = b.CreateVector(
        std::vector<flatbuffers::Offset<flatbuffers::String>>{
            b.CreateString(output.str())});
    nodes.push_back(fb::CreateNode(b, b.CreateString(name.str()), kind,
                                   op.Union(), b.CreateVector(in), out));
    return output.str();
  }

  Expected<ConvertedModel> finish(const Hyperparameters &hp,
                                  const TokenizerSpec &tok,
                                  fb::Architecture arch) {
    std::vector<flatbuffers::Offset<fb::Token>> toks;
    for (const std::string &t : tok.tokens)
      toks.push_back(fb::CreateToken(
          b, b.CreateVector(reinterpret_cast<const uint8_t *>(t.data()),
                            t.size())));
    std::vector<flatbuffers::Offset<flatbuffers::String>> merges;
    for (const std::string &m : tok.merges)
      merges.push_back(b.CreateString(m));
    auto tokenizer = fb::CreateTokenizer(
        b, tok.kind, toks.empty() ? 0 : b.CreateVector(toks),
        tok.scores.empty() ? 0 : b.CreateVector(tok.scores),
        merges.empty() ? 0 : b.CreateVector(merges),
        tok.types.empty() ? 0 : b.CreateVector(tok.types), tok.addSpacePrefix,
        tok.preTokenizer, tok.ignoreMerges,
        tok.chatTemplate.empty() ? 0 : b.CreateString(tok.chatTemplate));
    std::vector<int32_t> ends(tok.endTokens.begin(), tok.endTokens.end());
    auto meta = fb::CreateMetadata(
        b, arch, b.CreateString(hp.name), (int32_t)hp.context,
        (int32_t)hp.vocab, (int32_t)tok.bos, (int32_t)tok.eos, (int32_t)tok.pad,
        tok.addBos, /*source_length=*/0,
        /*source_vocab_size=*/0, ends.empty() ? 0 : b.CreateVector(ends));
    auto strings = [&](std::initializer_list<const char *> list) {
      std::vector<flatbuffers::Offset<flatbuffers::String>> v;
      for (const char *s : list)
        v.push_back(b.CreateString(s));
      return b.CreateVector(v);
    };
    Strings in = strings({"tokens"}), out = strings({"logits"});
    // data_offset depends on the FlatBuffer's size: written as a
    // placeholder (non-zero, so that the field is stored), then patched.
    uint64_t dataOffset = rt::kDataSectionAlignment;
    auto model = fb::CreateModel(
        b, rt::kModelSchemaVersion, meta, tokenizer, in, out,
        b.CreateVector(nodes), b.CreateVector(weights), dataOffset, dataSize);
    fb::FinishModelBuffer(b, model);
    if (b.GetSize() >= FLATBUFFERS_MAX_BUFFER_SIZE - rt::kDataSectionAlignment)
      return fail("the model's graph and tokenizer exceed the 2 GiB a "
                  "FlatBuffer holds");
    dataOffset = (b.GetSize() + rt::kDataSectionAlignment - 1) /
                 rt::kDataSectionAlignment * rt::kDataSectionAlignment;
    auto impl = std::make_unique<ConvertedModel::Impl>();
    impl->header.assign(b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize());
    impl->header.resize(dataOffset, 0);
    auto *root = reinterpret_cast<flatbuffers::Table *>(
        flatbuffers::GetMutableRoot<fb::Model>(impl->header.data()));
    if (!root->SetField<uint64_t>(fb::Model::VT_DATA_OFFSET, dataOffset, 0))
      return fail("internal error: cannot set data_offset");
    impl->weights = std::move(planned);
    impl->dataSize = dataSize;
    impl->source = std::move(source);
    return ConvertedModel(std::move(impl));
  }

  flatbuffers::FlatBufferBuilder b;

private:
  std::unique_ptr<WeightSource> source;
  const Hyperparameters &hp;
  WeightDType dtype;
  QuantizeRecipe recipe;
  std::vector<flatbuffers::Offset<fb::Weight>> weights;
  std::vector<flatbuffers::Offset<fb::Node>> nodes;
  std::vector<PlannedWeight> planned;
  uint64_t dataSize = 0;
};

#define TRY(var, expr)                                                         \
  auto var##OrErr = (expr);                                                    \
  if (!var##OrErr)                                                             \
    return var##OrErr.takeError();                                             \
  std::string var = std::move(*var##OrErr)

Error checkHyperparameters(const Hyperparameters &hp) {
  auto positive = [&](int64_t v, const char *what) -> Error {
    if (v <= 0 || v > (int64_t(1) << 30))
      return fail(Twine("the model's ") + what + " is " + Twine(v) +
                  "; it must be positive");
    return Error::success();
  };
  for (auto [v, what] :
       {std::pair{hp.dim, "embedding width"}, {hp.heads, "head count"},
        {hp.kvHeads, "key/value head count"}, {hp.headDim, "head width"},
        {hp.ffn, "feed-forward width"}, {hp.vocab, "vocabulary size"},
        {hp.context, "context length"}})
    if (Error e = positive(v, what))
      return e;
  if (hp.layers < 0 || hp.layers > 100000)
    return fail("the model's layer count " + Twine(hp.layers) + " is invalid");
  if (hp.heads % hp.kvHeads)
    return fail("the head count " + Twine(hp.heads) +
                " is not a multiple of the key/value head count " +
                Twine(hp.kvHeads));
  bool rotary = hp.family != Family::GPT2;
  if (rotary && hp.headDim % 2)
    return fail("the head width " + Twine(hp.headDim) +
                " must be even for rotary positions");
  if (hp.family == Family::GPT2 && hp.heads * hp.headDim != hp.dim)
    return fail("GPT-2's embedding width " + Twine(hp.dim) +
                " is not heads x head width");
  if (hp.family == Family::GPT2 && hp.positions < hp.context)
    return fail("the position table has " + Twine(hp.positions) +
                " rows, fewer than the context length " + Twine(hp.context));
  if (!(hp.eps > 0) || !std::isfinite(hp.eps))
    return fail("the norm epsilon " + Twine(std::to_string(hp.eps)) + " must be positive");
  if (rotary && (!(hp.ropeTheta > 0) || !std::isfinite(hp.ropeTheta)))
    return fail("the RoPE base " + Twine(std::to_string(hp.ropeTheta)) + " must be positive");
  if (!hp.layerWindows.empty() && (int64_t)hp.layerWindows.size() != hp.layers)
    return fail("internal error: " + Twine(hp.layerWindows.size()) +
                " sliding windows for " + Twine(hp.layers) + " layers");
  for (int64_t window : hp.layerWindows)
    if (window < 0 || window > (int64_t(1) << 30))
      return fail("the sliding window " + Twine(window) + " is invalid");
  for (auto [v, what] : {std::pair{hp.attnScale, "attention scale"},
                         {hp.embedScale, "embedding scale"},
                         {hp.ropeLocalTheta, "local RoPE base"}})
    if (!(v >= 0) || !std::isfinite(v))
      return fail(Twine("the ") + what + " " + Twine(std::to_string(v)) +
                  " is invalid");
  if (rotary && !hp.ropeFreqFactors.empty() &&
      (int64_t)hp.ropeFreqFactors.size() != hp.headDim / 2)
    return fail("the model has " + Twine(hp.ropeFreqFactors.size()) +
                " RoPE frequency factors; its head width " + Twine(hp.headDim) +
                " needs " + Twine(hp.headDim / 2));
  for (float f : hp.ropeFreqFactors)
    if (!(f > 0) || !std::isfinite(f))
      return fail("RoPE frequency factor " + Twine(std::to_string(f)) +
                  " must be positive and finite");
  if (!(hp.ropeAttentionFactor > 0) || !std::isfinite(hp.ropeAttentionFactor))
    return fail("the RoPE attention factor " +
                Twine(std::to_string(hp.ropeAttentionFactor)) +
                " must be positive and finite");
  return Error::success();
}

} // namespace

Error applyRopeScaling(const RopeScaling &scaling, Hyperparameters &hp,
                       StringRef what) {
  auto bad = [&](const Twine &msg) {
    return fail(what + ": " + scaling.type + " RoPE scaling " + msg);
  };
  if (scaling.type == "none")
    return Error::success();
  if (scaling.type != "linear" && scaling.type != "llama3" &&
      scaling.type != "yarn")
    return fail(what + ": RoPE scaling '" + scaling.type +
                "' is not supported (supported: none, linear, llama3, yarn)");
  if (!(scaling.factor > 0) || !std::isfinite(scaling.factor))
    return bad("needs a positive factor, got " +
               Twine(std::to_string(scaling.factor)));
  if (hp.headDim <= 0 || hp.headDim % 2 || !(hp.ropeTheta > 0))
    return Error::success(); // checkHyperparameters reports these
  int64_t half = hp.headDim / 2;
  std::vector<double> factors(half, 1.0);
  double theta = hp.ropeTheta, d = (double)hp.headDim;
  if (scaling.type == "linear") {
    std::fill(factors.begin(), factors.end(), scaling.factor);
  } else if (scaling.type == "llama3") {
    double low = scaling.lowFreqFactor, high = scaling.highFreqFactor,
           old = scaling.originalContext;
    if (!(old > 0) || !(low > 0) || !(high > low))
      return bad("needs original_max_position_embeddings and 0 < "
                 "low_freq_factor < high_freq_factor");
    for (int64_t i = 0; i < half; ++i) {
      double wavelen = 2 * M_PI * std::pow(theta, 2.0 * i / d);
      if (wavelen < old / high)
        continue;
      if (wavelen > old / low) {
        factors[i] = scaling.factor;
        continue;
      }
      double smooth = (old / wavelen - low) / (high - low);
      factors[i] = 1.0 / ((1 - smooth) / scaling.factor + smooth);
    }
  } else { // yarn
    double old = scaling.originalContext;
    if (!(old > 0))
      return bad("needs the original context length");
    if (!(scaling.betaFast > 0) || !(scaling.betaSlow > 0))
      return bad("needs positive beta_fast and beta_slow");
    auto correctionDim = [&](double rotations) {
      return d * std::log(old / (rotations * 2 * M_PI)) / (2 * std::log(theta));
    };
    double lo = correctionDim(scaling.betaFast),
           hi = correctionDim(scaling.betaSlow);
    if (scaling.truncate) {
      lo = std::floor(lo);
      hi = std::ceil(hi);
    }
    lo = std::max(lo, 0.0);
    hi = std::min(hi, d - 1);
    if (lo == hi)
      hi += 0.001;
    for (int64_t i = 0; i < half; ++i) {
      double extrapolate = 1 - std::clamp((i - lo) / (hi - lo), 0.0, 1.0);
      factors[i] = 1.0 / ((1 - extrapolate) / scaling.factor + extrapolate);
    }
    auto mscale = [&](double m) {
      return scaling.factor <= 1 ? 1.0 : 0.1 * m * std::log(scaling.factor) + 1;
    };
    double attention =
        scaling.attentionFactor ? *scaling.attentionFactor
        : scaling.mscale != 0 && scaling.mscaleAllDim != 0
            ? mscale(scaling.mscale) / mscale(scaling.mscaleAllDim)
            : mscale(1.0);
    if (!(attention > 0) || !std::isfinite(attention))
      return bad("gives the attention factor " +
                 Twine(std::to_string(attention)) + "; it must be positive");
    hp.ropeAttentionFactor *= attention;
  }
  if (!hp.ropeFreqFactors.empty() && (int64_t)hp.ropeFreqFactors.size() != half)
    return bad("meets " + Twine(hp.ropeFreqFactors.size()) +
               " frequency factors for " + Twine(half) + " pairs");
  hp.ropeFreqFactors.resize(half, 1.0f);
  for (int64_t i = 0; i < half; ++i)
    hp.ropeFreqFactors[i] = (float)(hp.ropeFreqFactors[i] * factors[i]);
  return Error::success();
}

namespace {

/// An RMS norm of `in` with the gains `base`.weight ([width]; over groups
/// of `group` features when non-zero).
Expected<std::string> rmsNorm(const Hyperparameters &hp, KilnWriter &w,
                              const std::string &base, const std::string &in,
                              int64_t width, int64_t group = 0) {
  auto g = w.gain(base + ".weight", {width});
  if (!g)
    return g.takeError();
  return w.node(fb::Op::RmsNormOp,
                fb::CreateRmsNormOp(w.b, (float)hp.eps, (int32_t)group), base,
                {in, *g}, base);
}

/// Layer `p`'s q, k and v projections of `n` (with biases when hp.qkvBias),
/// then per-head norms of q and k when `qkNorm`.
Expected<std::array<std::string, 3>>
projections(const Hyperparameters &hp, KilnWriter &w, const std::string &p,
            const std::string &n, bool qkNorm) {
  int64_t hd = hp.headDim;
  const char *parts[3] = {"q", "k", "v"};
  int64_t rows[3] = {hp.heads * hd, hp.kvHeads * hd, hp.kvHeads * hd};
  std::array<std::string, 3> qkv;
  for (int j = 0; j < 3; ++j) {
    std::string base = p + "attn_" + parts[j];
    TRY(wt, w.weight(base + ".weight", {rows[j], hp.dim}));
    std::string bias;
    if (hp.qkvBias) {
      TRY(bt, w.weight(base + ".bias", {rows[j]}));
      bias = bt;
    }
    qkv[j] = w.node(fb::Op::LinearOp, fb::CreateLinearOp(w.b), base,
                    {n, wt, bias}, base);
  }
  for (int j = 0; j < 2 && qkNorm; ++j) {
    TRY(normed,
        rmsNorm(hp, w, p + "attn_" + parts[j] + "_norm", qkv[j], hd, hd));
    qkv[j] = normed;
  }
  return qkv;
}

/// Layer `p`'s rotary positions on q (j = 0) or k (j = 1) with base
/// `theta`, and the model's RoPE scaling when `scaled`.
std::string rope(const Hyperparameters &hp, KilnWriter &w, const std::string &p,
                 const std::string &in, int j, double theta, bool scaled) {
  auto &b = w.b;
  const char *part = j == 0 ? "q" : "k";
  bool factors = scaled && !hp.ropeFreqFactors.empty();
  return w.node(fb::Op::RopeOp,
                fb::CreateRopeOp(
                    b, (int32_t)hp.headDim, (float)theta, hp.ropeStyle,
                    factors ? b.CreateVector(hp.ropeFreqFactors)
                            : flatbuffers::Offset<flatbuffers::Vector<float>>(),
                    scaled ? (float)hp.ropeAttentionFactor : 1.0f),
                p + "rope_" + part, {in}, p + "rope_" + part);
}

/// Layer `p`'s attention output projection of `a`.
Expected<std::string> attentionOutput(const Hyperparameters &hp, KilnWriter &w,
                                      const std::string &p,
                                      const std::string &a) {
  TRY(o, w.weight(p + "attn_output.weight", {hp.dim, hp.heads * hp.headDim}));
  return w.node(fb::Op::LinearOp, fb::CreateLinearOp(w.b), p + "attn_output",
                {a, o, ""}, p + "attn_output");
}

/// Layer `p`'s gated feed-forward block of `in`.
Expected<std::string> gatedFeedForward(const Hyperparameters &hp, KilnWriter &w,
                                       const std::string &p,
                                       const std::string &in,
                                       fb::Activation activation) {
  TRY(gate, w.weight(p + "ffn_gate.weight", {hp.ffn, hp.dim}));
  TRY(up, w.weight(p + "ffn_up.weight", {hp.ffn, hp.dim}));
  TRY(down, w.weight(p + "ffn_down.weight", {hp.dim, hp.ffn}));
  return w.node(fb::Op::FeedForwardOp, fb::CreateFeedForwardOp(w.b, activation),
                p + "ffn", {in, gate, up, down}, p + "ffn");
}

/// The output norm, the LM head (the embedding `emb` when tied) and the file.
Expected<ConvertedModel> finishDecoder(const Hyperparameters &hp, KilnWriter &w,
                                       const TokenizerSpec &tok,
                                       const std::string &x,
                                       const std::string &emb) {
  TRY(n, rmsNorm(hp, w, "output_norm", x, hp.dim));
  std::string head = emb;
  if (!hp.tied) {
    TRY(h, w.weight("output.weight", {hp.vocab, hp.dim}));
    head = h;
  }
  w.node(fb::Op::LinearOp, fb::CreateLinearOp(w.b), "output", {n, head, ""},
         "logits");
  return w.finish(hp, tok, fb::Architecture::Llama);
}

/// Llama and the models built like it (Mistral, Qwen2/3), and Gemma 3,
/// which adds to the same layer scaled embeddings, norms after attention
/// and after the feed-forward, per-head q/k norms, GeGLU with the tanh GELU
/// and local (sliding-window: their own RoPE base, unscaled) layers between
/// global ones.
Expected<ConvertedModel> buildDecoder(const Hyperparameters &hp, KilnWriter &w,
                                      const TokenizerSpec &tok) {
  auto &b = w.b;
  bool gemma = hp.family == Family::Gemma3;
  int64_t d = hp.dim, hd = hp.headDim;
  TRY(emb, w.weight("token_embd.weight", {hp.vocab, d}));
  std::string x = w.node(fb::Op::EmbeddingOp,
                         fb::CreateEmbeddingOp(b, (float)hp.embedScale),
                         "token_embd", {"tokens", emb}, "blk.0.in");
  for (int64_t i = 0; i < hp.layers; ++i) {
    std::string p = "blk." + std::to_string(i) + ".";
    int64_t window = hp.layerWindows.empty() ? 0 : hp.layerWindows[i];
    bool local = gemma && window > 0;
    TRY(n, rmsNorm(hp, w, p + "attn_norm", x, d));
    auto qkv = projections(hp, w, p, n, gemma || hp.qkNorm);
    if (!qkv)
      return qkv.takeError();
    for (int j = 0; j < 2; ++j)
      (*qkv)[j] = rope(hp, w, p, (*qkv)[j], j,
                       local ? hp.ropeLocalTheta : hp.ropeTheta, !local);
    std::string a = w.node(
        fb::Op::AttentionOp,
        fb::CreateAttentionOp(b, fb::AttentionMode::Causal, (int32_t)hp.heads,
                              (int32_t)hp.kvHeads, (int32_t)hd,
                              (float)hp.attnScale, (int32_t)window),
        p + "attn", {(*qkv)[0], (*qkv)[1], (*qkv)[2]}, p + "attn");
    TRY(ao, attentionOutput(hp, w, p, a));
    if (gemma) {
      TRY(an, rmsNorm(hp, w, p + "post_attention_norm", ao, d));
      ao = an;
    }
    x = w.node(fb::Op::AddOp, fb::CreateAddOp(b), p + "residual_1", {x, ao},
               p + "mid");
    TRY(fn, rmsNorm(hp, w, p + "ffn_norm", x, d));
    TRY(f, gatedFeedForward(hp, w, p, fn,
                            gemma ? fb::Activation::GEGLUTanh
                                  : fb::Activation::SwiGLU));
    if (gemma) {
      TRY(fo, rmsNorm(hp, w, p + "post_ffw_norm", f, d));
      f = fo;
    }
    x = w.node(fb::Op::AddOp, fb::CreateAddOp(b), p + "residual_2", {x, f},
               "blk." + std::to_string(i + 1) + ".in");
  }
  return finishDecoder(hp, w, tok, x, emb);
}

Expected<ConvertedModel> buildGPT2(const Hyperparameters &hp, KilnWriter &w,
                                   const TokenizerSpec &tok) {
  auto &b = w.b;
  int64_t d = hp.dim;
  TRY(wte, w.weight("token_embd.weight", {hp.vocab, d}));
  TRY(wpe, w.weight("position_embd.weight", {hp.positions, d}));
  std::string x = w.node(fb::Op::EmbeddingOp, fb::CreateEmbeddingOp(b),
                         "token_embd", {"tokens", wte}, "token_embd");
  x = w.node(fb::Op::PositionEmbeddingOp, fb::CreatePositionEmbeddingOp(b),
             "position_embd", {x, wpe}, "blk.0.in");
  auto layerNorm = [&](const std::string &base, const std::string &in,
                       std::string &outName) -> Error {
    auto g = w.weight(base + ".weight", {d});
    if (!g)
      return g.takeError();
    auto be = w.weight(base + ".bias", {d});
    if (!be)
      return be.takeError();
    outName = w.node(fb::Op::LayerNormOp, fb::CreateLayerNormOp(b, (float)hp.eps),
                     base, {in, *g, *be}, base);
    return Error::success();
  };
  for (int64_t i = 0; i < hp.layers; ++i) {
    std::string p = "blk." + std::to_string(i) + ".";
    std::string n;
    if (Error e = layerNorm(p + "attn_norm", x, n))
      return std::move(e);
    // The fused QKV projection, split into q, k and v.
    std::string qkv[3];
    const char *parts[3] = {"q", "k", "v"};
    for (int j = 0; j < 3; ++j) {
      std::string base = p + "attn_" + parts[j];
      TRY(wt, w.part(p + "attn_qkv.weight", {3 * d, d}, base + ".weight",
                     j * d, d));
      TRY(bt, w.part(p + "attn_qkv.bias", {3 * d}, base + ".bias", j * d, d));
      qkv[j] = w.node(fb::Op::LinearOp, fb::CreateLinearOp(b), base,
                      {n, wt, bt}, base);
    }
    std::string a = w.node(
        fb::Op::AttentionOp,
        fb::CreateAttentionOp(b, fb::AttentionMode::Causal, (int32_t)hp.heads,
                              (int32_t)hp.heads, (int32_t)hp.headDim, 0.0f),
        p + "attn", {qkv[0], qkv[1], qkv[2]}, p + "attn");
    TRY(ow, w.weight(p + "attn_output.weight", {d, d}));
    TRY(ob, w.weight(p + "attn_output.bias", {d}));
    a = w.node(fb::Op::LinearOp, fb::CreateLinearOp(b), p + "attn_output",
               {a, ow, ob}, p + "attn_output");
    x = w.node(fb::Op::AddOp, fb::CreateAddOp(b), p + "residual_1", {x, a},
               p + "mid");
    if (Error e = layerNorm(p + "ffn_norm", x, n))
      return std::move(e);
    TRY(uw, w.weight(p + "ffn_up.weight", {hp.ffn, d}));
    TRY(ub, w.weight(p + "ffn_up.bias", {hp.ffn}));
    TRY(dw, w.weight(p + "ffn_down.weight", {d, hp.ffn}));
    TRY(db, w.weight(p + "ffn_down.bias", {d}));
    std::string f = w.node(fb::Op::FeedForwardOp,
                           fb::CreateFeedForwardOp(b, hp.activation),
                           p + "ffn", {n, uw, ub, dw, db}, p + "ffn");
    x = w.node(fb::Op::AddOp, fb::CreateAddOp(b), p + "residual_2", {x, f},
               "blk." + std::to_string(i + 1) + ".in");
  }
  std::string n;
  if (Error e = layerNorm("output_norm", x, n))
    return std::move(e);
  std::string head = wte;
  if (!hp.tied) {
    TRY(h, w.weight("output.weight", {hp.vocab, d}));
    head = h;
  }
  w.node(fb::Op::LinearOp, fb::CreateLinearOp(b), "output", {n, head, ""},
         "logits");
  return w.finish(hp, tok, fb::Architecture::GPT2);
}

} // namespace

/// llama.cpp's end-of-generation set (llama_vocab::impl::load, "maintain a
/// list of tokens that cause end-of-generation"): the tokens the input
/// names, and every token whose text is one of these (made a control token,
/// as llama.cpp does); sorted, without eos.
void addEndOfGeneration(TokenizerSpec &tok) {
  static const StringRef kEndTexts[] = {"<|eot_id|>",
                                        "<|im_end|>",
                                        "<|end|>",
                                        "<|return|>",
                                        "<|call|>",
                                        "<|flush|>",
                                        "<|calls|>",
                                        "<end_of_turn>",
                                        "<|endoftext|>",
                                        "</s>",
                                        "<|eom_id|>",
                                        "<EOT>",
                                        "_<EOT>",
                                        "[EOT]",
                                        "[EOS]",
                                        "<|end_of_text|>",
                                        "<end_of_utterance>",
                                        "<eos>",
                                        "<turn|>",
                                        "<|tool_response>",
                                        "<｜end▁of▁sentence｜>",
                                        "[e~["};
  for (size_t id = 0; id < tok.tokens.size(); ++id) {
    if (!llvm::is_contained(kEndTexts, StringRef(tok.tokens[id])))
      continue;
    tok.endTokens.push_back((int64_t)id);
    if (id < tok.types.size())
      tok.types[id] = kTokenControl;
  }
  llvm::sort(tok.endTokens);
  tok.endTokens.erase(std::unique(tok.endTokens.begin(), tok.endTokens.end()),
                      tok.endTokens.end());
  llvm::erase(tok.endTokens, tok.eos);
}

/// llama.cpp's fill-in-the-middle tokens (llama_vocab::impl::load, "find
/// FIM_PRE token" ...): per kind, the token whose text is one of the
/// kind's (the lowest id when several are) is made a control token, as
/// llama.cpp does when the file names none, so that such text in a prompt
/// stays text unless special tokens are parsed; FIM_PAD, FIM_REP and
/// FIM_SEP join the end tokens (addEndOfGeneration sorts them).
void markFillInTheMiddle(TokenizerSpec &tok) {
  static const std::vector<std::vector<StringRef>> kKinds = {
      {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
       "<\xef\xbd\x9c"
       "fim\xe2\x96\x81"
       "begin\xef\xbd\x9c>",
       "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>"},
      {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
       "<\xef\xbd\x9c"
       "fim\xe2\x96\x81"
       "hole\xef\xbd\x9c>",
       "<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>"},
      {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
       "<\xef\xbd\x9c"
       "fim\xe2\x96\x81"
       "end\xef\xbd\x9c>",
       "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>"},
      {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"},
      {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"},
      {"<|file_sep|>"}};
  for (auto [kind, texts] : llvm::enumerate(kKinds))
    for (size_t id = 0; id < tok.tokens.size(); ++id)
      if (llvm::is_contained(texts, StringRef(tok.tokens[id]))) {
        if (id < tok.types.size())
          tok.types[id] = kTokenControl;
        // FIM_PAD, FIM_REP and FIM_SEP also end generation (llama.cpp's
        // end-of-generation set).
        if (kind >= 3)
          tok.endTokens.push_back((int64_t)id);
        break;
      }
}

Expected<ConvertedModel> buildKilnModel(const Hyperparameters &hp,
                                        std::unique_ptr<WeightSource> weights,
                                        TokenizerSpec tok,
                                        const ConvertOptions &options) {
  if (Error e = checkHyperparameters(hp))
    return std::move(e);
  markFillInTheMiddle(tok);
  addEndOfGeneration(tok);
  for (int64_t id : tok.endTokens)
    if (id < 0 || id >= hp.vocab)
      return fail("end-of-generation token id " + Twine(id) +
                  " lies outside the vocabulary of " + Twine(hp.vocab));
  if (tok.kind != fb::TokenizerKind::Bytes &&
      (int64_t)tok.tokens.size() != hp.vocab)
    return fail("the tokenizer has " + Twine(tok.tokens.size()) +
                " tokens but the model's vocabulary is " + Twine(hp.vocab));
  for (int64_t id : {tok.bos, tok.eos, tok.pad})
    if (id < -1 || id >= hp.vocab)
      return fail("special token id " + Twine(id) +
                  " lies outside the vocabulary of " + Twine(hp.vocab));
  if (tok.kind != fb::TokenizerKind::Bytes) {
    // The runtime's own checks (merges name tokens, counts match, a GPT-2
    // vocabulary covers every byte), so no file is written that the
    // executable would refuse.
    kiln::rt::ModelFile m;
    m.tokenizer = tok.kind;
    m.vocabSize = hp.vocab;
    m.pieces = tok.tokens;
    m.scores = tok.scores;
    m.merges = tok.merges;
    m.tokenTypes = tok.types;
    if (auto msg = kiln::rt::validateTokenizer(m))
      return fail("the tokenizer is invalid: " + *msg);
  }
  KilnWriter w(std::move(weights), hp, options.dtype, options.quantize);
  WeightSource &source = w.input();
  auto model = hp.family == Family::GPT2 ? buildGPT2(hp, w, tok)
                                         : buildDecoder(hp, w, tok);
  if (!model)
    return model.takeError();
  std::vector<std::string> unread = source.unread();
  if (!unread.empty())
    return fail("the input has tensors this converter does not know what to "
                "do with: " +
                join(ArrayRef(unread).take_front(8), ", ") +
                (unread.size() > 8 ? ", ..." : ""));
  return model;
}

} // namespace kiln::convert
