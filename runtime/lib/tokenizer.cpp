//===- tokenizer.cpp - Token <-> bytes, UTF-8 streaming and validity ------===//

#include "kiln/rt/model.h"

#include "kiln_generated.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <queue>

namespace kiln::rt {

/// Decodes one UTF-8 sequence at s[i]; returns its length (0 if invalid or
/// incomplete) and the code point.
static size_t utf8Decode(const std::string &s, size_t i, uint32_t &cp) {
  unsigned char c = s[i];
  size_t len;
  if (c < 0x80) {
    cp = c;
    return 1;
  } else if ((c & 0xE0) == 0xC0) {
    len = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size())
    return 0;
  for (size_t k = 1; k < len; ++k) {
    unsigned char cc = s[i + k];
    if ((cc & 0xC0) != 0x80)
      return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  // Reject overlong forms, surrogates and out-of-range code points.
  if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
      (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}

//===----------------------------------------------------------------------===//
// Character classes and GPT-2's byte-to-unicode map
//===----------------------------------------------------------------------===//

namespace {
struct CodePointRange {
  uint32_t first, last;
};
#include "unicode_tables.inc"

template <size_t N>
bool inRanges(const CodePointRange (&ranges)[N], uint32_t cp) {
  size_t lo = 0, hi = N;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (cp > ranges[mid].last)
      lo = mid + 1;
    else if (cp < ranges[mid].first)
      hi = mid;
    else
      return true;
  }
  return false;
}

enum class CharClass { Letter, Number, Space, Other };

CharClass classify(uint32_t cp) {
  if (cp < 0x80) { // the common case without a search
    if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z')
      return CharClass::Letter;
    if (cp >= '0' && cp <= '9')
      return CharClass::Number;
    if (cp == ' ' || (cp >= '\t' && cp <= '\r'))
      return CharClass::Space;
    return CharClass::Other;
  }
  if (inRanges(kLetterRanges, cp))
    return CharClass::Letter;
  if (inRanges(kNumberRanges, cp))
    return CharClass::Number;
  if (inRanges(kSpaceRanges, cp))
    return CharClass::Space;
  return CharClass::Other;
}

bool gpt2Printable(int b) {
  return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) ||
         (b >= 174 && b <= 255);
}

/// GPT-2's bytes_to_unicode(): printable bytes stand for themselves, the
/// others for U+0100 onwards in byte order.
uint32_t gpt2ByteToUnicode(int b) {
  if (gpt2Printable(b))
    return (uint32_t)b;
  uint32_t n = 0;
  for (int c = 0; c < b; ++c)
    n += !gpt2Printable(c);
  return 256 + n;
}

/// The inverse map: code point -> byte, or -1.
int gpt2UnicodeToByte(uint32_t cp) {
  if (cp < 256 && gpt2Printable((int)cp))
    return (int)cp;
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    if (gpt2Printable(b))
      continue;
    if (cp == (uint32_t)(256 + n))
      return b;
    ++n;
  }
  return -1;
}

void appendUtf8(std::string &out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back((char)cp);
  } else if (cp < 0x800) {
    out.push_back((char)(0xC0 | (cp >> 6)));
    out.push_back((char)(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back((char)(0xE0 | (cp >> 12)));
    out.push_back((char)(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back((char)(0x80 | (cp & 0x3F)));
  } else {
    out.push_back((char)(0xF0 | (cp >> 18)));
    out.push_back((char)(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back((char)(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back((char)(0x80 | (cp & 0x3F)));
  }
}

const char kSpaceMark[] = "\xe2\x96\x81"; // U+2581, SentencePiece's space

/// "<0xNN>" -> NN, or -1.
int bytePiece(const std::string &p) {
  unsigned v;
  if (p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>' &&
      std::isxdigit((unsigned char)p[3]) &&
      std::isxdigit((unsigned char)p[4]) &&
      std::sscanf(p.c_str() + 3, "%2x", &v) == 1)
    return (int)v;
  return -1;
}

constexpr int32_t kControl = 3, kUnknown = 2, kUserDefined = 4;

/// Splits a merge "left right" at its one space.
bool splitMerge(const std::string &m, std::string &a, std::string &b) {
  size_t sp = m.find(' ');
  if (sp == std::string::npos || sp == 0 || sp + 1 == m.size() ||
      m.find(' ', sp + 1) != std::string::npos)
    return false;
  a = m.substr(0, sp);
  b = m.substr(sp + 1);
  return true;
}

/// Code points of valid UTF-8 text with their byte offsets (one extra entry
/// holds the end); false at the first invalid byte, whose offset is `bad`.
bool codePoints(const std::string &text, std::vector<uint32_t> &cps,
                std::vector<size_t> &offsets, size_t &bad) {
  cps.clear();
  offsets.clear();
  for (size_t i = 0; i < text.size();) {
    uint32_t cp;
    size_t len = utf8Decode(text, i, cp);
    if (len == 0) {
      bad = i;
      return false;
    }
    cps.push_back(cp);
    offsets.push_back(i);
    i += len;
  }
  offsets.push_back(text.size());
  return true;
}

/// GPT-2's pre-tokenizer, the regular expression
///   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
/// matched by hand: returns the end (in code points) of the match at i.
size_t gpt2Match(const std::vector<uint32_t> &c, size_t i) {
  size_t n = c.size();
  if (c[i] == '\'' && i + 1 < n) {
    uint32_t a = c[i + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
      return i + 2;
    if (i + 2 < n) {
      uint32_t b = c[i + 2];
      if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') ||
          (a == 'l' && b == 'l'))
        return i + 3;
    }
  }
  size_t k = i + (c[i] == ' ' ? 1 : 0);
  if (k < n) {
    CharClass cls = classify(c[k]);
    if (cls != CharClass::Space) {
      size_t e = k + 1;
      while (e < n && classify(c[e]) == cls)
        ++e;
      return e;
    }
  }
  // Whitespace: the run, less its last character when a non-space follows
  // (that space then prefixes the next word), but at least one character.
  size_t e = i;
  while (e < n && classify(c[e]) == CharClass::Space)
    ++e;
  if (e < n && e - i >= 2)
    return e - 1;
  return e;
}

/// Llama 3's pre-tokenizer (`maxDigits` 3), or Qwen2's (1):
///   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
///   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
/// matched by hand as llama.cpp's unicode_regex_split_custom_llama3 does:
/// returns the end (in code points) of the match at i.
size_t llama3Match(const std::vector<uint32_t> &c, size_t i, size_t maxDigits) {
  size_t n = c.size();
  auto lower = [](uint32_t cp) {
    return cp >= 'A' && cp <= 'Z' ? cp + ('a' - 'A') : cp;
  };
  auto isNewline = [](uint32_t cp) { return cp == '\r' || cp == '\n'; };
  uint32_t cp = c[i];
  if (cp == '\'' && i + 1 < n) {
    uint32_t a = lower(c[i + 1]);
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
      return i + 2;
    if (i + 2 < n) {
      uint32_t b = lower(c[i + 2]);
      if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') ||
          (a == 'l' && b == 'l'))
        return i + 3;
    }
  }
  CharClass k = classify(cp);
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (!isNewline(cp) && k != CharClass::Number &&
      (k == CharClass::Letter ||
       (i + 1 < n && classify(c[i + 1]) == CharClass::Letter))) {
    size_t e = i + 1;
    while (e < n && classify(c[e]) == CharClass::Letter)
      ++e;
    return e;
  }
  // \p{N}{1,maxDigits}
  if (k == CharClass::Number) {
    size_t e = i + 1;
    while (e < n && e - i < maxDigits && classify(c[e]) == CharClass::Number)
      ++e;
    return e;
  }
  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  size_t p = i + (cp == ' ' ? 1 : 0);
  if (p < n && classify(c[p]) == CharClass::Other) {
    size_t e = p + 1;
    while (e < n && classify(c[e]) == CharClass::Other)
      ++e;
    while (e < n && isNewline(c[e]))
      ++e;
    return e;
  }
  // Whitespace: up to the last newline of the run (\s*[\r\n]+), else the
  // run less its last character when a non-space follows (\s+(?!\S)), else
  // the run.
  size_t e = i, lastNewline = 0;
  while (e < n && classify(c[e]) == CharClass::Space) {
    if (isNewline(c[e]))
      lastNewline = e + 1;
    ++e;
  }
  if (lastNewline)
    return lastNewline;
  if (e - i > 1 && e < n)
    return e - 1;
  return e > i ? e : i + 1;
}

/// The end of the pre-token at i under `pre`.
size_t preTokenMatch(fb::PreTokenizer pre, const std::vector<uint32_t> &c,
                     size_t i) {
  switch (pre) {
  case fb::PreTokenizer::Llama3:
    return llama3Match(c, i, 3);
  case fb::PreTokenizer::Qwen2:
    return llama3Match(c, i, 1);
  default:
    return gpt2Match(c, i);
  }
}
} // namespace

//===----------------------------------------------------------------------===//
// Tokenizer
//===----------------------------------------------------------------------===//

std::string gpt2ByteChar(int b) {
  std::string s;
  appendUtf8(s, gpt2ByteToUnicode(b));
  return s;
}

std::optional<std::string> validateTokenizer(const ModelFile &m) {
  if (m.tokenizer == fb::TokenizerKind::Bytes)
    return std::nullopt;
  size_t n = m.pieces.size();
  if (!m.scores.empty() && m.scores.size() != n)
    return "the tokenizer has " + std::to_string(m.scores.size()) +
           " scores for " + std::to_string(n) + " tokens";
  if (!m.tokenTypes.empty() && m.tokenTypes.size() != n)
    return "the tokenizer has " + std::to_string(m.tokenTypes.size()) +
           " token types for " + std::to_string(n) + " tokens";
  for (float s : m.scores)
    if (!std::isfinite(s))
      return std::string("the tokenizer has a score that is not finite");
  std::unordered_map<std::string, int32_t> byPiece;
  for (size_t id = 0; id < n; ++id)
    byPiece.emplace(m.pieces[id], (int32_t)id);
  for (size_t r = 0; r < m.merges.size(); ++r) {
    std::string a, b;
    if (!splitMerge(m.merges[r], a, b))
      return "tokenizer merge " + std::to_string(r) + " ('" + m.merges[r] +
             "') is not two pieces separated by one space";
    if (!byPiece.count(a) || !byPiece.count(b) || !byPiece.count(a + b))
      return "tokenizer merge " + std::to_string(r) + " ('" + m.merges[r] +
             "') names a token that is not in the vocabulary";
  }
  if (m.tokenizer == fb::TokenizerKind::GPT2BPE) {
    for (int b = 0; b < 256; ++b) {
      if (!byPiece.count(gpt2ByteChar(b))) {
        char buf[64];
        std::snprintf(buf, sizeof buf,
                      "the GPT-2 vocabulary has no token for byte 0x%02X", b);
        return std::string(buf);
      }
    }
  } else if (m.merges.empty() && m.scores.empty()) {
    return std::string(
        "a SentencePiece tokenizer needs scores or merges");
  }
  return std::nullopt;
}

Tokenizer::Tokenizer(const ModelFile &model) : model(model) {
  std::fill(std::begin(byteToken), std::end(byteToken), -1);
  if (model.tokenizer == fb::TokenizerKind::Bytes) {
    // Ids below 256 are the bytes; named pieces above them print as named.
    decoded.resize(std::max<size_t>(256, model.pieces.size()));
    for (size_t id = 0; id < decoded.size(); ++id)
      decoded[id] = id < 256 ? std::string(1, (char)id) : model.pieces[id];
    return;
  }
  bool gpt2 = model.tokenizer == fb::TokenizerKind::GPT2BPE;
  decoded.resize(model.pieces.size());
  for (size_t id = 0; id < model.pieces.size(); ++id) {
    const std::string &p = model.pieces[id];
    byPiece.emplace(p, (int32_t)id);
    int32_t type = id < model.tokenTypes.size() ? model.tokenTypes[id] : 1;
    if (type == kUnknown && unkId < 0)
      unkId = (int32_t)id;
    if (type == kControl)
      continue; // BOS, EOS, ...: no text
    std::string out;
    if (gpt2) {
      for (size_t i = 0; i < p.size();) {
        uint32_t cp;
        size_t len = utf8Decode(p, i, cp);
        int b = len ? gpt2UnicodeToByte(cp) : -1;
        if (b < 0) { // not a byte-level piece (e.g. an added token): as is
          out = p;
          break;
        }
        out.push_back((char)b);
        i += len;
      }
    } else if (int b = bytePiece(p); b >= 0) {
      out.push_back((char)b);
      if (byteToken[b] < 0)
        byteToken[b] = (int32_t)id;
    } else {
      for (size_t i = 0; i < p.size(); ++i) {
        if (p.compare(i, 3, kSpaceMark) == 0) {
          out.push_back(' ');
          i += 2;
        } else {
          out.push_back(p[i]);
        }
      }
    }
    decoded[id] = std::move(out);
  }
  if (gpt2) {
    for (int b = 0; b < 256; ++b) {
      auto it = byPiece.find(gpt2ByteChar(b));
      byteToken[b] = it == byPiece.end() ? -1 : it->second;
    }
  }
  if (unkId < 0)
    if (auto it = byPiece.find("<unk>"); it != byPiece.end())
      unkId = it->second;
  // Pieces matched in text before BPE (llama.cpp's cache_special_tokens):
  // control, user-defined and unknown tokens, longest first.
  for (size_t id = 0; id < model.pieces.size() && id < model.tokenTypes.size();
       ++id) {
    int32_t type = model.tokenTypes[id];
    if ((type == kControl || type == kUserDefined || type == kUnknown) &&
        !model.pieces[id].empty())
      specials.push_back({(int32_t)id, type == kUserDefined});
  }
  std::stable_sort(specials.begin(), specials.end(),
                   [&](const Special &a, const Special &b) {
                     return model.pieces[a.id].size() >
                            model.pieces[b.id].size();
                   });
  for (size_t r = 0; r < model.merges.size(); ++r) {
    std::string a, b;
    if (!splitMerge(model.merges[r], a, b))
      continue; // validated before; defensive
    auto ia = byPiece.find(a), ib = byPiece.find(b), ir = byPiece.find(a + b);
    if (ia == byPiece.end() || ib == byPiece.end() || ir == byPiece.end())
      continue;
    uint64_t key = (uint64_t)(uint32_t)ia->second << 32 | (uint32_t)ib->second;
    mergeByPair.emplace(key, Merge{(double)r, ir->second});
  }
}

std::optional<Tokenizer::Merge>
Tokenizer::findMerge(const std::string &text, size_t aBegin, int32_t a,
                     size_t bEnd, int32_t b) const {
  if (!model.merges.empty()) { // by rank (GPT-2, Hugging Face BPE)
    if (a < 0 || b < 0)
      return std::nullopt;
    auto it = mergeByPair.find((uint64_t)(uint32_t)a << 32 | (uint32_t)b);
    if (it == mergeByPair.end())
      return std::nullopt;
    return it->second;
  }
  // By score (SentencePiece): the concatenation must be a token.
  auto it = byPiece.find(text.substr(aBegin, bEnd - aBegin));
  if (it == byPiece.end())
    return std::nullopt;
  int32_t type = model.tokenTypes.empty() ? 1 : model.tokenTypes[it->second];
  if (type != 1 && type != 4) // only normal and user-defined pieces merge
    return std::nullopt;
  return Merge{-(double)model.scores[it->second], it->second};
}

/// BPE over `text`'s symbols: for GPT-2 the bytes of one pre-token, for
/// SentencePiece the characters of the normalized text. The adjacent pair
/// with the best merge (lowest rank or highest score, then leftmost) merges
/// first, until no pair merges; symbols that are no token become byte
/// tokens (byte fallback).
void Tokenizer::bpe(const std::string &text, std::vector<int32_t> &ids) const {
  struct Symbol {
    size_t begin, end;
    int32_t id;
    int prev, next;
    bool alive;
  };
  std::vector<Symbol> sym;
  bool gpt2 = model.tokenizer == fb::TokenizerKind::GPT2BPE;
  for (size_t i = 0; i < text.size();) {
    size_t len = 1;
    int32_t id;
    if (gpt2) {
      id = byteToken[(unsigned char)text[i]];
    } else {
      uint32_t cp;
      len = utf8Decode(text, i, cp); // valid: checked by encode()
      auto it = byPiece.find(text.substr(i, len));
      id = it == byPiece.end() ? -1 : it->second;
    }
    int k = (int)sym.size();
    sym.push_back({i, i + len, id, k - 1, k + 1, true});
    i += len;
  }
  if (sym.empty())
    return;
  sym.back().next = -1;

  struct Candidate {
    double priority;
    int left, right;
    int32_t leftId, rightId, result;
  };
  auto worse = [](const Candidate &x, const Candidate &y) {
    return x.priority != y.priority ? x.priority > y.priority
                                    : x.left > y.left;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(worse)>
      queue(worse);
  auto consider = [&](int l) {
    if (l < 0 || sym[l].next < 0)
      return;
    int r = sym[l].next;
    if (auto m = findMerge(text, sym[l].begin, sym[l].id, sym[r].end,
                           sym[r].id))
      queue.push({m->priority, l, r, sym[l].id, sym[r].id, m->result});
  };
  for (int i = 0; i + 1 < (int)sym.size(); ++i)
    consider(i);
  while (!queue.empty()) {
    Candidate c = queue.top();
    queue.pop();
    Symbol &l = sym[c.left];
    if (!l.alive || l.next != c.right || l.id != c.leftId ||
        !sym[c.right].alive || sym[c.right].id != c.rightId)
      continue; // stale: one side has merged since
    Symbol &r = sym[c.right];
    l.end = r.end;
    l.id = c.result;
    l.next = r.next;
    r.alive = false;
    if (l.next >= 0)
      sym[l.next].prev = c.left;
    consider(l.prev);
    consider(c.left);
  }
  for (int i = 0; i >= 0; i = sym[i].next) {
    if (sym[i].id >= 0)
      ids.push_back(sym[i].id);
    else
      appendBytes(text.substr(sym[i].begin, sym[i].end - sym[i].begin), ids);
  }
}

void Tokenizer::appendBytes(const std::string &bytes,
                            std::vector<int32_t> &ids) const {
  for (unsigned char b : bytes)
    ids.push_back(byteToken[b] >= 0 ? byteToken[b] : unkId);
}

std::optional<Error> Tokenizer::encode(const std::string &text,
                                       std::vector<int32_t> &ids,
                                       bool parseSpecial) const {
  ids.clear();
  if (model.tokenizer == fb::TokenizerKind::Bytes) {
    // Text is what a model reads: the source of an encoder-decoder model.
    int64_t vocab =
        model.encoderDecoder ? model.sourceVocabSize : model.vocabSize;
    if (vocab < 256)
      return Error{kExitModel, "a byte-level model needs at least 256 tokens"};
    if (model.addBos && model.bosId >= 0)
      ids.push_back((int32_t)model.bosId);
    for (unsigned char c : text)
      ids.push_back(c);
    return std::nullopt;
  }
  std::vector<uint32_t> cps;
  std::vector<size_t> offsets;
  size_t bad = 0;
  if (!codePoints(text, cps, offsets, bad)) {
    char buf[96];
    std::snprintf(buf, sizeof buf,
                  "the prompt is not valid UTF-8 (byte 0x%02X at offset %zu)",
                  (unsigned char)text[bad], bad);
    return Error{kExitUsage, buf};
  }
  if (model.addBos && model.bosId >= 0)
    ids.push_back((int32_t)model.bosId);
  // llama.cpp's tokenizer_st_partition: each special piece, longest first,
  // splits the text fragments left (id < 0) at its occurrences, left to
  // right. User-defined pieces always; control and unknown ones only when
  // parsing special tokens.
  struct Fragment {
    size_t begin, end;
    int32_t id; ///< a special token, or -1: text
  };
  std::vector<Fragment> frags;
  if (!text.empty())
    frags.push_back({0, text.size(), -1});
  for (const Special &s : specials) {
    if (!parseSpecial && !s.userDefined)
      continue;
    const std::string &p = model.pieces[s.id];
    std::vector<Fragment> next;
    for (const Fragment &f : frags) {
      if (f.id >= 0) {
        next.push_back(f);
        continue;
      }
      size_t at = f.begin;
      for (;;) {
        size_t hit = text.find(p, at);
        if (hit == std::string::npos || hit + p.size() > f.end)
          break;
        if (hit > at)
          next.push_back({at, hit, -1});
        next.push_back({hit, hit + p.size(), s.id});
        at = hit + p.size();
      }
      if (at < f.end)
        next.push_back({at, f.end, -1});
    }
    frags.swap(next);
  }
  // SentencePiece's space prefix goes before the first text and before
  // text that follows a special token (llama.cpp: is_prev_special).
  bool prevSpecial = true;
  for (const Fragment &f : frags) {
    if (f.id >= 0) {
      ids.push_back(f.id);
      prevSpecial = true;
      continue;
    }
    std::string part = text.substr(f.begin, f.end - f.begin);
    if (model.tokenizer == fb::TokenizerKind::GPT2BPE) {
      std::vector<uint32_t> pcps;
      std::vector<size_t> poffs;
      codePoints(part, pcps, poffs, bad); // valid: a piece of valid text
      for (size_t i = 0; i < pcps.size();) {
        size_t j = preTokenMatch(model.preTokenizer, pcps, i);
        std::string word = part.substr(poffs[i], poffs[j] - poffs[i]);
        i = j;
        if (model.ignoreMerges) {
          // A pre-token that is a token is that token (Llama 3). Its piece:
          // each byte as GPT-2's byte character, appended in place.
          std::string piece;
          for (char ch : word)
            appendUtf8(piece, gpt2ByteToUnicode((unsigned char)ch));
          auto it = byPiece.find(piece);
          if (it != byPiece.end()) {
            ids.push_back(it->second);
            continue;
          }
        }
        bpe(word, ids);
      }
    } else {
      std::string normalized;
      if (model.addSpacePrefix && prevSpecial)
        normalized = kSpaceMark;
      for (char c : part) {
        if (c == ' ')
          normalized += kSpaceMark;
        else
          normalized.push_back(c);
      }
      bpe(normalized, ids);
    }
    prevSpecial = false;
  }
  for (int32_t id : ids)
    if (id < 0)
      return Error{kExitModel, "the text needs a byte this vocabulary has no "
                               "token for (and it has no <unk>)"};
  return std::nullopt;
}

const std::string &Tokenizer::piece(int32_t id) const {
  static const std::string empty;
  if (id < 0 || id >= model.vocabSize || (size_t)id >= decoded.size())
    return empty;
  return decoded[id];
}

std::string Tokenizer::decode(const std::vector<int32_t> &ids) const {
  std::string out;
  for (int32_t id : ids) {
    if (model.tokenizer == fb::TokenizerKind::Bytes && id == model.bosId)
      continue;
    out += piece(id);
  }
  if (model.tokenizer == fb::TokenizerKind::SentencePieceBPE &&
      model.addSpacePrefix && !out.empty() && out[0] == ' ')
    out.erase(0, 1);
  return out;
}

std::string Utf8Stream::push(const std::string &bytes) {
  pending += bytes;
  // Find the last position that ends a complete character (or an invalid
  // byte, which is passed through rather than held forever).
  size_t cut = pending.size();
  size_t back = 0;
  while (back < 4 && back < pending.size()) {
    unsigned char c = pending[pending.size() - 1 - back];
    if ((c & 0xC0) != 0x80) {
      size_t need = c < 0x80             ? 1
                    : (c & 0xE0) == 0xC0 ? 2
                    : (c & 0xF0) == 0xE0 ? 3
                    : (c & 0xF8) == 0xF0 ? 4
                                         : 1;
      if (need > back + 1)
        cut = pending.size() - 1 - back; // incomplete lead: hold it back
      break;
    }
    ++back;
  }
  std::string out = pending.substr(0, cut);
  pending.erase(0, cut);
  return out;
}

std::string Utf8Stream::flush() {
  std::string out;
  out.swap(pending);
  return out;
}

std::string replaceInvalidUtf8(const std::string &s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    size_t len = utf8Decode(s, i, cp);
    if (len == 0) {
      out += "\xef\xbf\xbd"; // U+FFFD
      ++i;
      continue;
    }
    out.append(s, i, len);
    i += len;
  }
  return out;
}

} // namespace kiln::rt
