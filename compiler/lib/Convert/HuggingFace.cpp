//===- HuggingFace.cpp - Hugging Face model directories -> .kiln ----------===//
//
// config.json (architecture and settings), model.safetensors or a sharded
// model.safetensors.index.json (weights), tokenizer.json (BPE vocabulary,
// merges, added tokens, normalizer / pre-tokenizer) and, when present,
// tokenizer_config.json (add_bos_token).
//
// safetensors: an 8-byte little-endian header length, a JSON header mapping
// tensor names to {dtype, shape, data_offsets: [begin, end]} relative to the
// end of the header, then the data.
//
//===----------------------------------------------------------------------===//

#include "ConvertInternal.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <tuple>

using namespace llvm;

namespace kiln::convert {
namespace {

Expected<json::Value> readJSON(StringRef path) {
  auto buf = MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buf)
    return fail("cannot read '" + path + "': " + buf.getError().message());
  return parseJSON((*buf)->getBuffer(), "'" + path + "'");
}

/// `dir`/`name` parsed, or nothing when the directory has no such file.
Expected<std::optional<json::Value>> readOptionalJSON(StringRef dir,
                                                      StringRef name) {
  SmallString<256> path(dir);
  sys::path::append(path, name);
  if (!sys::fs::exists(path))
    return std::nullopt;
  auto j = readJSON(path);
  if (!j)
    return j.takeError();
  return std::optional<json::Value>(std::move(*j));
}

//===----------------------------------------------------------------------===//
// safetensors
//===----------------------------------------------------------------------===//

struct SafetensorsFile {
  std::unique_ptr<MemoryBuffer> buffer;
  std::map<std::string, TensorRef> tensors;
  std::map<std::string, std::string> dtypes; ///< as written, for --info
};

Error openSafetensors(StringRef path, SafetensorsFile &out) {
  auto buf = MemoryBuffer::getFile(path, /*IsText=*/false,
                                   /*RequiresNullTerminator=*/false);
  if (!buf)
    return fail("cannot read '" + path + "': " + buf.getError().message());
  out.buffer = std::move(*buf);
  const uint8_t *data =
      reinterpret_cast<const uint8_t *>(out.buffer->getBufferStart());
  uint64_t size = out.buffer->getBufferSize(), headerLen = 0;
  if (size < 8)
    return fail("'" + path + "' is truncated: no safetensors header");
  std::memcpy(&headerLen, data, 8);
  if (headerLen > size - 8 || headerLen > (uint64_t(100) << 20))
    return fail("'" + path + "' is truncated or not safetensors: its header "
                "claims " + Twine(headerLen) + " bytes of " + Twine(size));
  StringRef header(reinterpret_cast<const char *>(data + 8), headerLen);
  auto parsed = parseJSON(header, "the safetensors header of '" + path + "'");
  if (!parsed)
    return parsed.takeError();
  const json::Object *obj = parsed->getAsObject();
  if (!obj)
    return fail("'" + path + "': the safetensors header is not an object");
  uint64_t base = 8 + headerLen, dataSize = size - base;
  std::vector<std::tuple<uint64_t, uint64_t, std::string>> spans;
  for (const auto &[key, value] : *obj) {
    std::string name = key.str();
    if (name == "__metadata__")
      continue;
    const json::Object *t = value.getAsObject();
    auto bad = [&](const Twine &why) {
      return fail("'" + path + "': tensor '" + name + "' " + why);
    };
    if (!t)
      return bad("is not an object");
    std::optional<StringRef> dtype = t->getString("dtype");
    const json::Array *shape = t->getArray("shape");
    const json::Array *offsets = t->getArray("data_offsets");
    if (!dtype || !shape || !offsets || offsets->size() != 2)
      return bad("lacks dtype, shape or data_offsets");
    TensorRef ref;
    ref.name = name;
    if (*dtype == "F32")
      ref.type = fb::DType::F32;
    else if (*dtype == "F16")
      ref.type = fb::DType::F16;
    else if (*dtype == "BF16")
      ref.type = fb::DType::BF16;
    out.dtypes[name] = dtype->str();
    bool supported = *dtype == "F32" || *dtype == "F16" || *dtype == "BF16";
    for (const json::Value &d : *shape) {
      std::optional<int64_t> n = d.getAsInteger();
      if (!n || *n < 0)
        return bad("has an invalid shape");
      ref.shape.push_back(*n);
    }
    std::optional<int64_t> begin = (*offsets)[0].getAsInteger(),
                           end = (*offsets)[1].getAsInteger();
    if (!begin || !end || *begin < 0 || *end < *begin ||
        (uint64_t)*end > dataSize)
      return bad("has data offsets outside the file (truncated?)");
    if (supported) {
      uint64_t n = 1;
      for (int64_t d : ref.shape)
        if (__builtin_mul_overflow(n, (uint64_t)d, &n))
          return bad("has a shape whose size overflows");
      uint64_t bytes = n * (ref.type == fb::DType::F32 ? 4 : 2);
      if (bytes != (uint64_t)(*end - *begin))
        return bad("holds " + Twine(*end - *begin) +
                   " bytes but its dtype and shape need " + Twine(bytes));
      ref.data = data + base + *begin;
      ref.bytes = bytes;
    }
    out.tensors[name] = std::move(ref);
    spans.push_back({(uint64_t)*begin, (uint64_t)*end, name});
  }
  // Tensors must not share bytes (safetensors' own rule).
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i)
    if (std::get<0>(spans[i]) < std::get<1>(spans[i - 1]))
      return fail("'" + path + "': tensors '" + std::get<2>(spans[i - 1]) +
                  "' and '" + std::get<2>(spans[i]) + "' overlap");
  return Error::success();
}

/// All tensors of a directory: model.safetensors, or the shards named by
/// model.safetensors.index.json.
struct Checkpoint {
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  std::map<std::string, const TensorRef *> tensors;
  std::map<std::string, std::string> dtypes;
};

Error openCheckpoint(StringRef dir, Checkpoint &out) {
  SmallString<256> single(dir), index(dir);
  sys::path::append(single, "model.safetensors");
  sys::path::append(index, "model.safetensors.index.json");
  std::vector<std::string> shards;
  std::map<std::string, std::string> indexed; ///< tensor -> shard
  if (sys::fs::exists(single)) {
    shards.push_back(single.str().str());
  } else if (sys::fs::exists(index)) {
    auto j = readJSON(index);
    if (!j)
      return j.takeError();
    const json::Object *map =
        j->getAsObject() ? j->getAsObject()->getObject("weight_map") : nullptr;
    if (!map)
      return fail("'" + index + "' has no weight_map object");
    std::set<std::string> names;
    for (const auto &[name, file] : *map) {
      std::optional<StringRef> f = file.getAsString();
      if (!f || f->contains('/') || f->contains('\\') || *f == ".." ||
          *f == ".")
        return fail("'" + index + "': tensor '" + name.str() +
                    "' names an invalid shard file");
      names.insert(f->str());
      indexed[name.str()] = f->str();
    }
    for (const std::string &n : names) {
      SmallString<256> p(dir);
      sys::path::append(p, n);
      shards.push_back(p.str().str());
    }
  } else {
    return fail("'" + dir + "' has neither model.safetensors nor "
                "model.safetensors.index.json (PyTorch .bin checkpoints are "
                "not read; save with safe_serialization=True)");
  }
  for (const std::string &s : shards) {
    auto file = std::make_unique<SafetensorsFile>();
    if (Error e = openSafetensors(s, *file))
      return e;
    for (auto &[name, ref] : file->tensors) {
      if (out.tensors.count(name))
        return fail("tensor '" + name + "' appears in two shards");
      out.tensors[name] = &ref;
      out.dtypes[name] = file->dtypes[name];
    }
    out.files.push_back(std::move(file));
  }
  // The index and the shards must agree.
  for (const auto &[name, shard] : indexed)
    if (!out.tensors.count(name))
      return fail("'" + index + "' places tensor '" + name + "' in " + shard +
                  ", which does not hold it");
  return Error::success();
}

/// Maps canonical (GGUF) names to the checkpoint's names and layouts.
class HFWeights : public WeightSource {
public:
  HFWeights(std::shared_ptr<const Checkpoint> c, Family family)
      : owner(std::move(c)), ckpt(*owner), family(family) {}

  bool has(StringRef name) const override {
    auto [hf, transpose] = map(name);
    return ckpt.tensors.count(hf);
  }

  Expected<SourceTensor> find(StringRef name,
                              ArrayRef<int64_t> shape) override {
    auto [hf, transpose] = map(name);
    auto it = ckpt.tensors.find(hf);
    if (it == ckpt.tensors.end())
      return fail("the checkpoint lacks tensor '" + hf + "'");
    const TensorRef &t = *it->second;
    if (!t.data)
      return fail("tensor '" + hf + "' has dtype " + ckpt.dtypes.at(hf) +
                  ", which kiln-convert does not read (supported: F32, F16, "
                  "BF16)");
    std::vector<int64_t> have = t.shape;
    if (transpose && have.size() == 2)
      std::swap(have[0], have[1]);
    if (ArrayRef<int64_t>(have) != shape)
      return fail("tensor '" + hf + "' has shape [" +
                  join(map_range(t.shape, [](int64_t d) { return itostr(d); }),
                       ", ") +
                  "] but the config needs [" +
                  join(map_range(shape, [](int64_t d) { return itostr(d); }),
                       ", ") +
                  "]" + (transpose ? " transposed" : ""));
    read.insert(hf);
    return SourceTensor{&t, transpose && t.shape.size() == 2};
  }

  uint64_t totalElements() const override {
    uint64_t total = 0;
    for (const auto &[name, ref] : ckpt.tensors)
      total += ref->bytes / 2; // F32: twice the elements; enough for a bound
    return total;
  }

  std::vector<std::string> unread() const override {
    std::vector<std::string> out;
    for (const auto &[name, ref] : ckpt.tensors) {
      StringRef n(name);
      // Buffers older checkpoints carry; the tied LM head's copy.
      if (read.count(name) || n.ends_with(".attn.bias") ||
          n.ends_with(".attn.masked_bias") ||
          n.ends_with("rotary_emb.inv_freq") ||
          (n == "lm_head.weight" && tiedHead))
        continue;
      out.push_back(name);
    }
    return out;
  }

  bool tiedHead = false;

private:
  /// canonical -> (checkpoint name, stored transposed)
  std::pair<std::string, bool> map(StringRef name) const {
    if (family != Family::GPT2) {
      if (name == "token_embd.weight")
        return {"model.embed_tokens.weight", false};
      if (name == "output_norm.weight")
        return {"model.norm.weight", false};
      if (name == "output.weight")
        return {"lm_head.weight", false};
      static const std::map<std::string, std::string> parts = {
          {"attn_norm.weight", "input_layernorm.weight"},
          {"attn_q.weight", "self_attn.q_proj.weight"},
          {"attn_k.weight", "self_attn.k_proj.weight"},
          {"attn_v.weight", "self_attn.v_proj.weight"},
          {"attn_q.bias", "self_attn.q_proj.bias"},
          {"attn_k.bias", "self_attn.k_proj.bias"},
          {"attn_v.bias", "self_attn.v_proj.bias"},
          {"attn_q_norm.weight", "self_attn.q_norm.weight"},
          {"attn_k_norm.weight", "self_attn.k_norm.weight"},
          {"attn_output.weight", "self_attn.o_proj.weight"},
          {"ffn_gate.weight", "mlp.gate_proj.weight"},
          {"ffn_up.weight", "mlp.up_proj.weight"},
          {"ffn_down.weight", "mlp.down_proj.weight"}};
      // Llama's norm after attention is the feed-forward's; Gemma 3 has
      // both, and one after the feed-forward.
      static const std::map<std::string, std::string> llamaNorms = {
          {"ffn_norm.weight", "post_attention_layernorm.weight"}};
      static const std::map<std::string, std::string> gemmaNorms = {
          {"post_attention_norm.weight", "post_attention_layernorm.weight"},
          {"ffn_norm.weight", "pre_feedforward_layernorm.weight"},
          {"post_ffw_norm.weight", "post_feedforward_layernorm.weight"}};
      auto [layer, part] = splitLayer(name);
      const auto &norms = family == Family::Gemma3 ? gemmaNorms : llamaNorms;
      for (const auto *table : {&parts, &norms})
        if (auto it = table->find(part); !layer.empty() && it != table->end())
          return {"model.layers." + layer + "." + it->second, false};
      return {name.str(), false};
    }
    // GPT-2: Conv1D weights are stored [in, out].
    if (name == "token_embd.weight")
      return {prefix() + "wte.weight", false};
    if (name == "position_embd.weight")
      return {prefix() + "wpe.weight", false};
    if (name == "output_norm.weight" || name == "output_norm.bias")
      return {prefix() + "ln_f." + name.split('.').second.str(), false};
    if (name == "output.weight")
      return {"lm_head.weight", false};
    static const std::map<std::string, std::pair<std::string, bool>> parts = {
        {"attn_norm.weight", {"ln_1.weight", false}},
        {"attn_norm.bias", {"ln_1.bias", false}},
        {"attn_qkv.weight", {"attn.c_attn.weight", true}},
        {"attn_qkv.bias", {"attn.c_attn.bias", false}},
        {"attn_output.weight", {"attn.c_proj.weight", true}},
        {"attn_output.bias", {"attn.c_proj.bias", false}},
        {"ffn_norm.weight", {"ln_2.weight", false}},
        {"ffn_norm.bias", {"ln_2.bias", false}},
        {"ffn_up.weight", {"mlp.c_fc.weight", true}},
        {"ffn_up.bias", {"mlp.c_fc.bias", false}},
        {"ffn_down.weight", {"mlp.c_proj.weight", true}},
        {"ffn_down.bias", {"mlp.c_proj.bias", false}}};
    auto [layer, part] = splitLayer(name);
    auto it = parts.find(part);
    if (!layer.empty() && it != parts.end())
      return {prefix() + "h." + layer + "." + it->second.first,
              it->second.second};
    return {name.str(), false};
  }

  /// GPT2LMHeadModel's names start with "transformer."; GPT2Model's not.
  std::string prefix() const {
    return ckpt.tensors.count("transformer.wte.weight") ? "transformer." : "";
  }

  static std::pair<std::string, std::string> splitLayer(StringRef name) {
    if (!name.consume_front("blk."))
      return {"", ""};
    auto [layer, part] = name.split('.');
    return {layer.str(), part.str()};
  }

  std::shared_ptr<const Checkpoint> owner;
  const Checkpoint &ckpt;
  Family family;
  StringSet<> read;
};

//===----------------------------------------------------------------------===//
// config.json
//===----------------------------------------------------------------------===//

class Config {
public:
  explicit Config(const json::Object &o) : o(o) {}
  Expected<int64_t> integer(StringRef key, std::optional<int64_t> fallback =
                                               std::nullopt) const {
    const json::Value *v = o.get(key);
    if (!v || v->kind() == json::Value::Null) {
      if (fallback)
        return *fallback;
      return fail("config.json lacks '" + key + "'");
    }
    std::optional<int64_t> i = v->getAsInteger();
    if (!i)
      return fail("config.json: '" + key + "' is not an integer");
    return *i;
  }
  Expected<double> number(StringRef key, double fallback) const {
    const json::Value *v = o.get(key);
    if (!v || v->kind() == json::Value::Null)
      return fallback;
    std::optional<double> d = v->getAsNumber();
    if (!d)
      return fail("config.json: '" + key + "' is not a number");
    return *d;
  }
  bool flag(StringRef key, bool fallback) const {
    const json::Value *v = o.get(key);
    std::optional<bool> b = v ? v->getAsBoolean() : std::nullopt;
    return b ? *b : fallback;
  }
  /// Every id of an id or a list of ids (eos_token_id may be a list).
  std::vector<int64_t> tokenIds(StringRef key) const {
    std::vector<int64_t> ids;
    const json::Value *v = o.get(key);
    const json::Array *a = v ? v->getAsArray() : nullptr;
    for (const json::Value &e : a ? *a : ArrayRef<json::Value>(v, v ? 1 : 0))
      if (std::optional<int64_t> i = e.getAsInteger())
        ids.push_back(*i);
    return ids;
  }
  /// A token id, or the first of a list (eos_token_id may be a list).
  int64_t tokenId(StringRef key) const {
    const json::Value *v = o.get(key);
    if (!v)
      return -1;
    if (const json::Array *a = v->getAsArray())
      v = a->empty() ? nullptr : &a->front();
    std::optional<int64_t> i = v ? v->getAsInteger() : std::nullopt;
    return i ? *i : -1;
  }
  const json::Object &o;
};

Expected<std::string> architecture(const json::Object &config) {
  const json::Array *archs = config.getArray("architectures");
  std::optional<StringRef> arch;
  if (archs && !archs->empty())
    arch = archs->front().getAsString();
  if (!arch) { // fall back on model_type
    std::optional<StringRef> type = config.getString("model_type");
    if (type == "gpt2")
      return std::string("GPT2LMHeadModel");
    if (type == "llama")
      return std::string("LlamaForCausalLM");
    if (type == "mistral")
      return std::string("MistralForCausalLM");
    if (type == "qwen2")
      return std::string("Qwen2ForCausalLM");
    if (type == "qwen3")
      return std::string("Qwen3ForCausalLM");
    if (type == "gemma3_text")
      return std::string("Gemma3ForCausalLM");
    return fail("config.json names no architecture (architectures or "
                "model_type)");
  }
  return arch->str();
}

/// Gemma3ForCausalLM past what it shares with Llama (sizes, RoPE): local
/// layers (layer_types "sliding_attention", or all but every
/// sliding_window_pattern-th) over sliding_window with base
/// rope_local_base_freq and no scaling, q scaled by
/// query_pre_attn_scalar^-1/2, embeddings by sqrt(hidden_size), norm gains
/// 1 + w, GeGLU with tanh GELU, tied head.
Expected<Hyperparameters> gemma3Hyperparameters(const json::Object &o,
                                                Hyperparameters hp) {
  Config c(o);
  std::string act = "gelu_pytorch_tanh";
  for (const char *key : {"hidden_activation", "hidden_act"})
    if (std::optional<StringRef> a = o.getString(key)) {
      act = a->str();
      break;
    }
  if (act != "gelu_pytorch_tanh" && act != "gelu_tanh")
    return fail("config.json: hidden_activation '" + act +
                "' is not supported for Gemma3ForCausalLM (supported: "
                "gelu_pytorch_tanh)");
  for (const char *key : {"final_logit_softcapping", "attn_logit_softcapping"})
    if (const json::Value *v = o.get(key); v && v->kind() != json::Value::Null)
      return fail(Twine("config.json: ") + key + " is not supported");
  if (c.flag("attention_bias", false))
    return fail("config.json: attention_bias is not supported for "
                "Gemma3ForCausalLM");
  auto window = c.integer("sliding_window", int64_t(4096));
  auto pattern = c.integer("sliding_window_pattern", int64_t(6));
  auto scalar = c.number("query_pre_attn_scalar", 256.0);
  auto local = c.number("rope_local_base_freq", 10000.0);
  if (!window)
    return window.takeError();
  if (!pattern)
    return pattern.takeError();
  if (!scalar)
    return scalar.takeError();
  if (!local)
    return local.takeError();
  if (*window <= 0 || *pattern <= 0 || !(*scalar > 0) || !(*local > 0))
    return fail("config.json: sliding_window, sliding_window_pattern, "
                "query_pre_attn_scalar and rope_local_base_freq must be "
                "positive");
  hp.layerWindows.assign(hp.layers, 0);
  if (const json::Array *types = o.getArray("layer_types")) {
    if ((int64_t)types->size() != hp.layers)
      return fail("config.json: layer_types has " + Twine(types->size()) +
                  " entries for " + Twine(hp.layers) + " layers");
    for (int64_t i = 0; i < hp.layers; ++i) {
      std::optional<StringRef> t = (*types)[i].getAsString();
      if (t == "sliding_attention")
        hp.layerWindows[i] = *window;
      else if (t != "full_attention")
        return fail("config.json: layer_types[" + Twine(i) + "] '" +
                    (t ? *t : StringRef("?")) +
                    "' is not supported (supported: sliding_attention, "
                    "full_attention)");
    }
  } else {
    for (int64_t i = 0; i < hp.layers; ++i)
      if ((i + 1) % *pattern)
        hp.layerWindows[i] = *window;
  }
  hp.ropeLocalTheta = *local;
  hp.attnScale = 1.0 / std::sqrt(*scalar);
  hp.embedScale = std::sqrt((double)hp.dim);
  hp.normAddend = 1.0f;
  hp.tied = c.flag("tie_word_embeddings", true);
  hp.ropeStyle = fb::RopeStyle::RotateHalf;
  return hp;
}

Expected<Hyperparameters> hyperparameters(const json::Object &o,
                                          StringRef arch) {
  Config c(o);
  Hyperparameters hp;
  auto take = [](Expected<int64_t> v, int64_t &out) -> Error {
    if (!v)
      return v.takeError();
    out = *v;
    return Error::success();
  };
  if (arch == "GPT2LMHeadModel") {
    hp.family = Family::GPT2;
    for (auto [key, out] : {std::pair<const char *, int64_t *>{"n_embd", &hp.dim},
                            {"n_layer", &hp.layers},
                            {"n_head", &hp.heads},
                            {"n_positions", &hp.context},
                            {"vocab_size", &hp.vocab}})
      if (Error e = take(c.integer(key), *out))
        return std::move(e);
    if (hp.heads <= 0 || hp.dim % hp.heads)
      return fail("config.json: n_embd " + Twine(hp.dim) +
                  " is not a multiple of n_head " + Twine(hp.heads));
    if (Error e = take(c.integer("n_inner", 4 * hp.dim), hp.ffn))
      return std::move(e);
    hp.kvHeads = hp.heads;
    hp.headDim = hp.dim / hp.heads;
    hp.positions = hp.context;
    auto eps = c.number("layer_norm_epsilon", 1e-5);
    if (!eps)
      return eps.takeError();
    hp.eps = *eps;
    std::string act = "gelu_new";
    if (std::optional<StringRef> a = o.getString("activation_function"))
      act = a->str();
    static const std::map<std::string, fb::Activation> acts = {
        {"gelu_new", fb::Activation::GELUTanh},
        {"gelu_pytorch_tanh", fb::Activation::GELUTanh},
        {"gelu", fb::Activation::GELU},
        {"relu", fb::Activation::ReLU},
        {"silu", fb::Activation::SiLU},
        {"swish", fb::Activation::SiLU}};
    auto it = acts.find(act);
    if (it == acts.end())
      return fail("config.json: activation_function '" + act +
                  "' is not supported (supported: gelu_new, "
                  "gelu_pytorch_tanh, gelu, relu, silu)");
    hp.activation = it->second;
    if (c.flag("add_cross_attention", false))
      return fail("config.json: add_cross_attention is not supported");
    if (!c.flag("scale_attn_weights", true) ||
        c.flag("scale_attn_by_inverse_layer_idx", false) ||
        c.flag("reorder_and_upcast_attn", false))
      return fail("config.json: scale_attn_weights=false, "
                  "scale_attn_by_inverse_layer_idx and "
                  "reorder_and_upcast_attn are not supported");
    hp.tied = c.flag("tie_word_embeddings", true);
    return hp;
  }
  bool llama = arch == "LlamaForCausalLM",
       mistral = arch == "MistralForCausalLM",
       qwen2 = arch == "Qwen2ForCausalLM", qwen3 = arch == "Qwen3ForCausalLM",
       gemma3 = arch == "Gemma3ForCausalLM";
  if (!llama && !mistral && !qwen2 && !qwen3 && !gemma3)
    return fail("architecture '" + arch +
                "' is not supported (supported: GPT2LMHeadModel, "
                "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, "
                "Qwen3ForCausalLM, Gemma3ForCausalLM)");
  hp.qkNorm = qwen3;
  hp.family = gemma3 ? Family::Gemma3 : Family::Llama;
  for (auto [key, out] :
       {std::pair<const char *, int64_t *>{"hidden_size", &hp.dim},
        {"intermediate_size", &hp.ffn},
        {"num_hidden_layers", &hp.layers},
        {"num_attention_heads", &hp.heads},
        {"vocab_size", &hp.vocab},
        {"max_position_embeddings", &hp.context}})
    if (Error e = take(c.integer(key), *out))
      return std::move(e);
  if (Error e = take(c.integer("num_key_value_heads", hp.heads), hp.kvHeads))
    return std::move(e);
  if (hp.heads <= 0)
    return fail("config.json: num_attention_heads must be positive");
  if (Error e = take(c.integer("head_dim", gemma3 ? 256 : hp.dim / hp.heads),
                     hp.headDim))
    return std::move(e);
  if (!o.get("head_dim") && !gemma3 && hp.dim % hp.heads)
    return fail("config.json: hidden_size " + Twine(hp.dim) +
                " is not a multiple of num_attention_heads " +
                Twine(hp.heads));
  auto eps = c.number("rms_norm_eps", 1e-6);
  if (!eps)
    return eps.takeError();
  hp.eps = *eps;
  // RoPE: rope_theta and rope_scaling, or transformers 5's rope_parameters
  // holding both.
  const json::Object *rp = o.getObject("rope_parameters");
  double theta = 10000.0;
  if (rp)
    if (std::optional<double> t = rp->getNumber("rope_theta"))
      theta = *t;
  auto th = c.number("rope_theta", theta);
  if (!th)
    return th.takeError();
  hp.ropeTheta = *th;
  const json::Value *rs = o.get("rope_scaling");
  if (rs && rs->kind() == json::Value::Null)
    rs = nullptr;
  if (rs && !rs->getAsObject())
    return fail("config.json: rope_scaling is not an object");
  if (const json::Object *so = rs ? rs->getAsObject() : rp) {
    Config sc(*so);
    RopeScaling scaling;
    std::optional<StringRef> kind = so->getString("rope_type");
    if (!kind)
      kind = so->getString("type");
    scaling.type = kind ? kind->str() : "default";
    if (scaling.type == "default")
      scaling.type = "none";
    double context = (double)hp.context;
    for (auto [key, out, fallback] :
         {std::tuple<const char *, double *, double>{"factor", &scaling.factor,
                                                     0.0},
          {"low_freq_factor", &scaling.lowFreqFactor, 0.0},
          {"high_freq_factor", &scaling.highFreqFactor, 0.0},
          {"original_max_position_embeddings", &scaling.originalContext,
           scaling.type == "yarn" ? context : 0.0},
          {"beta_fast", &scaling.betaFast, 32.0},
          {"beta_slow", &scaling.betaSlow, 1.0},
          {"mscale", &scaling.mscale, 0.0},
          {"mscale_all_dim", &scaling.mscaleAllDim, 0.0}}) {
      auto v = sc.number(key, fallback);
      if (!v)
        return v.takeError();
      *out = *v;
    }
    if (const json::Value *af = so->get("attention_factor");
        af && af->kind() != json::Value::Null) {
      std::optional<double> v = af->getAsNumber();
      if (!v)
        return fail(
            "config.json: rope_scaling attention_factor is not a number");
      scaling.attentionFactor = *v;
    }
    scaling.truncate = sc.flag("truncate", true);
    if (Error e = applyRopeScaling(scaling, hp, "config.json"))
      return std::move(e);
  }
  if (gemma3)
    return gemma3Hyperparameters(o, std::move(hp));
  std::string act = "silu";
  if (std::optional<StringRef> a = o.getString("hidden_act"))
    act = a->str();
  if (act != "silu")
    return fail("config.json: hidden_act '" + act +
                "' is not supported (supported: silu)");
  if (c.flag("mlp_bias", false))
    return fail("config.json: mlp_bias is not supported");
  hp.qkvBias = qwen2 || c.flag("attention_bias", false);
  if (qwen3 && c.flag("attention_bias", false))
    return fail("config.json: attention_bias (with an o_proj bias) is not "
                "supported for Qwen3ForCausalLM");
  if (llama && c.flag("attention_bias", false))
    return fail("config.json: attention_bias (with an o_proj bias) is not "
                "supported for LlamaForCausalLM");
  hp.tied = c.flag("tie_word_embeddings", false);
  // Mistral: every layer attends over a sliding window (none when it holds
  // the whole context). Qwen2/3 with use_sliding_window (no released model)
  // window only their upper layers; within the window that equals full
  // attention, so there the context is capped at the window.
  bool qwenSliding = (qwen2 || qwen3) && c.flag("use_sliding_window", false);
  if (mistral || qwenSliding) {
    auto window = c.integer("sliding_window", int64_t(0));
    if (!window)
      return window.takeError();
    if (*window < 0)
      return fail("config.json: sliding_window must not be negative, got " +
                  Twine(*window));
    if (*window > 0 && *window < hp.context) {
      if (mistral)
        hp.layerWindows.assign(hp.layers, *window);
      else
        hp.context = *window;
    }
  }
  hp.ropeStyle = fb::RopeStyle::RotateHalf; // Hugging Face's q/k layout
  return hp;
}

//===----------------------------------------------------------------------===//
// tokenizer.json
//===----------------------------------------------------------------------===//

/// Collects the types of a normalizer / pre-tokenizer / decoder tree.
void collectTypes(const json::Value *v, std::vector<const json::Object *> &out) {
  const json::Object *o = v ? v->getAsObject() : nullptr;
  if (!o)
    return;
  out.push_back(o);
  for (StringRef list : {"normalizers", "pretokenizers", "decoders"})
    if (const json::Array *a = o->getArray(list))
      for (const json::Value &item : *a)
        collectTypes(&item, out);
}

std::string typeName(const json::Object *o) {
  std::optional<StringRef> t = o->getString("type");
  return t ? t->str() : std::string("?");
}

Expected<TokenizerSpec> hfTokenizer(StringRef dir, int64_t vocab,
                                    const Config &config, Family family) {
  SmallString<256> path(dir);
  sys::path::append(path, "tokenizer.json");
  if (!sys::fs::exists(path))
    return fail("'" + dir + "' has no tokenizer.json");
  auto j = readJSON(path);
  if (!j)
    return j.takeError();
  const json::Object *root = j->getAsObject();
  const json::Object *model = root ? root->getObject("model") : nullptr;
  if (!model)
    return fail("tokenizer.json has no model object");
  std::optional<StringRef> type = model->getString("type");
  if (!type || *type != "BPE")
    return fail("tokenizer.json model type '" +
                (type ? type->str() : std::string("?")) +
                "' is not supported (supported: BPE)");
  TokenizerSpec tok;
  std::vector<const json::Object *> norm, pre;
  collectTypes(root->get("normalizer"), norm);
  collectTypes(root->get("pre_tokenizer"), pre);
  bool byteLevel = false, prepend = false, replaceSpace = false;
  bool byteLevelRegex = true, splitAtSpace = false;
  std::optional<fb::PreTokenizer> split;
  // The Split regexes Kiln matches by hand (as llama.cpp does), exactly as
  // the models' tokenizer.json files write them.
  static const std::pair<StringRef, fb::PreTokenizer> kSplits[] = {
      {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
       "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
       "\\s+(?!\\S)|\\s+",
       fb::PreTokenizer::Llama3},
      {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
       "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
       "\\s+(?!\\S)|\\s+",
       fb::PreTokenizer::Qwen2}};
  for (const json::Object *p : pre) {
    std::string t = typeName(p);
    if (t == "ByteLevel") {
      byteLevel = true;
      if (p->getBoolean("add_prefix_space").value_or(false))
        return fail("tokenizer.json: ByteLevel add_prefix_space=true is not "
                    "supported");
      byteLevelRegex = p->getBoolean("use_regex").value_or(true);
    } else if (t == "Split") {
      const json::Object *pat = p->getObject("pattern");
      std::optional<StringRef> re =
          pat ? pat->getString("Regex") : std::nullopt;
      if (!re && pat && pat->getString("String") == StringRef(" ")) {
        // Gemma: a split at spaces after a normalizer that replaced every
        // space by U+2581 (checked below) finds nothing to split.
        splitAtSpace = true;
        continue;
      }
      if (!re)
        return fail("tokenizer.json: a Split pre-tokenizer without a Regex "
                    "pattern is not supported");
      auto known =
          llvm::find_if(kSplits, [&](const auto &k) { return k.first == *re; });
      if (known == std::end(kSplits))
        return fail("tokenizer.json: the Split pre-tokenizer regex '" + *re +
                    "' is not supported (supported: Llama 3's and "
                    "Qwen2's)");
      if (p->getString("behavior") != StringRef("Isolated") ||
          p->getBoolean("invert").value_or(false))
        return fail("tokenizer.json: a Split pre-tokenizer other than "
                    "behavior Isolated, invert false is not supported");
      split = known->second;
    } else if (t == "Metaspace") {
      // Non-legacy Llama tokenizers prepend U+2581 only when the text does
      // not start with a space, and their decoder does not invert that;
      // refused rather than tokenized slightly differently.
      return fail("tokenizer.json: the Metaspace pre-tokenizer (non-legacy "
                  "Llama tokenizers) is not supported yet; supported: "
                  "GPT-2's ByteLevel, and the legacy Llama normalizer "
                  "(Prepend U+2581 + Replace ' ' -> U+2581)");
    } else if (t != "Sequence") {
      return fail("tokenizer.json pre-tokenizer '" + t +
                  "' is not supported (supported: ByteLevel)");
    }
  }
  if (byteLevel && split && byteLevelRegex)
    return fail("tokenizer.json: a Split regex followed by a ByteLevel "
                "pre-tokenizer with its own regex (use_regex=true) is not "
                "supported");
  if (byteLevel && !split && !byteLevelRegex)
    return fail("tokenizer.json: a ByteLevel pre-tokenizer without its regex "
                "(use_regex=false) and no Split regex before it is not "
                "supported");
  if (split && !byteLevel)
    return fail("tokenizer.json: a Split regex without a ByteLevel "
                "pre-tokenizer is not supported");
  for (const json::Object *n : norm) {
    std::string t = typeName(n);
    if (t == "NFC" && byteLevel) {
      // Qwen2/Qwen3: NFC composition is not applied, as llama.cpp does not
      // (text already in NFC, nearly all text, tokenizes identically).
      continue;
    }
    if (t == "Prepend") {
      prepend = n->getString("prepend") == StringRef("\xe2\x96\x81");
      if (!prepend)
        return fail("tokenizer.json: a Prepend normalizer other than U+2581 "
                    "is not supported");
    } else if (t == "Replace") {
      const json::Object *pat = n->getObject("pattern");
      if (!pat || pat->getString("String") != StringRef(" ") ||
          n->getString("content") != StringRef("\xe2\x96\x81"))
        return fail("tokenizer.json: a Replace normalizer other than ' ' -> "
                    "U+2581 is not supported");
      replaceSpace = true;
    } else if (t != "Sequence") {
      return fail("tokenizer.json normalizer '" + t +
                  "' is not supported (supported: Prepend, Replace as in "
                  "Llama)");
    }
  }
  if (splitAtSpace && !replaceSpace)
    return fail("tokenizer.json: a Split at spaces without a normalizer "
                "that replaces spaces by U+2581 is not supported");
  if (byteLevel) {
    tok.kind = fb::TokenizerKind::GPT2BPE;
    tok.preTokenizer = split.value_or(fb::PreTokenizer::GPT2);
    tok.ignoreMerges = model->getBoolean("ignore_merges").value_or(false);
  } else if (replaceSpace) {
    tok.kind = fb::TokenizerKind::SentencePieceBPE;
    tok.addSpacePrefix = prepend;
    if (!model->getBoolean("byte_fallback").value_or(false))
      return fail("tokenizer.json: a SentencePiece-style BPE without "
                  "byte_fallback is not supported");
  } else {
    return fail("tokenizer.json: neither a ByteLevel pre-tokenizer (GPT-2) "
                "nor SentencePiece-style space handling (Llama); this "
                "tokenizer is not supported");
  }
  // BPE variants that change what the merges mean.
  if (const json::Value *d = model->get("dropout");
      d && d->kind() != json::Value::Null && d->getAsNumber().value_or(0) != 0)
    return fail("tokenizer.json: BPE dropout (random merges) is not "
                "supported");
  for (StringRef key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (std::optional<StringRef> v = model->getString(key); v && !v->empty())
      return fail("tokenizer.json: model." + key + " '" + *v +
                  "' is not supported");
  const json::Object *vocabObj = model->getObject("vocab");
  if (!vocabObj)
    return fail("tokenizer.json: model.vocab is not an object");
  tok.tokens.assign(vocab, std::string());
  tok.types.assign(vocab, kTokenUnused);
  std::vector<bool> seen(vocab, false);
  auto place = [&](StringRef piece, int64_t id, int32_t type) -> Error {
    if (id < 0 || id >= vocab)
      return fail("tokenizer.json: token '" + piece + "' has id " + Twine(id) +
                  ", outside the model's vocabulary of " + Twine(vocab));
    if (seen[id] && tok.tokens[id] != piece)
      return fail("tokenizer.json: id " + Twine(id) + " is given to both '" +
                  tok.tokens[id] + "' and '" + piece + "'");
    tok.tokens[id] = piece.str();
    tok.types[id] = type;
    seen[id] = true;
    return Error::success();
  };
  for (const auto &[piece, idv] : *vocabObj) {
    std::optional<int64_t> id = idv.getAsInteger();
    if (!id)
      return fail("tokenizer.json: token '" + piece.str() +
                  "' has no integer id");
    StringRef p = piece;
    int32_t type = kTokenNormal;
    if (tok.kind == fb::TokenizerKind::SentencePieceBPE && p.size() == 6 &&
        p.starts_with("<0x") && p.ends_with(">"))
      type = kTokenByte;
    if (Error e = place(p, *id, type))
      return e;
  }
  if (std::optional<StringRef> unk = model->getString("unk_token"))
    if (const json::Value *id = vocabObj->get(*unk))
      if (std::optional<int64_t> i = id->getAsInteger();
          i && *i >= 0 && *i < vocab)
        tok.types[*i] = kTokenUnknown;
  if (const json::Value *a = root->get("added_tokens");
      a && a->kind() != json::Value::Null && !a->getAsArray())
    return fail("tokenizer.json: added_tokens is not an array");
  if (const json::Array *added = root->getArray("added_tokens")) {
    for (const json::Value &a : *added) {
      const json::Object *o = a.getAsObject();
      std::optional<int64_t> id = o ? o->getInteger("id") : std::nullopt;
      std::optional<StringRef> content =
          o ? o->getString("content") : std::nullopt;
      if (!id || !content)
        return fail("tokenizer.json: an added token lacks id or content");
      bool special = o->getBoolean("special").value_or(false);
      int32_t t = special ? kTokenControl : kTokenUserDefined;
      if (*id >= 0 && *id < vocab && tok.types[*id] == kTokenUnknown)
        t = kTokenUnknown;
      if (Error e = place(*content, *id, t))
        return e;
    }
  }
  // Ids nothing names (a vocabulary padded past the tokenizer): never
  // produced by encoding, printed as nothing.
  for (int64_t id = 0; id < vocab; ++id)
    if (!seen[id])
      tok.types[id] = kTokenControl;
  if (const json::Value *m = model->get("merges");
      m && m->kind() != json::Value::Null && !m->getAsArray())
    return fail("tokenizer.json: model.merges is not an array");
  if (const json::Array *merges = model->getArray("merges")) {
    for (const json::Value &m : *merges) {
      if (std::optional<StringRef> s = m.getAsString()) {
        tok.merges.push_back(s->str());
      } else if (const json::Array *pair = m.getAsArray();
                 pair && pair->size() == 2 && (*pair)[0].getAsString() &&
                 (*pair)[1].getAsString()) {
        StringRef a = *(*pair)[0].getAsString(), b = *(*pair)[1].getAsString();
        if (a.contains(' ') || b.contains(' '))
          return fail("tokenizer.json: merge ('" + a + "', '" + b +
                      "') has a piece with a space, which is not supported");
        tok.merges.push_back((a + " " + b).str());
      } else {
        return fail("tokenizer.json: a merge is neither \"a b\" nor [a, b]");
      }
    }
  }
  // Special tokens: config.json's ids; add_bos_token from
  // tokenizer_config.json, else from the post-processor's template.
  tok.bos = config.tokenId("bos_token_id");
  tok.eos = config.tokenId("eos_token_id");
  tok.pad = config.tokenId("pad_token_id");
  for (auto [id, key] : {std::pair{tok.bos, "bos_token_id"},
                         {tok.eos, "eos_token_id"},
                         {tok.pad, "pad_token_id"}})
    if (id >= vocab)
      return fail("config.json: " + Twine(key) + " " + Twine(id) +
                  " lies outside the vocabulary of " + Twine(vocab));
  // Every id of an eos_token_id list ends generation (Llama 3.1 lists
  // <|end_of_text|>, <|eom_id|> and <|eot_id|>), in config.json and in
  // generation_config.json, which is what transformers' generate() reads.
  tok.endTokens = config.tokenIds("eos_token_id");
  for (int64_t id : tok.endTokens)
    if (id < 0 || id >= vocab)
      return fail("config.json: eos_token_id " + Twine(id) +
                  " lies outside the vocabulary of " + Twine(vocab));
  auto gc = readOptionalJSON(dir, "generation_config.json");
  if (!gc)
    return gc.takeError();
  if (const json::Object *o = *gc ? (*gc)->getAsObject() : nullptr) {
    for (int64_t id : Config(*o).tokenIds("eos_token_id")) {
      if (id < 0 || id >= vocab)
        return fail("generation_config.json: eos_token_id " + Twine(id) +
                    " lies outside the vocabulary of " + Twine(vocab));
      tok.endTokens.push_back(id);
    }
  }
  std::optional<bool> addBos;
  auto tc = readOptionalJSON(dir, "tokenizer_config.json");
  if (!tc)
    return tc.takeError();
  if (const json::Object *o = *tc ? (*tc)->getAsObject() : nullptr) {
    addBos = o->getBoolean("add_bos_token");
    // The chat template: a string, or named templates (the "default" one).
    if (const json::Value *t = o->get("chat_template")) {
      if (std::optional<StringRef> str = t->getAsString())
        tok.chatTemplate = str->str();
      else if (const json::Array *named = t->getAsArray()) {
        for (const json::Value &e : *named)
          if (const json::Object *eo = e.getAsObject())
            if (eo->getString("name") == "default")
              if (std::optional<StringRef> str = eo->getString("template"))
                tok.chatTemplate = str->str();
      } else if (t->kind() != json::Value::Null) {
        return fail("tokenizer_config.json: chat_template is neither a "
                    "string nor a list of named templates");
      }
    }
  }
  // Newer checkpoints keep the template in its own file.
  SmallString<256> jinja(dir);
  sys::path::append(jinja, "chat_template.jinja");
  if (tok.chatTemplate.empty() && sys::fs::exists(jinja)) {
    auto buf = MemoryBuffer::getFile(jinja);
    if (!buf)
      return fail("cannot read '" + jinja + "': " + buf.getError().message());
    tok.chatTemplate = (*buf)->getBuffer().str();
  }
  if (!addBos) {
    addBos = false;
    if (const json::Object *pp = root->getObject("post_processor"))
      if (const json::Array *single = pp->getArray("single"))
        if (!single->empty() && single->front().getAsObject() &&
            single->front().getAsObject()->get("SpecialToken"))
          addBos = true;
  }
  tok.addBos = *addBos && tok.bos >= 0 && family != Family::GPT2;
  return tok;
}

/// config.json and the architecture it names.
struct ConfigFile {
  json::Value value = nullptr;
  std::string arch;
  const json::Object &object() const { return *value.getAsObject(); }
};

Expected<ConfigFile> readConfig(StringRef dir) {
  SmallString<256> cfgPath(dir);
  sys::path::append(cfgPath, "config.json");
  auto cfg = readJSON(cfgPath);
  if (!cfg)
    return cfg.takeError();
  if (!cfg->getAsObject())
    return fail("config.json is not a JSON object");
  auto arch = architecture(*cfg->getAsObject());
  if (!arch)
    return arch.takeError();
  return ConfigFile{std::move(*cfg), std::move(*arch)};
}

} // namespace

Expected<ConvertedModel> convertHF(StringRef dir,
                                   const ConvertOptions &options) {
  int64_t contextCap = options.contextLength;
  const std::string &name = options.name;
  auto cfg = readConfig(dir);
  if (!cfg)
    return cfg.takeError();
  const json::Object &o = cfg->object();
  auto hp = hyperparameters(o, cfg->arch);
  if (!hp)
    return hp.takeError();
  hp->name = name;
  if (hp->name.empty()) {
    std::optional<StringRef> n = o.getString("_name_or_path");
    hp->name = n && !n->empty() ? n->str() : sys::path::filename(dir).str();
  }
  auto ckpt = std::make_shared<Checkpoint>();
  if (Error e = openCheckpoint(dir, *ckpt))
    return std::move(e);
  auto weights = std::make_unique<HFWeights>(ckpt, hp->family);
  if (!hp->tied && !weights->has("output.weight"))
    hp->tied = true; // some checkpoints drop the tied head's copy
  weights->tiedHead = hp->tied;
  // The embedding table alone holds vocab x width numbers: a config that
  // claims more than the checkpoint holds is refused before anything is
  // sized by it (the tokenizer tables are).
  if ((double)hp->vocab * hp->dim > (double)weights->totalElements())
    return fail("config.json: a vocabulary of " + Twine(hp->vocab) +
                " x width " + Twine(hp->dim) +
                " is more than the checkpoint's tensors hold");
  auto tok = hfTokenizer(dir, hp->vocab, Config(o), hp->family);
  if (!tok)
    return tok.takeError();
  if (contextCap > 0 && contextCap < hp->context)
    hp->context = contextCap;
  return buildKilnModel(*hp, std::move(weights), std::move(*tok), options);
}

Expected<std::string> describeHF(StringRef dir) {
  auto cfg = readConfig(dir);
  if (!cfg)
    return cfg.takeError();
  const json::Object &o = cfg->object();
  std::string out;
  raw_string_ostream os(out);
  os << "format: Hugging Face directory\narchitecture: " << cfg->arch << "\n";
  auto hp = hyperparameters(o, cfg->arch);
  if (!hp) {
    os << "not convertible: " << toString(hp.takeError()) << "\n";
  } else {
    os << "layers: " << hp->layers << "\nwidth: " << hp->dim
       << "\nheads: " << hp->heads << " (key/value heads " << hp->kvHeads
       << ", head width " << hp->headDim << ")\nfeed-forward: " << hp->ffn
       << "\nvocabulary: " << hp->vocab << "\ncontext: " << hp->context
       << "\ntied embeddings: " << (hp->tied ? "yes" : "no") << "\n";
  }
  Checkpoint ckpt;
  if (Error e = openCheckpoint(dir, ckpt))
    return std::move(e);
  std::map<std::string, uint64_t> types;
  uint64_t params = 0;
  for (const auto &[name, ref] : ckpt.tensors) {
    uint64_t n = 1;
    for (int64_t d : ref->shape)
      n *= d;
    params += n;
    types[ckpt.dtypes[name]] += 1;
  }
  os << "tensors: " << ckpt.tensors.size() << " in " << ckpt.files.size()
     << " file(s), " << params << " parameters;";
  for (auto &[t, count] : types)
    os << " " << t << " x" << count;
  os << "\n";
  if (hp) {
    auto tok = hfTokenizer(dir, hp->vocab, Config(o), hp->family);
    if (!tok) {
      os << "tokenizer: not supported: " << toString(tok.takeError()) << "\n";
    } else {
      os << "tokenizer: "
         << (tok->kind == fb::TokenizerKind::GPT2BPE ? "GPT-2 byte-level BPE"
                                                     : "SentencePiece BPE")
         << ", " << tok->merges.size() << " merges; bos " << tok->bos
         << ", eos " << tok->eos << ", pad " << tok->pad
         << (tok->addBos ? ", BOS prepended" : "") << "\n";
    }
  }
  return out;
}

} // namespace kiln::convert
