//===- tokenizer.cpp - Token <-> bytes, UTF-8 streaming, JSON strings
//------===//

#include "runtime_internal.h"

#include <cstring>

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

/// GPT-2's byte-to-unicode map, inverted: code point -> byte.
static int gpt2UnicodeToByte(uint32_t cp) {
  auto printable = [](int b) {
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) ||
           (b >= 174 && b <= 255);
  };
  if (cp < 256 && printable((int)cp))
    return (int)cp;
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    if (printable(b))
      continue;
    if (cp == (uint32_t)(256 + n))
      return b;
    ++n;
  }
  return -1;
}

Tokenizer::Tokenizer(const ModelFile &model) : model(model) {
  if (model.tokenizer == TokenizerKind::Bytes)
    return;
  decoded.resize(model.pieces.size());
  for (size_t id = 0; id < model.pieces.size(); ++id) {
    const std::string &p = model.pieces[id];
    std::string out;
    if (model.tokenizer == TokenizerKind::GPT2BPE) {
      for (size_t i = 0; i < p.size();) {
        uint32_t cp;
        size_t len = utf8Decode(p, i, cp);
        int b = len ? gpt2UnicodeToByte(cp) : -1;
        if (b < 0) { // not a byte-level piece (e.g. a special token): as is
          out = p;
          break;
        }
        out.push_back((char)b);
        i += len;
      }
    } else { // SentencePiece: <0xNN> byte tokens, U+2581 for spaces
      unsigned v;
      if (p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>' &&
          std::sscanf(p.c_str() + 3, "%2x", &v) == 1) {
        out.push_back((char)v);
      } else {
        for (size_t i = 0; i < p.size(); ++i) {
          if (i + 2 < p.size() + 0 && (unsigned char)p[i] == 0xE2 &&
              (unsigned char)p[i + 1] == 0x96 &&
              (unsigned char)p[i + 2] == 0x81) {
            out.push_back(' ');
            i += 2;
          } else {
            out.push_back(p[i]);
          }
        }
      }
    }
    decoded[id] = std::move(out);
  }
}

std::optional<Error> Tokenizer::encode(const std::string &text,
                                       std::vector<int32_t> &ids) const {
  if (model.tokenizer != TokenizerKind::Bytes)
    return Error{kExitUsage,
                 "this model's tokenizer cannot encode text prompts yet; "
                 "give token ids with --prompt-tokens"};
  // Text is what a model reads: the source of an encoder-decoder model.
  int64_t vocab =
      model.encoderDecoder ? model.sourceVocabSize : model.vocabSize;
  if (vocab < 256)
    return Error{kExitModel, "a byte-level model needs at least 256 tokens"};
  ids.clear();
  if (model.addBos && model.bosId >= 0)
    ids.push_back((int32_t)model.bosId);
  for (unsigned char c : text)
    ids.push_back(c);
  return std::nullopt;
}

std::string Tokenizer::piece(int32_t id) const {
  if (id < 0 || id >= model.vocabSize)
    return std::string();
  if (model.tokenizer == TokenizerKind::Bytes) {
    if (id < 256)
      return std::string(1, (char)id);
    return (size_t)id < model.pieces.size() ? model.pieces[id] : std::string();
  }
  return decoded[id];
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

std::string jsonString(const std::string &s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    size_t len = utf8Decode(s, i, cp);
    if (len == 0) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    if (cp == '"')
      out += "\\\"";
    else if (cp == '\\')
      out += "\\\\";
    else if (cp == '\n')
      out += "\\n";
    else if (cp == '\r')
      out += "\\r";
    else if (cp == '\t')
      out += "\\t";
    else if (cp < 0x20 || cp == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", cp);
      out += buf;
    } else
      out.append(s, i, len);
    i += len;
  }
  return out + "\"";
}

} // namespace kiln::rt
