//===- Builder.cpp - Decoder-only graphs as .kiln files -------------------===//
//
// The converters' common back end: tensor dequantization, and the graphs of
// the Llama and GPT-2 families written as .kiln FlatBuffers, the same graphs
// the Python exporter (kiln_export.export_llama / export_gpt2) writes.
//
//===----------------------------------------------------------------------===//

#include "ConvertInternal.h"
#include "kiln/rt/model.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>
#include <cstring>

using namespace llvm;

namespace kiln::convert {

const char *tensorTypeName(TensorType t) {
  switch (t) {
  case TensorType::F32:
    return "F32";
  case TensorType::F16:
    return "F16";
  case TensorType::BF16:
    return "BF16";
  case TensorType::Q8_0:
    return "Q8_0";
  }
  return "?";
}

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

Expected<uint64_t> storageBytes(TensorType type, uint64_t elements,
                                StringRef what) {
  switch (type) {
  case TensorType::F32:
    return elements * 4;
  case TensorType::F16:
  case TensorType::BF16:
    return elements * 2;
  case TensorType::Q8_0:
    if (elements % 32)
      return fail(what + " is Q8_0 but its " + Twine(elements) +
                  " elements are not a whole number of 32-element blocks");
    return elements / 32 * 34;
  }
  return fail("unknown tensor type");
}

float halfToFloat(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else { // subnormal: normalize
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while (!(mant & 0x400));
      bits = sign | (uint32_t)(127 - 15 - e) << 23 | (mant & 0x3FF) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000 | mant << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

static uint16_t load16(const uint8_t *p) { return p[0] | (uint16_t)p[1] << 8; }

std::vector<float> toF32(const TensorRef &t, bool transpose) {
  uint64_t n = 1;
  for (int64_t d : t.shape)
    n *= (uint64_t)d;
  std::vector<float> out(n);
  const uint8_t *p = t.data;
  switch (t.type) {
  case TensorType::F32:
    std::memcpy(out.data(), p, n * 4);
    break;
  case TensorType::F16:
    for (uint64_t i = 0; i < n; ++i)
      out[i] = halfToFloat(load16(p + 2 * i));
    break;
  case TensorType::BF16:
    for (uint64_t i = 0; i < n; ++i) {
      uint32_t bits = (uint32_t)load16(p + 2 * i) << 16;
      std::memcpy(&out[i], &bits, 4);
    }
    break;
  case TensorType::Q8_0:
    for (uint64_t b = 0; b < n / 32; ++b) {
      const uint8_t *block = p + b * 34;
      float d = halfToFloat(load16(block));
      for (int j = 0; j < 32; ++j)
        out[b * 32 + j] = d * (float)(int8_t)block[2 + j];
    }
    break;
  }
  if (transpose && t.shape.size() == 2) {
    int64_t rows = t.shape[0], cols = t.shape[1];
    std::vector<float> tr(n);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        tr[c * rows + r] = out[r * cols + c];
    out.swap(tr);
  }
  return out;
}

namespace {

/// Builds the FlatBuffer: weights as they are read, then nodes, metadata
/// and tokenizer.
class KilnWriter {
public:
  using Strings = flatbuffers::Offset<
      flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>>;

  /// `reserve`: the bytes the file will take, so the builder does not grow
  /// (and copy itself) while the weights stream in.
  KilnWriter(WeightSource &source, size_t reserve)
      : b(std::max<size_t>(reserve, 1 << 20)), source(source) {}

  /// Reads `name` with `shape` from the source into the file; returns the
  /// weight's name for node inputs.
  Expected<std::string> weight(StringRef name, ArrayRef<int64_t> shape) {
    auto values = source.get(name, shape);
    if (!values)
      return values.takeError();
    return add(name, shape, *values);
  }

  /// A weight from values already read.
  std::string add(StringRef name, ArrayRef<int64_t> shape,
                  ArrayRef<float> values) {
    size_t bytes = values.size() * sizeof(float);
    if (total + bytes > kLimit) {
      tooLarge = true;
      return name.str();
    }
    total += bytes;
    b.ForceVectorAlignment(bytes, 1, 64);
    auto data = b.CreateVector(
        reinterpret_cast<const uint8_t *>(values.data()), bytes);
    weights.push_back(fb::CreateWeight(b, b.CreateString(name.str()),
                                       fb::DType::F32,
                                       b.CreateVector(shape.vec()), data));
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

  Expected<ModelBytes> finish(const Hyperparameters &hp,
                                        const TokenizerSpec &tok,
                                        fb::Architecture arch) {
    if (tooLarge)
      return fail("the converted weights exceed " + Twine(kLimit >> 20) +
                  " MiB, the most a .kiln file holds today (FlatBuffers' "
                  "2 GiB limit)");
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
        tok.types.empty() ? 0 : b.CreateVector(tok.types), tok.addSpacePrefix);
    auto meta = fb::CreateMetadata(
        b, arch, b.CreateString(hp.name), (int32_t)hp.context,
        (int32_t)hp.vocab, (int32_t)tok.bos, (int32_t)tok.eos,
        (int32_t)tok.pad, tok.addBos);
    auto strings = [&](std::initializer_list<const char *> list) {
      std::vector<flatbuffers::Offset<flatbuffers::String>> v;
      for (const char *s : list)
        v.push_back(b.CreateString(s));
      return b.CreateVector(v);
    };
    Strings in = strings({"tokens"}), out = strings({"logits"});
    auto model = fb::CreateModel(b, 1, meta, tokenizer, in, out,
                                 b.CreateVector(nodes), b.CreateVector(weights));
    fb::FinishModelBuffer(b, model);
    auto buffer = std::make_shared<flatbuffers::DetachedBuffer>(b.Release());
    return ModelBytes(buffer, buffer->data(), buffer->size());
  }

  flatbuffers::FlatBufferBuilder b;

private:
  static constexpr size_t kLimit = (size_t(2) << 30) - (size_t(64) << 20);
  WeightSource &source;
  std::vector<flatbuffers::Offset<fb::Weight>> weights;
  std::vector<flatbuffers::Offset<fb::Node>> nodes;
  size_t total = 0;
  bool tooLarge = false;
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
  if (hp.family == Family::Llama && hp.headDim % 2)
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
  if (hp.family == Family::Llama &&
      (!(hp.ropeTheta > 0) || !std::isfinite(hp.ropeTheta)))
    return fail("the RoPE base " + Twine(std::to_string(hp.ropeTheta)) + " must be positive");
  return Error::success();
}

Expected<ModelBytes> buildLlama(const Hyperparameters &hp,
                                          KilnWriter &w,
                                          const TokenizerSpec &tok) {
  auto &b = w.b;
  int64_t d = hp.dim, hd = hp.headDim, qw = hp.heads * hd,
          kvw = hp.kvHeads * hd;
  TRY(emb, w.weight("token_embd.weight", {hp.vocab, d}));
  std::string x = w.node(fb::Op::EmbeddingOp, fb::CreateEmbeddingOp(b),
                         "token_embd", {"tokens", emb}, "blk.0.in");
  for (int64_t i = 0; i < hp.layers; ++i) {
    std::string p = "blk." + std::to_string(i) + ".";
    TRY(g1, w.weight(p + "attn_norm.weight", {d}));
    std::string n =
        w.node(fb::Op::RmsNormOp, fb::CreateRmsNormOp(b, (float)hp.eps),
               p + "attn_norm", {x, g1}, p + "attn_norm");
    std::string qkv[3];
    const char *parts[3] = {"q", "k", "v"};
    int64_t rows[3] = {qw, kvw, kvw};
    for (int j = 0; j < 3; ++j) {
      std::string base = p + "attn_" + parts[j];
      TRY(wt, w.weight(base + ".weight", {rows[j], d}));
      std::string bias;
      if (hp.qkvBias) {
        TRY(bt, w.weight(base + ".bias", {rows[j]}));
        bias = bt;
      }
      qkv[j] = w.node(fb::Op::LinearOp, fb::CreateLinearOp(b), base,
                      {n, wt, bias}, base);
    }
    for (int j = 0; j < 2; ++j)
      qkv[j] = w.node(fb::Op::RopeOp,
                      fb::CreateRopeOp(b, (int32_t)hd, (float)hp.ropeTheta,
                                       hp.ropeStyle),
                      p + "rope_" + parts[j], {qkv[j]},
                      p + "rope_" + parts[j]);
    std::string a = w.node(
        fb::Op::AttentionOp,
        fb::CreateAttentionOp(b, fb::AttentionMode::Causal, (int32_t)hp.heads,
                              (int32_t)hp.kvHeads, (int32_t)hd, 0.0f),
        p + "attn", {qkv[0], qkv[1], qkv[2]}, p + "attn");
    TRY(o, w.weight(p + "attn_output.weight", {d, qw}));
    a = w.node(fb::Op::LinearOp, fb::CreateLinearOp(b), p + "attn_output",
               {a, o, ""}, p + "attn_output");
    x = w.node(fb::Op::AddOp, fb::CreateAddOp(b), p + "residual_1", {x, a},
               p + "mid");
    TRY(g2, w.weight(p + "ffn_norm.weight", {d}));
    n = w.node(fb::Op::RmsNormOp, fb::CreateRmsNormOp(b, (float)hp.eps),
               p + "ffn_norm", {x, g2}, p + "ffn_norm");
    TRY(gate, w.weight(p + "ffn_gate.weight", {hp.ffn, d}));
    TRY(up, w.weight(p + "ffn_up.weight", {hp.ffn, d}));
    TRY(down, w.weight(p + "ffn_down.weight", {d, hp.ffn}));
    std::string f = w.node(
        fb::Op::FeedForwardOp,
        fb::CreateFeedForwardOp(b, fb::Activation::SwiGLU), p + "ffn",
        {n, gate, up, down}, p + "ffn");
    x = w.node(fb::Op::AddOp, fb::CreateAddOp(b), p + "residual_2", {x, f},
               "blk." + std::to_string(i + 1) + ".in");
  }
  TRY(gn, w.weight("output_norm.weight", {d}));
  x = w.node(fb::Op::RmsNormOp, fb::CreateRmsNormOp(b, (float)hp.eps),
             "output_norm", {x, gn}, "output_norm");
  std::string head = emb;
  if (!hp.tied) {
    TRY(h, w.weight("output.weight", {hp.vocab, d}));
    head = h;
  }
  w.node(fb::Op::LinearOp, fb::CreateLinearOp(b), "output", {x, head, ""},
         "logits");
  return w.finish(hp, tok, fb::Architecture::Llama);
}

Expected<ModelBytes> buildGPT2(const Hyperparameters &hp,
                                         KilnWriter &w,
                                         const TokenizerSpec &tok,
                                         WeightSource &source) {
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
    auto qkvW = source.get(p + "attn_qkv.weight", {3 * d, d});
    if (!qkvW)
      return qkvW.takeError();
    auto qkvB = source.get(p + "attn_qkv.bias", {3 * d});
    if (!qkvB)
      return qkvB.takeError();
    std::string qkv[3];
    const char *parts[3] = {"q", "k", "v"};
    for (int j = 0; j < 3; ++j) {
      std::string base = p + "attn_" + parts[j];
      std::string wt =
          w.add(base + ".weight", {d, d},
                ArrayRef<float>(*qkvW).slice(j * d * d, d * d));
      std::string bt =
          w.add(base + ".bias", {d}, ArrayRef<float>(*qkvB).slice(j * d, d));
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

/// The size of the .kiln file: f32 weights (each 64-byte aligned), the
/// tokenizer and a margin for the graph.
size_t estimateFileBytes(const Hyperparameters &hp, const TokenizerSpec &tok) {
  // In double: settings from a hostile file can make the products overflow.
  double d = hp.dim, ffn = hp.ffn, qw = (double)hp.heads * hp.headDim,
         kvw = (double)hp.kvHeads * hp.headDim;
  double perLayer = hp.family == Family::Llama
                        ? 2 * d + d * (qw + 2 * kvw) + qw * d + 3 * d * ffn +
                              (hp.qkvBias ? qw + 2 * kvw : 0)
                        : 4 * d + 3 * d * d + 3 * d + d * d + d +
                              2 * d * ffn + ffn + d;
  double floats = (double)hp.vocab * d * (hp.tied ? 1 : 2) +
                  (double)hp.layers * perLayer + 2 * d +
                  (hp.family == Family::GPT2 ? (double)hp.positions * d : 0);
  // Per weight: up to 63 bytes of alignment, its name, shape and table.
  double bytes = floats * 4 + (double)(hp.layers * 16 + 8) * 512;
  for (const std::string &t : tok.tokens)
    bytes += t.size() + 16;
  for (const std::string &m : tok.merges)
    bytes += m.size() + 8;
  bytes += (double)(tok.scores.size() + tok.types.size()) * 4 + (1 << 20);
  return bytes > 1e18 ? (size_t)1e18 : (size_t)bytes;
}

} // namespace

Expected<ModelBytes> buildKilnModel(const Hyperparameters &hp,
                                              WeightSource &weights,
                                              const TokenizerSpec &tok) {
  if (Error e = checkHyperparameters(hp))
    return std::move(e);
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
  // The estimate follows the settings, which a hostile file can inflate;
  // the input's own tensors bound it (their shapes are checked).
  size_t reserve = std::min<uint64_t>(estimateFileBytes(hp, tok),
                                      weights.totalElements() * 4 +
                                          (uint64_t(8) << 20));
  KilnWriter w(weights, reserve);
  auto bytes = hp.family == Family::Llama ? buildLlama(hp, w, tok)
                                          : buildGPT2(hp, w, tok, weights);
  if (!bytes)
    return bytes.takeError();
  std::vector<std::string> unread = weights.unread();
  if (!unread.empty())
    return fail("the input has tensors this converter does not know what to "
                "do with: " +
                join(ArrayRef(unread).take_front(8), ", ") +
                (unread.size() > 8 ? ", ..." : ""));
  return bytes;
}

} // namespace kiln::convert
