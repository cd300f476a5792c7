//===- generate.cpp - The generation loop and the executable's main -------===//

#include "runtime_internal.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

namespace kiln::rt {

const char *stopReasonName(StopReason r) {
  switch (r) {
  case StopReason::Eos:
    return "eos";
  case StopReason::Length:
    return "length";
  case StopReason::Context:
    return "context";
  }
  return "?";
}

static float *allocFloats(size_t n) {
  size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
  void *p = std::aligned_alloc(64, bytes ? bytes : 64);
  if (p)
    std::memset(p, 0, bytes);
  return static_cast<float *>(p);
}

Session::Session(const ModelFile &model, const EntryPoints &entry)
    : model(model), entry(entry) {}

std::optional<Error> Session::init() {
  const kiln_model_info &info = entry.info;
  cacheSize = (size_t)info.num_layers * 2 * info.batch * info.capacity *
              info.kv_width;
  cache.reset(allocFloats(cacheSize));
  logits.reset(allocFloats((size_t)info.batch * info.vocab_size));
  if (!cache || !logits)
    return Error{kExitInternal, "out of memory allocating the KV cache (" +
                                    std::to_string(cacheSize * 4) + " bytes)"};
  weights = {const_cast<uint8_t *>(model.data), const_cast<uint8_t *>(model.data),
             0, {(int64_t)model.size}, {1}};
  auto *offs = const_cast<int64_t *>(model.weightOffsets.data());
  offsets = {offs, offs, 0, {(int64_t)model.weightOffsets.size()}, {1}};
  return std::nullopt;
}

static double msSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now() - t0)
      .count();
}

std::optional<Error>
Session::generate(const std::vector<int32_t> &prompt, int64_t nPredict,
                  const SamplingParams &sampling, Rng &rng, bool ignoreEos,
                  bool keepLogits, const std::function<void(int32_t)> &onToken,
                  GenerationResult &result) {
  const kiln_model_info &info = entry.info;
  int64_t capacity = info.capacity, vocab = info.vocab_size;
  int64_t w = info.kv_width, c = capacity;
  kiln_memref_5d cacheRef = {cache.get(), cache.get(), 0,
                             {info.num_layers, 2, 1, c, w},
                             {2 * c * w, c * w, c * w, w, 1}};
  kiln_memref_2d logitsRef = {logits.get(), logits.get(), 0, {1, vocab}, {vocab, 1}};
  std::vector<int32_t> ids = prompt;
  int64_t n = ids.size();
  kiln_memref_2d tokens = {ids.data(), ids.data(), 0, {1, n}, {n, 1}};

  auto t0 = std::chrono::steady_clock::now();
  entry.prefill(&weights, &offsets, &tokens, 0, &cacheRef, &logitsRef);
  result.prefillMs = msSince(t0);
  result.stop = StopReason::Length;
  if (nPredict == 0)
    return std::nullopt;

  int32_t token;
  for (;;) {
    token = sample(logits.get(), vocab, sampling, rng);
    if (keepLogits)
      result.logits.emplace_back(logits.get(), logits.get() + vocab);
    result.tokens.push_back(token);
    onToken(token);
    if (token == model.eosId && !ignoreEos) {
      result.stop = StopReason::Eos;
      break;
    }
    if (nPredict > 0 && (int64_t)result.tokens.size() >= nPredict)
      break;
    int64_t pos = n + (int64_t)result.tokens.size() - 1;
    if (pos >= capacity) {
      result.stop = StopReason::Context;
      break;
    }
    kiln_memref_2d one = {&token, &token, 0, {1, 1}, {1, 1}};
    auto t1 = std::chrono::steady_clock::now();
    entry.decode(&weights, &offsets, &one, pos, &cacheRef, &logitsRef);
    result.decodeMs += msSince(t1);
  }
  return std::nullopt;
}

std::optional<Error> Session::forward(const std::vector<int32_t> &tokens,
                                      std::vector<float> &out) {
  int64_t n = tokens.size(), vocab = entry.info.vocab_size;
  out.assign((size_t)n * vocab, 0.0f);
  std::vector<int32_t> ids = tokens;
  kiln_memref_2d t = {ids.data(), ids.data(), 0, {1, n}, {n, 1}};
  kiln_memref_3d l = {out.data(), out.data(), 0, {1, n, vocab}, {n * vocab, vocab, 1}};
  entry.forward(&weights, &offsets, &t, &l);
  return std::nullopt;
}

static void appendFloat(std::string &s, float f) {
  if (!std::isfinite(f)) {
    s += "null";
    return;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", f);
  s += buf;
}

static std::string idList(const std::vector<int32_t> &ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i)
      s += ",";
    s += std::to_string(ids[i]);
  }
  return s + "]";
}

static int fail(const Error &e) {
  std::fprintf(stderr, "kiln: error: %s\n", e.message.c_str());
  if (e.code == kExitUsage)
    std::fprintf(stderr, "try --help\n");
  return e.code;
}

int run(int argc, char **argv, const EntryPoints &entry) {
  Options opts;
  opts.modelPath = entry.info.model_path ? entry.info.model_path : "";
  if (auto err = parseOptions(argc, argv, opts))
    return fail(*err);
  if (opts.help) {
    std::fputs(helpText(argv[0]).c_str(), stdout);
    return kExitOk;
  }

  ModelFile model;
  if (auto err = loadModelFile(opts.modelPath, model))
    return fail(*err);
  if (auto err = checkCompatible(model, entry.info))
    return fail(*err);
  Tokenizer tokenizer(model);

  std::vector<int32_t> prompt;
  if (opts.promptTokens) {
    prompt = *opts.promptTokens;
    for (int32_t id : prompt)
      if (id >= model.vocabSize)
        return fail({kExitPrompt, "token id " + std::to_string(id) +
                                      " is outside the vocabulary of " +
                                      std::to_string(model.vocabSize)});
  } else if (auto err = tokenizer.encode(*opts.prompt, prompt)) {
    return fail(*err);
  }
  if (prompt.empty())
    return fail({kExitPrompt, "the prompt is empty"});
  if ((int64_t)prompt.size() > entry.info.capacity)
    return fail({kExitPrompt, "prompt has " + std::to_string(prompt.size()) +
                                  " tokens but the context holds " +
                                  std::to_string(entry.info.capacity)});

  Session session(model, entry);
  if (auto err = session.init())
    return fail(*err);

  if (opts.forwardLogits) {
    std::vector<float> logits;
    if (auto err = session.forward(prompt, logits))
      return fail(*err);
    std::string s = "{\"tokens\":" + idList(prompt) + ",\"logits\":[";
    int64_t vocab = model.vocabSize;
    for (size_t i = 0; i < prompt.size(); ++i) {
      s += i ? ",[" : "[";
      for (int64_t j = 0; j < vocab; ++j) {
        if (j)
          s += ",";
        appendFloat(s, logits[i * vocab + j]);
      }
      s += "]";
    }
    s += "]}\n";
    std::fwrite(s.data(), 1, s.size(), stdout);
    return kExitOk;
  }

  uint64_t seed = opts.seed ? *opts.seed
                            : (uint64_t)std::chrono::system_clock::now()
                                      .time_since_epoch()
                                      .count() ^
                                  ((uint64_t)getpid() << 32);
  Rng rng(seed);
  bool text = opts.output == OutputFormat::Text;
  Utf8Stream stream;
  std::string generated;
  auto onToken = [&](int32_t id) {
    if (id == model.eosId && !opts.ignoreEos)
      return;
    std::string piece = tokenizer.piece(id);
    generated += piece;
    if (text) {
      std::string ready = stream.push(piece);
      std::fwrite(ready.data(), 1, ready.size(), stdout);
      std::fflush(stdout);
    }
  };
  GenerationResult result;
  if (auto err = session.generate(prompt, opts.nPredict, opts.sampling, rng,
                                  opts.ignoreEos, opts.logits, onToken, result))
    return fail(*err);

  if (text) {
    std::string rest = stream.flush() + "\n";
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    return kExitOk;
  }
  std::string s = "{\"tokens\":" + idList(result.tokens);
  s += ",\"text\":" + jsonString(generated);
  s += ",\"prompt_tokens\":" + idList(prompt);
  s += ",\"stop_reason\":\"" + std::string(stopReasonName(result.stop)) + "\"";
  s += ",\"seed\":" + std::to_string(seed);
  if (opts.logits) {
    s += ",\"logits\":[";
    for (size_t i = 0; i < result.logits.size(); ++i) {
      s += i ? ",[" : "[";
      for (size_t j = 0; j < result.logits[i].size(); ++j) {
        if (j)
          s += ",";
        appendFloat(s, result.logits[i][j]);
      }
      s += "]";
    }
    s += "]";
  }
  char timings[256];
  std::snprintf(timings, sizeof timings,
                ",\"timings\":{\"prompt_tokens\":%zu,\"generated_tokens\":%zu,"
                "\"prefill_ms\":%.3f,\"decode_ms\":%.3f}}\n",
                prompt.size(), result.tokens.size(), result.prefillMs,
                result.decodeMs);
  s += timings;
  std::fwrite(s.data(), 1, s.size(), stdout);
  return kExitOk;
}

} // namespace kiln::rt
