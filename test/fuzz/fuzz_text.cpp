//===- fuzz_text.cpp - libFuzzer target: tokenizers, streaming, JSON ------===//
//
// Any bytes as text: byte-level encoding and decoding round-trip exactly;
// the BPE tokenizers (byte-level with GPT-2's, Llama 3's and Qwen2's
// pre-tokenizers; SentencePiece by score and by merge rank, with byte
// fallback) refuse invalid UTF-8 and round-trip valid UTF-8
// exactly, and decode any ids; streaming in arbitrary chunks reproduces the
// input, JSON escaping always yields valid UTF-8 without control characters
// between quotes, and replaceInvalidUtf8 changes exactly the texts that are
// not valid UTF-8.
//
//===----------------------------------------------------------------------===//

#include "kiln/rt/model.h"

#include "kiln_generated.h"

#include <cstdlib>
#include <set>

using namespace kiln::rt;

namespace {
/// Words whose prefixes become merged tokens.
const char *const kWords[] = {"the", " the", "and", " and", "ing", "er",
                              " in", "on", "\xc3\xa9t\xc3\xa9",
                              "\xe6\x97\xa5\xe6\x9c\xac", "  ", "12"};

/// Appends the merges that build every prefix of `units` (already tokens).
void addPrefixMerges(const std::vector<std::string> &units, ModelFile &m,
                     std::set<std::string> &have) {
  std::string acc = units[0];
  for (size_t i = 1; i < units.size(); ++i) {
    std::string next = acc + units[i];
    if (!have.count(next)) {
      m.merges.push_back(acc + " " + units[i]);
      m.pieces.push_back(next);
      have.insert(next);
    }
    acc = next;
  }
}

/// A byte-level BPE model with pre-tokenizer `pre` (GPT-2's, or Llama 3's
/// with ignore_merges, or Qwen2's).
ModelFile *
gpt2Model(kiln::fb::PreTokenizer pre = kiln::fb::PreTokenizer::GPT2) {
  auto *m = new ModelFile();
  m->tokenizer = kiln::fb::TokenizerKind::GPT2BPE;
  m->preTokenizer = pre;
  m->ignoreMerges = pre == kiln::fb::PreTokenizer::Llama3;
  std::set<std::string> have;
  for (int b = 0; b < 256; ++b) {
    m->pieces.push_back(gpt2ByteChar(b));
    have.insert(m->pieces.back());
  }
  for (const char *w : kWords) {
    std::vector<std::string> units;
    for (const char *c = w; *c; ++c)
      units.push_back(gpt2ByteChar((unsigned char)*c));
    addPrefixMerges(units, *m, have);
  }
  m->pieces.push_back("<|endoftext|>");
  m->vocabSize = m->pieces.size();
  m->tokenTypes.assign(m->vocabSize, 1);
  m->tokenTypes.back() = 3;
  m->eosId = m->vocabSize - 1;
  m->contextLength = 64;
  if (validateTokenizer(*m))
    std::abort();
  return m;
}

ModelFile *spmModel(bool byScore) {
  auto *m = new ModelFile();
  m->tokenizer = kiln::fb::TokenizerKind::SentencePieceBPE;
  m->pieces = {"<unk>", "<s>", "</s>"};
  m->tokenTypes = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    m->pieces.push_back(buf);
    m->tokenTypes.push_back(6);
  }
  std::set<std::string> have(m->pieces.begin(), m->pieces.end());
  const std::string U = "\xe2\x96\x81";
  auto units = [&](const std::string &w) {
    std::vector<std::string> out;
    for (size_t i = 0; i < w.size();) {
      size_t n = w.compare(i, 3, U) == 0 ? 3
                 : ((unsigned char)w[i] >= 0xF0) ? 4
                 : ((unsigned char)w[i] >= 0xE0) ? 3
                 : ((unsigned char)w[i] >= 0xC0) ? 2
                                                 : 1;
      out.push_back(w.substr(i, n));
      i += n;
    }
    return out;
  };
  for (const char *w : kWords) {
    std::string s;
    for (const char *c = w; *c; ++c)
      s += *c == ' ' ? U : std::string(1, *c);
    for (const std::string &u : units(s))
      if (have.insert(u).second)
        m->pieces.push_back(u);
  }
  for (const char *w : kWords) {
    std::string s;
    for (const char *c = w; *c; ++c)
      s += *c == ' ' ? U : std::string(1, *c);
    addPrefixMerges(units(s), *m, have);
  }
  m->vocabSize = m->pieces.size();
  m->tokenTypes.resize(m->vocabSize, 1);
  for (size_t i = 0; i < m->pieces.size(); ++i)
    m->scores.push_back(i < 259 ? 0.0f : -(float)i);
  if (byScore)
    m->merges.clear();
  else
    m->scores.clear();
  m->bosId = 1;
  m->eosId = 2;
  m->addBos = true;
  m->contextLength = 64;
  if (validateTokenizer(*m))
    std::abort();
  return m;
}

/// UTF-8 validity, written out independently of the tokenizer's decoder:
/// no overlong forms, surrogates or code points above U+10FFFF.
bool validUtf8(const std::string &s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = s[i];
    size_t n = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2
             : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (n == 0 || i + n > s.size())
      return false;
    for (size_t k = 1; k < n; ++k)
      if (((unsigned char)s[i + k] & 0xC0) != 0x80)
        return false;
    unsigned char c1 = s[i + 1 < s.size() ? i + 1 : i];
    if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F) ||
        (c == 0xF0 && c1 < 0x90) || (c == 0xF4 && c1 > 0x8F))
      return false;
    i += n;
  }
  return true;
}

[[noreturn]] void failCheck(const char *what, const std::string &text) {
  std::fprintf(stderr, "fuzz_text: %s for %s\n", what, jsonString(text).c_str());
  std::abort();
}

void checkBpe(const Tokenizer &t, const ModelFile &m, const std::string &text,
              const uint8_t *data, size_t size) {
  std::vector<int32_t> ids;
  auto err = t.encode(text, ids);
  bool valid = validUtf8(text);
  if (err && valid)
    failCheck(("valid UTF-8 refused: " + err->message).c_str(), text);
  if (!err && !valid)
    failCheck("invalid UTF-8 accepted", text);
  if (err)
    return;
  for (int32_t id : ids)
    if (id < 0 || id >= m.vocabSize)
      failCheck("id out of range", text);
  // SentencePiece reads U+2581 as the space it stands for (as
  // sentencepiece, llama.cpp and HF tokenizers do): it decodes to ' '.
  std::string want = text;
  if (m.tokenizer == kiln::fb::TokenizerKind::SentencePieceBPE)
    for (size_t p; (p = want.find("\xe2\x96\x81")) != std::string::npos;)
      want.replace(p, 3, " ");
  if (t.decode(ids) != want)
    failCheck(("round trip gave " + jsonString(t.decode(ids))).c_str(), text);
  // Any ids decode without crashing.
  std::vector<int32_t> any;
  for (size_t i = 0; i + 1 < size; i += 2)
    any.push_back((int32_t)((data[i] << 8 | data[i + 1]) % (m.vocabSize + 3)) - 1);
  (void)t.decode(any);
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static ModelFile *model = [] {
    auto *m = new ModelFile();
    m->vocabSize = 300;
    m->contextLength = 64;
    return m;
  }();
  static Tokenizer tokenizer(*model);
  std::string text(reinterpret_cast<const char *>(data), size);

  std::vector<int32_t> ids;
  if (tokenizer.encode(text, ids))
    std::abort();
  std::string back;
  for (int32_t id : ids)
    back += tokenizer.piece(id);
  if (back != text)
    std::abort();

  // Stream in chunks whose sizes come from the input itself.
  Utf8Stream stream;
  std::string out;
  for (size_t i = 0; i < size;) {
    size_t n = 1 + (data[i] % 5);
    out += stream.push(text.substr(i, n));
    i += n;
  }
  out += stream.flush();
  if (out != text)
    std::abort();

  static ModelFile *gpt2 = gpt2Model(), *spmScore = spmModel(true),
                   *spmRank = spmModel(false),
                   *llama3 = gpt2Model(kiln::fb::PreTokenizer::Llama3),
                   *qwen2 = gpt2Model(kiln::fb::PreTokenizer::Qwen2);
  static Tokenizer gpt2Tok(*gpt2), spmScoreTok(*spmScore), spmRankTok(*spmRank),
      llama3Tok(*llama3), qwen2Tok(*qwen2);
  checkBpe(gpt2Tok, *gpt2, text, data, size);
  checkBpe(llama3Tok, *llama3, text, data, size);
  checkBpe(qwen2Tok, *qwen2, text, data, size);
  checkBpe(spmScoreTok, *spmScore, text, data, size);
  checkBpe(spmRankTok, *spmRank, text, data, size);

  std::string json = jsonString(text);
  if (json.size() < 2 || json.front() != '"' || json.back() != '"')
    std::abort();
  for (unsigned char c : json)
    if (c < 0x20)
      std::abort();
  if (!validUtf8(json) || validUtf8(text) != (replaceInvalidUtf8(text) == text))
    std::abort();
  return 0;
}
