// llama-ref: llama.cpp as a reference for Kiln's tests, through llama.cpp's
// public C API (llama.h). Built by scripts/llama-cpp.sh next to llama-bench.
//
//   llama-ref MODEL.gguf --tokens 1,5,9 [-n 32] [--threads N] [--ctx N]
//       Feeds the prompt exactly as given (no BOS added) in one batch, then
//       prints one JSON object:
//         {"n_vocab": V, "logits": [V floats of the last prompt position],
//          "tokens": [n greedy tokens: argmax each step, EOS does not stop]}
//       CPU only, f32 KV cache, flash attention off, no mmap, no weight
//       repacking: the plain ggml CPU kernels.
//   llama-ref MODEL.gguf --tokenize [--parse-special]
//       Reads one JSON string per line from stdin, prints per line the JSON
//       array of token ids (llama_tokenize, add_special=false,
//       parse_special as the flag says: control tokens written in the text
//       become their ids).
//   llama-ref MODEL.gguf --detokenize
//       Reads one JSON array of token ids per line, prints per line a JSON
//       string (llama_detokenize, remove_special=false, unparse_special=false).
//       Bytes that are not valid UTF-8 are written as U+FFFD (as Python's
//       bytes.decode("utf-8", "replace") would).
//   llama-ref --dequantize TYPE < BLOCKS > FLOATS
//       ggml's own dequantizer (ggml_get_type_traits(type)->to_float) over
//       the raw blocks on stdin (TYPE: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1
//       Q4_K Q5_K Q6_K; whole blocks only), written to stdout as
//       little-endian float32: the reference Kiln's dequantizeRow is
//       compared with bit for bit.
//   --verbose keeps llama.cpp's logging (stderr).
//
// Errors: a message on stderr and exit status 1 (2 for usage errors).

#include "llama.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

[[noreturn]] void die(const std::string &msg, int code = 1) {
  std::fprintf(stderr, "llama-ref: %s\n", msg.c_str());
  std::exit(code);
}

const char *kUsage =
    "usage: llama-ref MODEL.gguf --tokens ID,ID,... [-n N] [--threads N] [--ctx N] [--verbose]\n"
    "       llama-ref MODEL.gguf --tokenize [--parse-special] [--verbose]  (stdin: one JSON string per line)\n"
    "       llama-ref MODEL.gguf --detokenize [--verbose]  (stdin: one JSON array of ids per line)\n"
    "       llama-ref --dequantize TYPE < BLOCKS > FLOAT32S\n";

[[noreturn]] void usage(const std::string &msg) {
  std::fprintf(stderr, "llama-ref: %s\n%s", msg.c_str(), kUsage);
  std::exit(2);
}

void quiet_log(enum ggml_log_level, const char *, void *) {}

long parse_int(const std::string &s, const char *what) {
  char *end = nullptr;
  errno = 0;
  long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno != 0)
    usage(std::string("bad ") + what + ": '" + s + "'");
  return v;
}

std::vector<llama_token> parse_token_list(const std::string &s) {
  std::vector<llama_token> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    std::string item = s.substr(i, j - i);
    // trim spaces
    size_t a = item.find_first_not_of(" \t"), b = item.find_last_not_of(" \t");
    item = a == std::string::npos ? "" : item.substr(a, b - a + 1);
    out.push_back((llama_token)parse_int(item, "token id"));
    i = j + 1;
  }
  return out;
}

// ---- minimal JSON: one string or one array of integers per line ----------

struct Cursor {
  const std::string &s;
  size_t i = 0;
  void ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) ++i;
  }
  [[noreturn]] void fail(const std::string &what) const {
    throw std::runtime_error(what + " at column " + std::to_string(i + 1));
  }
};

void put_utf8(std::string &out, uint32_t cp) {
  if (cp < 0x80) {
    out += (char)cp;
  } else if (cp < 0x800) {
    out += (char)(0xC0 | (cp >> 6));
    out += (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += (char)(0xE0 | (cp >> 12));
    out += (char)(0x80 | ((cp >> 6) & 0x3F));
    out += (char)(0x80 | (cp & 0x3F));
  } else {
    out += (char)(0xF0 | (cp >> 18));
    out += (char)(0x80 | ((cp >> 12) & 0x3F));
    out += (char)(0x80 | ((cp >> 6) & 0x3F));
    out += (char)(0x80 | (cp & 0x3F));
  }
}

uint32_t hex4(Cursor &c) {
  if (c.i + 4 > c.s.size()) c.fail("truncated \\u escape");
  uint32_t v = 0;
  for (int k = 0; k < 4; ++k) {
    char h = c.s[c.i++];
    v <<= 4;
    if (h >= '0' && h <= '9') v |= h - '0';
    else if (h >= 'a' && h <= 'f') v |= h - 'a' + 10;
    else if (h >= 'A' && h <= 'F') v |= h - 'A' + 10;
    else c.fail("bad \\u escape");
  }
  return v;
}

std::string parse_json_string_line(const std::string &line) {
  Cursor c{line};
  c.ws();
  if (c.i >= line.size() || line[c.i] != '"') c.fail("expected a JSON string");
  ++c.i;
  std::string out;
  for (;;) {
    if (c.i >= line.size()) c.fail("unterminated string");
    char ch = line[c.i++];
    if (ch == '"') break;
    if ((unsigned char)ch < 0x20) c.fail("control character in string");
    if (ch != '\\') {
      out += ch;
      continue;
    }
    if (c.i >= line.size()) c.fail("truncated escape");
    char e = line[c.i++];
    switch (e) {
    case '"': out += '"'; break;
    case '\\': out += '\\'; break;
    case '/': out += '/'; break;
    case 'b': out += '\b'; break;
    case 'f': out += '\f'; break;
    case 'n': out += '\n'; break;
    case 'r': out += '\r'; break;
    case 't': out += '\t'; break;
    case 'u': {
      uint32_t cp = hex4(c);
      if (cp >= 0xD800 && cp < 0xDC00 && c.i + 6 <= line.size() && line[c.i] == '\\' &&
          line[c.i + 1] == 'u') {
        size_t save = c.i;
        c.i += 2;
        uint32_t lo = hex4(c);
        if (lo >= 0xDC00 && lo < 0xE000) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        else c.i = save;
      }
      if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD;  // lone surrogate
      put_utf8(out, cp);
      break;
    }
    default: c.fail(std::string("bad escape \\") + e);
    }
  }
  c.ws();
  if (c.i != line.size()) c.fail("trailing characters after the string");
  return out;
}

std::vector<llama_token> parse_json_int_array_line(const std::string &line) {
  Cursor c{line};
  std::vector<llama_token> out;
  c.ws();
  if (c.i >= line.size() || line[c.i] != '[') c.fail("expected a JSON array of integers");
  ++c.i;
  c.ws();
  if (c.i < line.size() && line[c.i] == ']') {
    ++c.i;
  } else {
    for (;;) {
      c.ws();
      size_t start = c.i;
      if (c.i < line.size() && line[c.i] == '-') ++c.i;
      while (c.i < line.size() && line[c.i] >= '0' && line[c.i] <= '9') ++c.i;
      if (c.i == start || (c.i == start + 1 && line[start] == '-')) c.fail("expected an integer");
      long long v = std::strtoll(line.substr(start, c.i - start).c_str(), nullptr, 10);
      if (v < INT32_MIN || v > INT32_MAX) c.fail("integer out of range");
      out.push_back((llama_token)v);
      c.ws();
      if (c.i < line.size() && line[c.i] == ',') { ++c.i; continue; }
      if (c.i < line.size() && line[c.i] == ']') { ++c.i; break; }
      c.fail("expected ',' or ']'");
    }
  }
  c.ws();
  if (c.i != line.size()) c.fail("trailing characters after the array");
  return out;
}

// Length of the valid UTF-8 sequence at s[i], 0 if invalid.
size_t utf8_len(const std::string &s, size_t i) {
  unsigned char b = s[i];
  size_t n;
  uint32_t cp;
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b < 0xE0) { n = 2; cp = b & 0x1F; }
  else if (b >= 0xE0 && b < 0xF0) { n = 3; cp = b & 0x0F; }
  else if (b >= 0xF0 && b < 0xF5) { n = 4; cp = b & 0x07; }
  else return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    unsigned char cb = s[i + k];
    if ((cb & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cb & 0x3F);
  }
  if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp < 0xE000))) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
    return 0;
  return n;
}

std::string json_string(const std::string &s) {
  std::string out = "\"";
  char buf[8];
  for (size_t i = 0; i < s.size();) {
    unsigned char ch = s[i];
    if (ch == '"') { out += "\\\""; ++i; }
    else if (ch == '\\') { out += "\\\\"; ++i; }
    else if (ch == '\n') { out += "\\n"; ++i; }
    else if (ch == '\r') { out += "\\r"; ++i; }
    else if (ch == '\t') { out += "\\t"; ++i; }
    else if (ch < 0x20 || ch == 0x7F) {
      std::snprintf(buf, sizeof buf, "\\u%04x", ch);
      out += buf;
      ++i;
    } else {
      size_t n = utf8_len(s, i);
      if (n == 0) { out += "\xEF\xBF\xBD"; ++i; }
      else { out.append(s, i, n); i += n; }
    }
  }
  return out + "\"";
}

void print_float(std::string &out, float v) {
  char buf[32];
  if (std::isnan(v)) out += "NaN";
  else if (std::isinf(v)) out += v > 0 ? "Infinity" : "-Infinity";
  else {
    std::snprintf(buf, sizeof buf, "%.9g", (double)v);
    out += buf;
  }
}

llama_token argmax(const float *logits, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = i;
  return best;
}

// ---- modes ------------------------------------------------------------------

int run_tokenize(const llama_vocab *vocab, bool parse_special) {
  std::string line;
  std::vector<llama_token> toks;
  size_t lineno = 0;
  while (std::getline(std::cin, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::string text;
    try {
      text = parse_json_string_line(line);
    } catch (const std::exception &e) {
      die("stdin line " + std::to_string(lineno) + ": " + e.what());
    }
    toks.resize(text.size() + 16);
    int32_t n = llama_tokenize(vocab, text.data(), (int32_t)text.size(), toks.data(), (int32_t)toks.size(),
                               /*add_special=*/false, parse_special);
    if (n == INT32_MIN) die("stdin line " + std::to_string(lineno) + ": tokenization overflow");
    if (n < 0) {
      toks.resize(-n);
      n = llama_tokenize(vocab, text.data(), (int32_t)text.size(), toks.data(), (int32_t)toks.size(), false,
                         parse_special);
      if (n < 0) die("stdin line " + std::to_string(lineno) + ": llama_tokenize failed");
    }
    std::string out = "[";
    for (int32_t i = 0; i < n; ++i) {
      if (i) out += ", ";
      out += std::to_string(toks[i]);
    }
    out += "]\n";
    std::fputs(out.c_str(), stdout);
    std::fflush(stdout);
  }
  return 0;
}

int run_detokenize(const llama_vocab *vocab) {
  const int32_t n_vocab = llama_vocab_n_tokens(vocab);
  std::string line;
  size_t lineno = 0;
  while (std::getline(std::cin, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::vector<llama_token> toks;
    try {
      toks = parse_json_int_array_line(line);
    } catch (const std::exception &e) {
      die("stdin line " + std::to_string(lineno) + ": " + e.what());
    }
    for (llama_token t : toks)
      if (t < 0 || t >= n_vocab)
        die("stdin line " + std::to_string(lineno) + ": token id " + std::to_string(t) +
            " out of range [0, " + std::to_string(n_vocab) + ")");
    std::string text(toks.size() * 8 + 16, '\0');
    int32_t n = llama_detokenize(vocab, toks.data(), (int32_t)toks.size(), text.data(), (int32_t)text.size(),
                                 /*remove_special=*/false, /*unparse_special=*/false);
    if (n < 0) {
      text.resize(-n);
      n = llama_detokenize(vocab, toks.data(), (int32_t)toks.size(), text.data(), (int32_t)text.size(), false, false);
      if (n < 0) die("stdin line " + std::to_string(lineno) + ": llama_detokenize failed");
    }
    text.resize(n);
    std::string out = json_string(text) + "\n";
    std::fputs(out.c_str(), stdout);
    std::fflush(stdout);
  }
  return 0;
}

int run_eval(llama_model *model, const std::vector<llama_token> &prompt, int n_gen, int threads, int n_ctx_arg) {
  const llama_vocab *vocab = llama_model_get_vocab(model);
  const int32_t n_vocab = llama_vocab_n_tokens(vocab);
  for (llama_token t : prompt)
    if (t < 0 || t >= n_vocab)
      die("token id " + std::to_string(t) + " out of range [0, " + std::to_string(n_vocab) + ")");

  const int n_prompt = (int)prompt.size();
  const int needed = n_prompt + (n_gen > 0 ? n_gen - 1 : 0);
  if (n_ctx_arg > 0 && n_ctx_arg < needed)
    die("--ctx " + std::to_string(n_ctx_arg) + " is too small for " + std::to_string(n_prompt) +
        " prompt tokens and " + std::to_string(n_gen) + " generated");

  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = (uint32_t)(n_ctx_arg > 0 ? n_ctx_arg : needed);
  cp.n_batch = (uint32_t)std::max(n_prompt, 512);
  cp.n_ubatch = cp.n_batch;  // the whole prompt in one physical batch
  cp.n_seq_max = 1;
  cp.n_threads = threads;
  cp.n_threads_batch = threads;
  cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
  cp.type_k = GGML_TYPE_F32;
  cp.type_v = GGML_TYPE_F32;
  cp.offload_kqv = false;
  cp.op_offload = false;
  cp.no_perf = true;
  cp.embeddings = false;

  llama_context *ctx = llama_init_from_model(model, cp);
  if (!ctx) die("failed to create the llama.cpp context (run with --verbose for llama.cpp's log)");

  std::vector<llama_token> buf(prompt);
  int32_t rc = llama_decode(ctx, llama_batch_get_one(buf.data(), n_prompt));
  if (rc != 0) die("llama_decode of the prompt failed with status " + std::to_string(rc));
  const float *logits = llama_get_logits_ith(ctx, -1);
  if (!logits) die("no logits for the last prompt position");

  std::string out = "{\"n_vocab\": " + std::to_string(n_vocab) + ", \"logits\": [";
  out.reserve(out.size() + (size_t)n_vocab * 16);
  for (int32_t i = 0; i < n_vocab; ++i) {
    if (i) out += ", ";
    print_float(out, logits[i]);
  }
  out += "], \"tokens\": [";
  for (int k = 0; k < n_gen; ++k) {
    llama_token t = argmax(logits, n_vocab);
    if (k) out += ", ";
    out += std::to_string(t);
    if (k + 1 == n_gen) break;
    rc = llama_decode(ctx, llama_batch_get_one(&t, 1));
    if (rc != 0) die("llama_decode of generated token " + std::to_string(k + 1) + " failed with status " + std::to_string(rc));
    logits = llama_get_logits_ith(ctx, -1);
    if (!logits) die("no logits for generated token " + std::to_string(k + 1));
  }
  out += "]}\n";
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
  llama_free(ctx);
  return 0;
}

/// --dequantize TYPE: stdin's blocks through ggml's to_float, floats out.
int run_dequantize(const std::string &name) {
  static const std::pair<const char *, ggml_type> types[] = {
      {"F32", GGML_TYPE_F32},   {"F16", GGML_TYPE_F16},   {"BF16", GGML_TYPE_BF16},
      {"Q8_0", GGML_TYPE_Q8_0}, {"Q4_0", GGML_TYPE_Q4_0}, {"Q4_1", GGML_TYPE_Q4_1},
      {"Q5_0", GGML_TYPE_Q5_0}, {"Q5_1", GGML_TYPE_Q5_1}, {"Q4_K", GGML_TYPE_Q4_K},
      {"Q5_K", GGML_TYPE_Q5_K}, {"Q6_K", GGML_TYPE_Q6_K}};
  const ggml_type *type = nullptr;
  for (const auto &t : types)
    if (name == t.first) type = &t.second;
  if (!type) usage("--dequantize: unknown type '" + name + "'");
  const ggml_type_traits *traits = ggml_get_type_traits(*type);
  if (!traits || !traits->to_float) die("ggml has no to_float for " + name);
  std::vector<uint8_t> in;
  char buf[65536];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, stdin)) > 0) in.insert(in.end(), buf, buf + got);
  if (in.size() % traits->type_size)
    die("--dequantize " + name + ": " + std::to_string(in.size()) +
        " bytes are not whole blocks of " + std::to_string(traits->type_size));
  int64_t n = (int64_t)(in.size() / traits->type_size) * traits->blck_size;
  std::vector<float> out(n);
  traits->to_float(in.data(), out.data(), n);
  if (n && std::fwrite(out.data(), sizeof(float), n, stdout) != (size_t)n)
    die("cannot write stdout");
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc == 3 && std::string(argv[1]) == "--dequantize") return run_dequantize(argv[2]);
  std::string model_path, tokens_arg;
  bool have_tokens = false, tokenize = false, detokenize = false, verbose = false, parse_special = false;
  int n_gen = 32, threads = 0, n_ctx = 0;

  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char *name) -> std::string {
      if (i + 1 >= argc) usage(std::string(name) + " needs a value");
      return argv[++i];
    };
    if (a == "--tokens") { tokens_arg = value("--tokens"); have_tokens = true; }
    else if (a == "-n" || a == "--n-predict") n_gen = (int)parse_int(value("-n"), "-n");
    else if (a == "--threads" || a == "-t") threads = (int)parse_int(value("--threads"), "--threads");
    else if (a == "--ctx" || a == "-c") n_ctx = (int)parse_int(value("--ctx"), "--ctx");
    else if (a == "--tokenize") tokenize = true;
    else if (a == "--parse-special") parse_special = true;
    else if (a == "--detokenize") detokenize = true;
    else if (a == "--verbose" || a == "-v") verbose = true;
    else if (a == "-h" || a == "--help") { std::fputs(kUsage, stdout); return 0; }
    else if (!a.empty() && a[0] == '-') usage("unknown option " + a);
    else if (model_path.empty()) model_path = a;
    else usage("more than one model path: '" + model_path + "' and '" + a + "'");
  }
  if (model_path.empty()) usage("no model path");
  if ((int)have_tokens + (int)tokenize + (int)detokenize != 1)
    usage("give exactly one of --tokens, --tokenize, --detokenize");
  if (n_gen < 0) usage("-n must be >= 0");
  if (n_ctx < 0) usage("--ctx must be >= 0");
  if (threads < 0) usage("--threads must be >= 0");
  if (threads == 0) threads = (int)std::max(1u, std::thread::hardware_concurrency());

  std::vector<llama_token> prompt;
  if (have_tokens) {
    prompt = parse_token_list(tokens_arg);
    if (prompt.empty()) usage("--tokens is empty");
  }

  if (!verbose) llama_log_set(quiet_log, nullptr);
  if (FILE *f = std::fopen(model_path.c_str(), "rb")) std::fclose(f);
  else die("cannot open model file '" + model_path + "': " + std::strerror(errno));

  llama_backend_init();
  llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = 0;
  mp.split_mode = LLAMA_SPLIT_MODE_NONE;
  mp.load_mode = LLAMA_LOAD_MODE_NONE;  // read the file, no mmap
  mp.lazy_mode = LLAMA_LAZY_MODE_OFF;
  mp.use_extra_bufts = false;           // no CPU weight repacking: the plain kernels
  mp.vocab_only = tokenize || detokenize;
  mp.check_tensors = false;

  llama_model *model = llama_model_load_from_file(model_path.c_str(), mp);
  if (!model) die("failed to load model '" + model_path + "' (run with --verbose for llama.cpp's log)");

  int rc;
  const llama_vocab *vocab = llama_model_get_vocab(model);
  if (tokenize) rc = run_tokenize(vocab, parse_special);
  else if (detokenize) rc = run_detokenize(vocab);
  else rc = run_eval(model, prompt, n_gen, threads, n_ctx);

  llama_model_free(model);
  llama_backend_free();
  return rc;
}
