//===- generate.cpp - The generation loop and the executable's main -------===//

#include "runtime_internal.h"

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <malloc.h>
#include <sched.h>
#include <sys/resource.h>
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

// libomp's; weak so that the runtime's unit tests link without it.
extern "C" void omp_set_num_threads(int) __attribute__((weak));

void reuseFreedMemory() {
  // The compiled @prefill allocates its prompt-sized temporaries per call.
  // Above glibc's default threshold (128 KiB, adapting upwards) each would
  // be a fresh mmap whose pages fault in on first touch and are unmapped on
  // free; keep them in the heap, reused from call to call, instead.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

void setThreads(int64_t threads) {
  if (!omp_set_num_threads)
    return;
  if (threads <= 0) {
    cpu_set_t set;
    threads = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
  }
  omp_set_num_threads((int)std::max<int64_t>(1, threads));
}

std::optional<Error> checkMemory(uint64_t bytes, const std::string &what) {
  auto mib = [](uint64_t b) { return std::to_string((b + (1 << 20) - 1) >> 20); };
  // What the kernel can back: MemAvailable + SwapFree.
  uint64_t availableKb = 0, swapKb = 0;
  bool known = false;
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  uint64_t value;
  std::string unit;
  while (meminfo >> key >> value) {
    std::getline(meminfo, unit);
    if (key == "MemAvailable:") {
      availableKb = value;
      known = true;
    } else if (key == "SwapFree:") {
      swapKb = value;
    }
  }
  if (known && bytes / 1024 > availableKb + swapKb)
    return Error{kExitInternal,
                 "out of memory: " + what + " needs " + mib(bytes) +
                     " MiB but only " + mib((availableKb + swapKb) * 1024) +
                     " MiB of memory is available"};
  // What the address-space limit (ulimit -v) leaves.
  struct rlimit lim;
  if (getrlimit(RLIMIT_AS, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY) {
    uint64_t pages = 0;
    std::ifstream statm("/proc/self/statm");
    statm >> pages;
    uint64_t used = pages * (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t left = lim.rlim_cur > used ? lim.rlim_cur - used : 0;
    if (bytes > left)
      return Error{kExitInternal, "out of memory: " + what + " needs " +
                                      mib(bytes) + " MiB but the address-space "
                                      "limit (ulimit -v) leaves " +
                                      mib(left) + " MiB"};
  }
  return std::nullopt;
}

float *allocFloats(size_t n) {
  size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
  void *p = std::aligned_alloc(64, bytes ? bytes : 64);
  if (p)
    std::memset(p, 0, bytes);
  return static_cast<float *>(p);
}

kiln_memref_5d cacheMemref(float *data, int64_t layers, int64_t capacity,
                           int64_t width) {
  int64_t c = capacity, w = width;
  return {data, data, 0, {layers, 2, 1, c, w}, {2 * c * w, c * w, c * w, w, 1}};
}

void modelBuffers(const ModelFile &model, kiln_memref_1d &weights,
                  kiln_memref_1d &offsets) {
  weights = {const_cast<uint8_t *>(model.data),
             const_cast<uint8_t *>(model.data),
             0,
             {(int64_t)model.size},
             {1}};
  auto *offs = const_cast<int64_t *>(model.weightOffsets.data());
  offsets = {offs, offs, 0, {(int64_t)model.weightOffsets.size()}, {1}};
}

Session::Session(const ModelFile &model, const EntryPoints &entry)
    : model(model), entry(entry) {}

std::optional<Error> Session::init() {
  const kiln_model_info &info = entry.info;
  cacheSize =
      (size_t)info.num_layers * 2 * info.batch * info.capacity * info.kv_width;
  if (auto err = checkMemory(
          (cacheSize + (size_t)info.batch * info.vocab_size) * sizeof(float),
          "the KV cache (" + std::to_string(info.capacity) + " positions)"))
    return err;
  cache.reset(allocFloats(cacheSize));
  logits.reset(allocFloats((size_t)info.batch * info.vocab_size));
  if (!cache || !logits)
    return Error{kExitInternal, "out of memory allocating the KV cache (" +
                                    std::to_string(cacheSize * 4) + " bytes)"};
  modelBuffers(model, weights, offsets);
  return std::nullopt;
}

double msSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now() - t0)
      .count();
}

std::optional<Error>
Session::generate(const std::vector<int32_t> &prompt, int64_t nPredict,
                  const SamplingParams &sampling, Rng &rng, bool ignoreEos,
                  bool keepLogits, const std::function<void(int32_t)> &onToken,
                  GenerationResult &result) {
  return generateAt(
      0, prompt, nPredict, sampling, rng, ignoreEos, keepLogits,
      [&](int32_t t) {
        onToken(t);
        return true;
      },
      result);
}

std::optional<Error> Session::generateAt(
    int64_t pos, const std::vector<int32_t> &prompt, int64_t nPredict,
    const SamplingParams &sampling, Rng &rng, bool ignoreEos, bool keepLogits,
    const std::function<bool(int32_t)> &onToken, GenerationResult &result) {
  const kiln_model_info &info = entry.info;
  int64_t capacity = info.capacity, vocab = info.vocab_size;
  int64_t n = prompt.size();
  if (n == 0 || pos < 0 || pos + n > capacity)
    return Error{kExitPrompt, "prompt of " + std::to_string(n) +
                                  " tokens at position " + std::to_string(pos) +
                                  " does not fit the context of " +
                                  std::to_string(capacity)};
  kiln_memref_5d cacheRef =
      cacheMemref(cache.get(), info.num_layers, capacity, info.kv_width);
  kiln_memref_2d logitsRef = rowMemref(logits.get(), vocab);
  std::vector<int32_t> ids = prompt;
  kiln_memref_2d tokens = rowMemref(ids.data(), n);

  auto t0 = std::chrono::steady_clock::now();
  entry.prefill(&weights, &offsets, &tokens, pos, &cacheRef, &logitsRef);
  result.prefillMs = msSince(t0);
  result.stop = StopReason::Length;
  if (nPredict == 0)
    return std::nullopt;

  // Nothing in the loop below allocates (test/Runtime/no-alloc.test): the
  // token list is reserved, the sampler's scratch is kept, and the compiled
  // @decode keeps its temporaries on the stack. --logits copies are the
  // exception the caller asked for.
  int64_t room = capacity - pos - n + 1;
  result.tokens.reserve(result.tokens.size() +
                        (nPredict > 0 ? std::min(nPredict, room) : room));
  int32_t token;
  for (;;) {
    token = sample(logits.get(), vocab, sampling, rng, scratch);
    if (result.tokens.empty())
      result.firstTokenMs = msSince(t0);
    if (keepLogits)
      result.logits.emplace_back(logits.get(), logits.get() + vocab);
    result.tokens.push_back(token);
    bool more = onToken(token);
    if (token == model.eosId && !ignoreEos) {
      result.stop = StopReason::Eos;
      break;
    }
    if (!more || (nPredict > 0 && (int64_t)result.tokens.size() >= nPredict))
      break;
    int64_t p = pos + n + (int64_t)result.tokens.size() - 1;
    if (p >= capacity) {
      result.stop = StopReason::Context;
      break;
    }
    kiln_memref_2d one = rowMemref(&token, 1);
    auto t1 = std::chrono::steady_clock::now();
    entry.decode(&weights, &offsets, &one, p, &cacheRef, &logitsRef);
    result.decodeMs += msSince(t1);
  }
  return std::nullopt;
}

std::optional<Error> Session::score(const std::vector<int32_t> &tokens,
                                    int64_t stride, ScoreResult &r) {
  int64_t n = tokens.size(), vocab = entry.info.vocab_size;
  r.window = entry.info.capacity;
  // Windows overlap by at least one token, so every token after the first
  // has left context and is scored.
  int64_t maxStride = std::max<int64_t>(1, r.window - 1);
  r.stride = stride > 0 ? std::min(stride, maxStride)
                        : std::max<int64_t>(1, r.window / 2);
  if (n < 2)
    return Error{kExitPrompt,
                 "scoring needs at least 2 tokens, got " + std::to_string(n)};
  auto t0 = std::chrono::steady_clock::now();
  std::vector<float> logits;
  int64_t prevEnd = 0;
  for (int64_t begin = 0; begin < n; begin += r.stride) {
    int64_t end = std::min(begin + r.window, n);
    std::vector<int32_t> window(tokens.begin() + begin, tokens.begin() + end);
    if (auto err = forward(window, logits))
      return err;
    for (int64_t t = std::max(prevEnd, begin + 1); t < end; ++t) {
      const float *row = logits.data() + (t - 1 - begin) * vocab;
      double mx = row[0];
      for (int64_t j = 1; j < vocab; ++j)
        mx = std::max(mx, (double)row[j]);
      double sum = 0;
      for (int64_t j = 0; j < vocab; ++j)
        sum += std::exp((double)row[j] - mx);
      r.nll.push_back(mx + std::log(sum) - row[tokens[t]]);
    }
    prevEnd = end;
    if (end == n)
      break;
  }
  double total = 0;
  for (double x : r.nll)
    total += x;
  r.meanNll = total / r.nll.size();
  r.perplexity = std::exp(r.meanNll);
  r.ms = msSince(t0);
  return std::nullopt;
}

std::optional<Error> Session::forward(const std::vector<int32_t> &tokens,
                                      std::vector<float> &out) {
  int64_t n = tokens.size(), vocab = entry.info.vocab_size;
  out.assign((size_t)n * vocab, 0.0f);
  std::vector<int32_t> ids = tokens;
  kiln_memref_2d t = rowMemref(ids.data(), n);
  kiln_memref_3d l = {
      out.data(), out.data(), 0, {1, n, vocab}, {n * vocab, vocab, 1}};
  entry.forward(&weights, &offsets, &t, &l);
  return std::nullopt;
}

/// --seed, or one from the clock and the process id.
static uint64_t chooseSeed(const Options &opts) {
  if (opts.seed)
    return *opts.seed;
  return (uint64_t)std::chrono::system_clock::now().time_since_epoch().count() ^
         ((uint64_t)getpid() << 32);
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

/// [[v, ...] per step]
static std::string logitsJson(const std::vector<std::vector<float>> &rows) {
  std::string s = "[";
  for (size_t i = 0; i < rows.size(); ++i) {
    s += i ? ",[" : "[";
    for (size_t j = 0; j < rows[i].size(); ++j) {
      if (j)
        s += ",";
      appendFloat(s, rows[i][j]);
    }
    s += "]";
  }
  return s + "]";
}

std::string idList(const std::vector<int32_t> &ids) {
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

static void printStats(size_t promptTokens, const GenerationResult &r) {
  double prefillRate =
      r.prefillMs > 0 ? promptTokens / (r.prefillMs / 1000) : 0;
  size_t decoded = r.tokens.size() > 0 ? r.tokens.size() - 1 : 0;
  double decodeRate = r.decodeMs > 0 ? decoded / (r.decodeMs / 1000) : 0;
  std::fprintf(stderr,
               "kiln: prompt %zu tokens, %.1f tok/s | generated %zu tokens, "
               "%.1f tok/s | time to first token %.1f ms\n",
               promptTokens, prefillRate, r.tokens.size(), decodeRate,
               r.firstTokenMs);
}

static bool readFile(const std::string &path, std::string &out) {
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f)
    return false;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
    out.append(buf, n);
  bool ok = !std::ferror(f);
  std::fclose(f);
  return ok;
}

/// Chat-style loop over the KV cache: every line read from stdin is
/// appended to the conversation and answered; nothing is recomputed.
static int interactive(const Options &opts, const ModelFile &model,
                       const Tokenizer &tokenizer, Session &session, Rng &rng,
                       int64_t capacity) {
  int64_t pos = 0;
  std::optional<int32_t> pending; // last reply token, not yet in the cache
  bool first = true;
  std::string line;
  auto turn = [&](const std::string &text) -> int {
    std::vector<int32_t> ids;
    if (auto err = tokenizer.encode(text, ids))
      return fail(*err);
    if (!first && model.addBos && model.bosId >= 0 && !ids.empty() &&
        ids[0] == model.bosId)
      ids.erase(ids.begin()); // BOS starts the conversation only
    first = false;
    if (pending)
      ids.insert(ids.begin(), *pending);
    if (ids.empty())
      return -1;
    if (pos + (int64_t)ids.size() > capacity) {
      std::fprintf(stderr,
                   "kiln: the context of %lld tokens is full; ending "
                   "the conversation\n",
                   (long long)capacity);
      return kExitOk;
    }
    Utf8Stream stream;
    GenerationResult r;
    auto onToken = [&](int32_t id) {
      if (id == model.eosId)
        return false;
      std::string piece = tokenizer.piece(id);
      std::string ready = stream.push(piece);
      std::fwrite(ready.data(), 1, ready.size(), stdout);
      std::fflush(stdout);
      return piece.find('\n') == std::string::npos; // a reply is one line
    };
    if (auto err = session.generateAt(pos, ids, opts.nPredict, opts.sampling,
                                      rng, false, false, onToken, r))
      return fail(*err);
    std::string rest = stream.flush();
    if (r.tokens.empty() ||
        tokenizer.piece(r.tokens.back()).find('\n') == std::string::npos)
      rest += "\n";
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    std::fflush(stdout);
    pos += ids.size() + (r.tokens.empty() ? 0 : r.tokens.size() - 1);
    pending = r.tokens.empty() ? std::nullopt
                               : std::optional<int32_t>(r.tokens.back());
    if (opts.stats)
      printStats(ids.size(), r);
    if (r.stop == StopReason::Context || pos >= capacity) {
      std::fprintf(stderr,
                   "kiln: the context of %lld tokens is full; ending "
                   "the conversation\n",
                   (long long)capacity);
      return kExitOk;
    }
    return -1;
  };
  if (opts.prompt) {
    int rc = turn(*opts.prompt);
    if (rc >= 0)
      return rc;
  }
  for (;;) {
    if (isatty(0))
      std::fputs("> ", stderr);
    line.clear();
    int c;
    while ((c = std::fgetc(stdin)) != EOF && c != '\n')
      line.push_back((char)c);
    if (c == EOF && line.empty())
      return kExitOk;
    int rc = turn(line + "\n");
    if (rc >= 0)
      return rc;
    if (c == EOF)
      return kExitOk;
  }
}

int runSeq2Seq(const Options &opts, const ModelFile &model,
               const Tokenizer &tokenizer, const EntryPoints &entry) {
  if (opts.interactive || opts.perplexityFile || opts.scoreText ||
      opts.forwardLogits)
    return fail({kExitUsage, "-i, --perplexity, --score and --forward-logits "
                             "are not supported for encoder-decoder models"});
  if (opts.beams > 1 && (opts.ignoreEos || opts.logits))
    return fail({kExitUsage,
                 "--beams does not combine with --ignore-eos or --logits"});
  if (opts.promptTokens)
    return fail({kExitUsage, "encoder-decoder models take the source as -p "
                             "TEXT or --src-tokens IDS"});
  std::vector<int32_t> src;
  if (opts.srcTokens)
    src = *opts.srcTokens;
  else if (auto err = tokenizer.encode(*opts.prompt, src))
    return fail(*err);

  Seq2SeqSession session(model, entry);
  if (auto err = session.init())
    return fail(*err);
  Seq2SeqResult result;
  if (auto err = session.encode(src, result))
    return fail(*err);

  uint64_t seed = chooseSeed(opts);
  Rng rng(seed);
  bool text = opts.output == OutputFormat::Text;
  Utf8Stream stream;
  auto pieces = [&](const std::vector<int32_t> &ids) {
    std::string out;
    for (int32_t id : ids)
      if (id != model.eosId)
        out += tokenizer.piece(id);
    return out;
  };
  if (opts.beams > 1) {
    if (auto err = session.beamSearch(opts.nPredict, opts.beams,
                                      opts.lengthPenalty, opts.earlyStop,
                                      result))
      return fail(*err);
    if (text) {
      std::string out = pieces(result.tokens);
      std::fwrite(out.data(), 1, out.size(), stdout);
    }
  } else {
    auto onToken = [&](int32_t id) {
      if (!text || (id == model.eosId && !opts.ignoreEos))
        return true;
      std::string ready = stream.push(tokenizer.piece(id));
      std::fwrite(ready.data(), 1, ready.size(), stdout);
      std::fflush(stdout);
      return true;
    };
    if (auto err = session.generate(opts.nPredict, opts.sampling, rng,
                                    opts.ignoreEos, opts.logits, onToken,
                                    result))
      return fail(*err);
  }
  if (text) {
    std::string rest = stream.flush() + "\n";
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    std::fflush(stdout);
    if (opts.stats) {
      size_t steps = result.tokens.size();
      double rate = result.decodeMs > 0
                        ? result.decodeCalls / (result.decodeMs / 1000)
                        : 0;
      std::fprintf(stderr,
                   "kiln: source %zu tokens, encoded in %.1f ms | generated "
                   "%zu tokens, %lld decode steps, %.1f steps/s%s\n",
                   src.size(), result.encodeMs, steps,
                   (long long)result.decodeCalls, rate,
                   opts.beams > 1
                       ? (" (" + std::to_string(opts.beams) + " beams)").c_str()
                       : "");
    }
    return kExitOk;
  }
  std::string s = "{\"tokens\":" + idList(result.tokens);
  s += ",\"text\":" + jsonString(pieces(result.tokens));
  s += ",\"source_tokens\":" + idList(src);
  s += ",\"stop_reason\":\"" + std::string(stopReasonName(result.stop)) + "\"";
  s += ",\"seed\":" + std::to_string(seed);
  if (opts.logits)
    s += ",\"logits\":" + logitsJson(result.logits);
  if (opts.beams > 1) {
    s += ",\"beams\":[";
    for (size_t i = 0; i < result.hypotheses.size(); ++i) {
      const Hypothesis &h = result.hypotheses[i];
      char num[96];
      std::snprintf(num, sizeof num, ",\"log_prob\":%.9g,\"score\":%.9g}",
                    h.logProb, h.score);
      s += (i ? ",{\"tokens\":" : "{\"tokens\":") + idList(h.tokens) +
           ",\"text\":" + jsonString(pieces(h.tokens)) + num;
    }
    s += "]";
  }
  char timings[320];
  std::snprintf(timings, sizeof timings,
                ",\"timings\":{\"source_tokens\":%zu,\"generated_tokens\":%zu,"
                "\"encode_ms\":%.3f,\"decode_ms\":%.3f,\"decode_steps\":%lld}}"
                "\n",
                src.size(), result.tokens.size(), result.encodeMs,
                result.decodeMs, (long long)result.decodeCalls);
  s += timings;
  std::fwrite(s.data(), 1, s.size(), stdout);
  return kExitOk;
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
  setThreads(opts.threads);
  reuseFreedMemory();

  ModelFile model;
  if (auto err = loadModelFile(opts.modelPath, model))
    return fail(*err);
  if (auto err = checkCompatible(model, entry.info))
    return fail(*err);
  Tokenizer tokenizer(model);
  if (entry.info.kind == KILN_MODEL_ENCODER_DECODER)
    return runSeq2Seq(opts, model, tokenizer, entry);
  if (opts.srcTokens || opts.beams > 1)
    return fail({kExitUsage, "--src-tokens and --beams are for "
                             "encoder-decoder models; this one is "
                             "decoder-only"});
  Session session(model, entry);
  if (auto err = session.init())
    return fail(*err);
  int64_t capacity = entry.info.capacity;

  uint64_t seed = chooseSeed(opts);
  Rng rng(seed);
  if (opts.interactive)
    return interactive(opts, model, tokenizer, session, rng, capacity);

  if (opts.perplexityFile || opts.scoreText) {
    std::string text;
    if (opts.scoreText)
      text = *opts.scoreText;
    else if (!readFile(*opts.perplexityFile, text))
      return fail({kExitUsage, "cannot read '" + *opts.perplexityFile +
                                   "': " + std::strerror(errno)});
    std::vector<int32_t> ids;
    if (auto err = tokenizer.encode(text, ids))
      return fail(*err);
    ScoreResult r;
    if (auto err = session.score(ids, opts.stride, r))
      return fail(*err);
    if (opts.output == OutputFormat::Json) {
      std::string s;
      char head[256];
      std::snprintf(
          head, sizeof head,
          "{\"tokens_scored\":%zu,\"mean_nll\":%.9g,\"perplexity\":%.9g,"
          "\"window\":%lld,\"stride\":%lld,\"score_ms\":%.3f,\"nll\":[",
          r.nll.size(), r.meanNll, r.perplexity, (long long)r.window,
          (long long)r.stride, r.ms);
      s = head;
      for (size_t i = 0; i < r.nll.size(); ++i) {
        char buf[32];
        std::snprintf(buf, sizeof buf, i ? ",%.9g" : "%.9g", r.nll[i]);
        s += buf;
      }
      s += "]}\n";
      std::fwrite(s.data(), 1, s.size(), stdout);
    } else {
      std::printf("perplexity %.6f over %zu tokens (mean NLL %.6f nats/token, "
                  "window %lld, stride %lld)\n",
                  r.perplexity, r.nll.size(), r.meanNll, (long long)r.window,
                  (long long)r.stride);
    }
    return kExitOk;
  }

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
  if ((int64_t)prompt.size() > capacity)
    return fail({kExitPrompt, "prompt has " + std::to_string(prompt.size()) +
                                  " tokens but the context holds " +
                                  std::to_string(capacity)});

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
    std::fflush(stdout);
    if (opts.stats)
      printStats(prompt.size(), result);
    return kExitOk;
  }
  std::string s = "{\"tokens\":" + idList(result.tokens);
  s += ",\"text\":" + jsonString(generated);
  s += ",\"prompt_tokens\":" + idList(prompt);
  s += ",\"stop_reason\":\"" + std::string(stopReasonName(result.stop)) + "\"";
  s += ",\"seed\":" + std::to_string(seed);
  if (opts.logits)
    s += ",\"logits\":" + logitsJson(result.logits);
  char timings[320];
  std::snprintf(
      timings, sizeof timings,
      ",\"timings\":{\"prompt_tokens\":%zu,\"generated_tokens\":%zu,"
      "\"prefill_ms\":%.3f,\"decode_ms\":%.3f,\"first_token_ms\":%.3f}}\n",
      prompt.size(), result.tokens.size(), result.prefillMs, result.decodeMs,
      result.firstTokenMs);
  s += timings;
  std::fwrite(s.data(), 1, s.size(), stdout);
  return kExitOk;
}

} // namespace kiln::rt

extern "C" void kiln_fatal_position(int64_t pos, int64_t rows,
                                    int64_t capacity) {
  std::fflush(stdout);
  std::fprintf(stderr,
               "kiln: error: internal: KV cache write at positions %lld..%lld "
               "past the capacity of %lld\n",
               (long long)pos, (long long)(pos + rows - 1),
               (long long)capacity);
  std::exit(kiln::rt::kExitInternal);
}
