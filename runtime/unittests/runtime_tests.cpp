//===- runtime_tests.cpp - Unit tests of the Kiln runtime -----------------===//
//
// Model-file validation on files built here with the FlatBuffers builder,
// tokenizers and UTF-8 streaming, sampling, flags, and the generation loop
// driven by a model written in C++ (logits peaked at (last token + 1) % V).
//
//===----------------------------------------------------------------------===//

#include "kiln/rt/chat_template.h"
#include "kiln/rt/driver.h"

#include "kiln_generated.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <unistd.h>

using namespace kiln::rt;

static int failures = 0, checks = 0;
#define CHECK(cond)                                                            \
  do {                                                                         \
    ++checks;                                                                  \
    if (!(cond)) {                                                             \
      ++failures;                                                              \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__,    \
                   #cond);                                                     \
    }                                                                          \
  } while (0)
#define CHECK_ERR(expr, want, substr)                                          \
  do {                                                                         \
    auto e_ = (expr);                                                          \
    CHECK(e_.has_value());                                                     \
    if (e_) {                                                                  \
      CHECK(e_->code == (want));                                               \
      if (e_->message.find(substr) == std::string::npos) {                     \
        ++failures;                                                            \
        std::fprintf(stderr, "%s:%d: message '%s' lacks '%s'\n", __FILE__,     \
                     __LINE__, e_->message.c_str(), substr);                   \
      }                                                                        \
    }                                                                          \
  } while (0)

//===----------------------------------------------------------------------===//
// Model files
//===----------------------------------------------------------------------===//

struct FileSpec {
  int64_t vocab = 300, context = 16;
  uint32_t version = 2;
  std::vector<int64_t> shape = {4, 4};
  int64_t dataBytes = 64; ///< the weight's size field
  uint64_t offset = 0;    ///< the weight's offset field
  /// The data section's size (-1: dataBytes); data_offset (0: the
  /// FlatBuffer's size rounded up to 4096).
  int64_t dataSection = -1;
  uint64_t dataOffset = 0;
  kiln::fb::DType dtype = kiln::fb::DType::F32;
  kiln::fb::TokenizerKind tokenizer = kiln::fb::TokenizerKind::Bytes;
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<std::string> merges;
  std::vector<int32_t> types;
  bool addSpacePrefix = true;
  int eos = 299;
  int bos = -1;
  /// Metadata.end_token_ids (empty: the field is absent).
  std::vector<int32_t> ends;
  /// Encoder-decoder: two graph inputs and a source length.
  int64_t sourceLength = 0;
};

static std::vector<uint8_t> buildFile(const FileSpec &spec) {
  namespace fb = kiln::fb;
  flatbuffers::FlatBufferBuilder b;
  auto weight = fb::CreateWeight(b, b.CreateString("w"), spec.dtype,
                                 b.CreateVector(spec.shape), spec.offset,
                                 (uint64_t)spec.dataBytes);
  auto meta = fb::CreateMetadata(
      b, fb::Architecture::Custom, b.CreateString("test"), spec.context,
      spec.vocab, spec.bos, spec.eos, -1, false, spec.sourceLength, 0,
      spec.ends.empty() ? 0 : b.CreateVector(spec.ends));
  flatbuffers::Offset<fb::Tokenizer> tok;
  std::vector<flatbuffers::Offset<fb::Token>> toks;
  for (const std::string &p : spec.pieces)
    toks.push_back(fb::CreateToken(
        b,
        b.CreateVector(reinterpret_cast<const uint8_t *>(p.data()), p.size())));
  std::vector<flatbuffers::Offset<flatbuffers::String>> merges;
  for (const std::string &m : spec.merges)
    merges.push_back(b.CreateString(m));
  tok = fb::CreateTokenizer(
      b, spec.tokenizer, b.CreateVector(toks),
      spec.scores.empty() ? 0 : b.CreateVector(spec.scores),
      merges.empty() ? 0 : b.CreateVector(merges),
      spec.types.empty() ? 0 : b.CreateVector(spec.types),
      spec.addSpacePrefix);
  std::vector<flatbuffers::Offset<flatbuffers::String>> in = {
      b.CreateString("tokens")};
  if (spec.sourceLength)
    in.insert(in.begin(), b.CreateString("source"));
  std::vector<flatbuffers::Offset<flatbuffers::String>> out = {
      b.CreateString("logits")};
  std::vector<flatbuffers::Offset<fb::Node>> nodes;
  std::vector<flatbuffers::Offset<fb::Weight>> weights = {weight};
  uint64_t section = spec.dataSection < 0 ? spec.dataBytes : spec.dataSection;
  auto model = fb::CreateModel(b, spec.version, meta, tok, b.CreateVector(in),
                               b.CreateVector(out), b.CreateVector(nodes),
                               b.CreateVector(weights), 4096, section);
  fb::FinishModelBuffer(b, model);
  std::vector<uint8_t> file(b.GetBufferPointer(),
                            b.GetBufferPointer() + b.GetSize());
  uint64_t dataOffset =
      spec.dataOffset ? spec.dataOffset : (file.size() + 4095) / 4096 * 4096;
  reinterpret_cast<flatbuffers::Table *>(
      flatbuffers::GetMutableRoot<fb::Model>(file.data()))
      ->SetField<uint64_t>(fb::Model::VT_DATA_OFFSET, dataOffset, 0);
  file.resize(std::max<uint64_t>(file.size(), dataOffset), 0);
  // The weight's bytes: 0.5f, 1.5f, ... (as far as the section goes).
  for (uint64_t i = 0; i < section; ++i)
    file.push_back(i % 4 == 3 ? 0x3f : 0);
  return file;
}

static void testModelFiles() {
  {
    ModelFile m;
    CHECK(!loadModelBuffer(buildFile({}), m));
    CHECK(m.vocabSize == 300 && m.contextLength == 16 && m.eosId == 299);
    CHECK(m.weightOffsets.size() == 1 && m.weightOffsets[0] % 64 == 0);
  }
  {
    std::vector<uint8_t> f = buildFile({});
    f[4] = 'X'; // file identifier lives at bytes 4..7
    ModelFile m;
    CHECK_ERR(loadModelBuffer(f, m), kExitModel,
              "missing the 'KILN' identifier");
  }
  {
    std::vector<uint8_t> f = buildFile({});
    // Every truncation is refused, never trusted.
    for (size_t n = 0; n < f.size(); n += 7) {
      ModelFile m;
      auto err =
          loadModelBuffer(std::vector<uint8_t>(f.begin(), f.begin() + n), m);
      CHECK(err.has_value() && err->code == kExitModel);
    }
  }
  {
    FileSpec s;
    s.version = 3;
    ModelFile m;
    CHECK_ERR(loadModelBuffer(buildFile(s), m), kExitModel,
              "schema version 3 is newer than this runtime supports (2)");
  }
  {
    FileSpec s;
    s.version = 1;
    ModelFile m;
    CHECK_ERR(loadModelBuffer(buildFile(s), m), kExitModel,
              "python3 -m kiln_export.upgrade OLD.kiln NEW.kiln");
  }
  {
    // End tokens outside the vocabulary are refused.
    FileSpec s;
    s.ends = {3, 300};
    ModelFile m;
    CHECK_ERR(loadModelBuffer(buildFile(s), m), kExitModel,
              "end token id 300 is outside the vocabulary of 300");
    s.ends = {-1};
    CHECK_ERR(loadModelBuffer(buildFile(s), m), kExitModel,
              "end token id -1 is outside the vocabulary");
  }
  {
    FileSpec s;
    s.dataBytes = 60;
    ModelFile m;
    CHECK_ERR(loadModelBuffer(buildFile(s), m), kExitModel,
              "weight 'w' has size 60 but its dtype F32 and shape need 64");
  }
  {
    // Every weight type of the table is accepted (the compiled code
    // decides what it reads); I8 is not a weight type.
    FileSpec s;
    s.dtype = kiln::fb::DType::F16;
    s.dataBytes = 32;
    ModelFile m;
    CHECK(!loadModelBuffer(buildFile(s), m));
    s.dtype = kiln::fb::DType::Q4_0;
    s.shape = {2, 64};
    s.dataBytes = 2 * 2 * 18;
    ModelFile q;
    CHECK(!loadModelBuffer(buildFile(s), q));
    s.shape = {4, 16};
    ModelFile r;
    CHECK_ERR(loadModelBuffer(buildFile(s), r), kExitModel,
              "is Q4_0 but its last dimension 16 is not a multiple of the "
              "32-element block");
    s.dtype = kiln::fb::DType::I8;
    ModelFile i8;
    CHECK_ERR(loadModelBuffer(buildFile(s), i8), kExitModel,
              "has dtype I8, which is not a weight type");
  }
  {
    FileSpec s;
    s.dataOffset = 6000;
    ModelFile m;
    CHECK_ERR(loadModelBuffer(buildFile(s), m), kExitModel,
              "data_offset 6000 is not a positive multiple of 4096");
  }
  {
    FileSpec s;
    s.offset = 64;
    s.dataSection = 128;
    ModelFile m;
    CHECK(!loadModelBuffer(buildFile(s), m));
    CHECK(m.weightOffsets.size() == 1 && m.weightOffsets[0] == 64);
    s.offset = 32;
    ModelFile a;
    CHECK_ERR(loadModelBuffer(buildFile(s), a), kExitModel,
              "has offset 32, not a multiple of 64");
    s.offset = 128;
    ModelFile p;
    CHECK_ERR(loadModelBuffer(buildFile(s), p), kExitModel,
              "ends past the data section of 128 bytes");
  }
  {
    std::vector<uint8_t> f = buildFile({});
    f.pop_back();
    ModelFile m;
    CHECK_ERR(loadModelBuffer(f, m), kExitModel,
              "model file is shorter than it claims");
  }
  {
    FileSpec s;
    s.shape = {4, -4};
    ModelFile m;
    CHECK_ERR(loadModelBuffer(buildFile(s), m), kExitModel,
              "has invalid dimension -4");
  }
  {
    FileSpec s;
    s.eos = 300;
    ModelFile m;
    CHECK_ERR(loadModelBuffer(buildFile(s), m), kExitModel,
              "special token id 300 is outside the vocabulary");
  }
  {
    FileSpec s;
    s.vocab = 0;
    ModelFile m;
    CHECK_ERR(loadModelBuffer(buildFile(s), m), kExitModel, "must be positive");
  }
  {
    ModelFile m;
    CHECK_ERR(loadModelFile("/nonexistent/model.kiln", m), kExitModel,
              "cannot open model file");
  }
  {
    // From a file: the same bytes; on 2 MiB boundaries when the kernel
    // offers transparent huge pages (the weights are read into them).
    std::vector<uint8_t> bytes = buildFile({});
    char path[] = "/tmp/kiln-model-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, bytes.data(), bytes.size()) == (ssize_t)bytes.size());
    close(fd);
    ModelFile m;
    CHECK(!loadModelFile(path, m));
    CHECK(m.size == 64 && m.fileSize == bytes.size() &&
          m.dataOffset == bytes.size() - 64 && m.dataOffset % 4096 == 0);
    CHECK(std::memcmp(m.data, bytes.data() + m.dataOffset, m.size) == 0);
    CHECK(!m.placement.empty());
    std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
    std::string mode((std::istreambuf_iterator<char>(thp)),
                     std::istreambuf_iterator<char>());
    if (!mode.empty() && mode.find("[never]") == std::string::npos)
      CHECK(!m.mapped &&
            reinterpret_cast<uintptr_t>(m.data) % (2 << 20) == 0);
    // A reserve larger than memory: the file mapping is used instead.
    ModelFile big;
    CHECK(!loadModelFile(path, big, uint64_t(1) << 60));
    CHECK(big.mapped && big.data &&
          reinterpret_cast<uintptr_t>(big.data) % 4096 == 0 &&
          std::memcmp(big.data, bytes.data() + big.dataOffset, 64) == 0);
    // Truncated: refused with the file's name.
    CHECK(truncate(path, bytes.size() / 2) == 0);
    ModelFile t;
    std::optional<Error> err = loadModelFile(path, t);
    CHECK(err && err->code == kExitModel &&
          err->message.find(path) != std::string::npos);
    unlink(path);
  }
  {
    ModelFile m;
    CHECK(!loadModelBuffer(buildFile({}), m));
    kiln_model_info info{KILN_ABI_VERSION,    1, 1, 2, 8, 16, 300, "",
                         m.weightsFingerprint};
    info.kv_element_bytes = 4;
    CHECK(!checkCompatible(m, info));
    // A KV cache element of neither 2 nor 4 bytes: refused.
    kiln_model_info odd = info;
    odd.kv_element_bytes = 3;
    CHECK(checkCompatible(m, odd));
    // Same counts, other shapes: refused.
    FileSpec other;
    other.shape = {2, 8};
    ModelFile m2;
    CHECK(!loadModelBuffer(buildFile(other), m2));
    CHECK(m2.weightsFingerprint != m.weightsFingerprint);
    CHECK_ERR(checkCompatible(m2, info), kExitModel, "weight table");
    info.vocab_size = 301;
    CHECK_ERR(checkCompatible(m, info), kExitModel,
              "does not match the compiled model");
    info.vocab_size = 300;
    info.abi_version = 99;
    CHECK_ERR(checkCompatible(m, info), kExitInternal, "ABI version");
  }
}

//===----------------------------------------------------------------------===//
// Tokenizers and text
//===----------------------------------------------------------------------===//

static void testBpeTokenizers();

static void testTokenizers() {
  ModelFile m;
  CHECK(!loadModelBuffer(buildFile({}), m));
  Tokenizer t(m);
  std::vector<int32_t> ids;
  std::string text = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80";
  CHECK(!t.encode(text, ids));
  CHECK(ids.size() == text.size());
  std::string back;
  for (int32_t id : ids)
    back += t.piece(id);
  CHECK(back == text);
  CHECK(t.piece(299).empty() && t.piece(-1).empty() && t.piece(5000).empty());

  // Streaming never splits a character; invalid bytes are passed through.
  Utf8Stream s;
  std::string out;
  for (char c : text) {
    std::string ready = s.push(std::string(1, c));
    if (!ready.empty()) {
      unsigned char last = ready.back();
      CHECK((last & 0xC0) != 0xC0); // never ends on a lead byte
    }
    out += ready;
  }
  out += s.flush();
  CHECK(out == text);
  CHECK(s.push("\xe2\x82") == "");
  CHECK(s.flush() == "\xe2\x82");
  CHECK(s.push("\xff") == "\xff");

  CHECK(jsonString("a\"b\\c\n\x01") == "\"a\\\"b\\\\c\\n\\u0001\"");
  CHECK(jsonString("\xc3\xa9") == "\"\xc3\xa9\"");
  // Each byte outside valid UTF-8 becomes one U+FFFD.
  CHECK(jsonString("\xff") == "\"\xef\xbf\xbd\"");
  CHECK(jsonString("\xe2\x82") == "\"\xef\xbf\xbd\xef\xbf\xbd\"");
  CHECK(jsonString("\xed\xa0\x80") ==
        "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""); // a surrogate
  CHECK(jsonString("\x7f\b") == "\"\x7f\\b\"");
  CHECK(idList({}) == "[]" && idList({1, -2, 300}) == "[1,-2,300]");

  testBpeTokenizers();
}

static void testBpeTokenizers() {
  std::vector<int32_t> ids;
  // GPT-2: the 256 byte characters, four merges, a control token.
  FileSpec g;
  g.tokenizer = kiln::fb::TokenizerKind::GPT2BPE;
  for (int b = 0; b < 256; ++b)
    g.pieces.push_back(gpt2ByteChar(b));
  g.pieces.insert(g.pieces.end(), {"he", "ll", "hell", "\xc4\xa0w",
                                   "<|endoftext|>"});
  g.vocab = g.pieces.size(); // 261
  g.eos = 260;
  g.merges = {"l l", "h e", "he ll", "\xc4\xa0 w"};
  g.types.assign(g.vocab, 1);
  g.types[260] = 3;
  ModelFile gm;
  CHECK(!loadModelBuffer(buildFile(g), gm));
  Tokenizer gt(gm);
  CHECK(!gt.encode("hello world", ids));
  // "hello" | " world": h e l l o -> he ll -> hell o; " w" merges.
  CHECK((ids == std::vector<int32_t>{258, 'o', 259, 'o', 'r', 'l', 'd'}));
  CHECK(gt.decode(ids) == "hello world");
  CHECK(gt.piece(259) == " w" && gt.piece(260).empty());
  // A control token written in the text: its id with parseSpecial, around
  // which the text is encoded as usual; byte-level text without.
  CHECK(!gt.encode("hello<|endoftext|> w", ids, /*parseSpecial=*/true));
  CHECK((ids == std::vector<int32_t>{258, 'o', 260, 259}));
  CHECK(!gt.encode("<|endoftext|>", ids));
  CHECK(ids.size() == 13 && ids[0] == '<'); // as text: one byte each
  CHECK(!gt.encode("<|endoftext|", ids, true) && ids.size() == 12); // cut
  // Whitespace runs: the last space of a run prefixes the next word.
  CHECK(!gt.encode("a  w", ids));
  CHECK((ids == std::vector<int32_t>{'a', ' ', 259})); // id b is byte b
  CHECK(!gt.encode("it's", ids) && ids.size() == 4 && gt.decode(ids) == "it's");
  CHECK_ERR(gt.encode("bad \xff", ids), kExitUsage, "not valid UTF-8");
  // Every byte round-trips, including multi-byte characters.
  std::string text = "na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80\t\n";
  CHECK(!gt.encode(text, ids) && gt.decode(ids) == text);

  // Validation: a merge naming a missing token, a missing byte character.
  FileSpec bad = g;
  bad.merges.push_back("x yz");
  ModelFile bm;
  CHECK_ERR(loadModelBuffer(buildFile(bad), bm), kExitModel,
            "names a token that is not in the vocabulary");
  bad = g;
  bad.merges.push_back("hello");
  ModelFile bm2;
  CHECK_ERR(loadModelBuffer(buildFile(bad), bm2), kExitModel,
            "not two pieces");
  bad = g;
  bad.pieces[10] = "notabyte";
  ModelFile bm3;
  CHECK_ERR(loadModelBuffer(buildFile(bad), bm3), kExitModel,
            "no token for byte 0x0A");
  bad = g;
  bad.types.pop_back();
  ModelFile bm4;
  CHECK_ERR(loadModelBuffer(buildFile(bad), bm4), kExitModel,
            "260 token types for 261 tokens");

  // SentencePiece: <unk> <s> </s>, byte tokens, pieces with scores.
  FileSpec sp;
  sp.tokenizer = kiln::fb::TokenizerKind::SentencePieceBPE;
  sp.pieces = {"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    sp.pieces.push_back(buf);
  }
  const std::string U = "\xe2\x96\x81"; // U+2581
  // 259..: ▁ a b ▁a ab ▁ab ba
  for (const std::string &p : {U, std::string("a"), std::string("b"), U + "a",
                               std::string("ab"), U + "ab", std::string("ba")})
    sp.pieces.push_back(p);
  sp.vocab = sp.pieces.size(); // 266
  sp.bos = 1;
  sp.eos = 2;
  sp.types.assign(sp.vocab, 1);
  sp.types[0] = 2;
  sp.types[1] = sp.types[2] = 3;
  for (int b = 0; b < 256; ++b)
    sp.types[3 + b] = 6;
  sp.scores.assign(sp.vocab, 0.0f);
  sp.scores[262] = -1; // ▁a
  sp.scores[263] = -2; // ab
  sp.scores[264] = -3; // ▁ab
  sp.scores[265] = -0.5; // ba: the best merge
  ModelFile sm;
  CHECK(!loadModelBuffer(buildFile(sp), sm));
  Tokenizer st(sm);
  // "ab" -> ▁ a b: ▁a (-1) beats ab (-2); then ▁a b -> ▁ab.
  CHECK(!st.encode("ab", ids));
  CHECK((ids == std::vector<int32_t>{264}));
  // "aba" -> ▁ a b a: ba (-0.5) first, then ▁a | ba.
  CHECK(!st.encode("aba", ids));
  CHECK((ids == std::vector<int32_t>{262, 265}));
  // Byte fallback for characters that are no token; the prefix is dropped
  // again by decode().
  CHECK(!st.encode("a\xc3\xa9", ids));
  CHECK((ids == std::vector<int32_t>{262, 3 + 0xC3, 3 + 0xA9}));
  CHECK(st.decode(ids) == "a\xc3\xa9");
  CHECK(st.piece(262) == " a" && st.piece(3 + 0x0A) == "\n" &&
        st.piece(1).empty());
  CHECK(!st.encode(" ab  b", ids) && st.decode(ids) == " ab  b");
  // BOS when the model asks for it.
  sp.bos = 1;
  FileSpec spb = sp;
  ModelFile smb;
  CHECK(!loadModelBuffer(buildFile(spb), smb));
  // Merges by rank instead of scores (a tokenizer.json BPE): ab first.
  FileSpec sr = sp;
  sr.scores.clear();
  sr.merges = {"a b", U + " a", U + " ab", "b a"};
  ModelFile rm;
  CHECK(!loadModelBuffer(buildFile(sr), rm));
  Tokenizer rt(rm);
  CHECK(!rt.encode("ab", ids));
  CHECK((ids == std::vector<int32_t>{264})); // ▁ (a b) -> ▁ab
  CHECK(!rt.encode("aba", ids));
  CHECK((ids == std::vector<int32_t>{264, 260})); // ▁ab a
  // No space prefix.
  FileSpec np = sp;
  np.addSpacePrefix = false;
  ModelFile nm;
  CHECK(!loadModelBuffer(buildFile(np), nm));
  Tokenizer nt(nm);
  CHECK(!nt.encode("ab", ids));
  CHECK((ids == std::vector<int32_t>{263}));
  // Neither scores nor merges.
  FileSpec none = sp;
  none.scores.clear();
  ModelFile xm;
  CHECK_ERR(loadModelBuffer(buildFile(none), xm), kExitModel,
            "needs scores or merges");
}

//===----------------------------------------------------------------------===//
// Sampling
//===----------------------------------------------------------------------===//

// llama.cpp's samplers (src/llama-sampler.cpp), checked against their
// definitions: the penalties on the logits, top-p and min-p on the
// probabilities before temperature, draws that follow the softmax of what
// is left.
static void testSamplerChain() {
  SamplerScratch scratch;
  Rng r(11);
  // Repeat penalty: a positive logit is divided, a negative one multiplied.
  // Token 0 (2.0 -> 1.0) loses to token 1 (1.9); token 3 (-1 -> -2) is
  // pushed further down.
  std::vector<float> l = {2.0f, 1.9f, 0.5f, -1.0f};
  SamplingParams rep;
  rep.temperature = 0;
  rep.repeatPenalty = 2.0;
  int32_t seen0[] = {0};
  CHECK(sample(l.data(), 4, rep, r, scratch) == 0); // no history: unchanged
  CHECK(sample(l.data(), 4, rep, r, scratch, seen0, 1) == 1);
  // Only the last repeatLastN tokens count: token 0 three tokens back is
  // out of a window of 2; -1 looks at all of them; 0 turns them off.
  int32_t hist[] = {0, 2, 2};
  rep.repeatLastN = 2;
  CHECK(sample(l.data(), 4, rep, r, scratch, hist, 3) == 0);
  rep.repeatLastN = -1;
  CHECK(sample(l.data(), 4, rep, r, scratch, hist, 3) == 1);
  rep.repeatLastN = 0;
  CHECK(sample(l.data(), 4, rep, r, scratch, hist, 3) == 0);
  // Frequency (per occurrence) and presence (once) penalties subtract:
  // token 0 seen 3 times with frequency 0.05 and presence 0.2 drops by
  // 0.35 to 1.65, below token 1; with 0.01 and 0.05 by 0.08 to 1.92, still
  // above.
  int32_t thrice[] = {0, 0, 0};
  SamplingParams fp;
  fp.temperature = 0;
  fp.frequencyPenalty = 0.05;
  fp.presencePenalty = 0.2;
  CHECK(sample(l.data(), 4, fp, r, scratch, thrice, 3) == 1);
  fp.frequencyPenalty = 0.01;
  fp.presencePenalty = 0.05;
  CHECK(sample(l.data(), 4, fp, r, scratch, thrice, 3) == 0);

  // The distribution after penalties: logits {1, 1, 1, 1} with token 0
  // seen twice (frequency 0.5: 1 - 2 x 0.5 = 0); temperature 1, so
  // p = {1, e, e, e} / (1 + 3e).
  std::vector<float> flat = {1.0f, 1.0f, 1.0f, 1.0f};
  SamplingParams dist;
  dist.temperature = 1.0;
  dist.topK = 0;
  dist.topP = 1.0;
  dist.frequencyPenalty = 0.5;
  int32_t twice0[] = {0, 0};
  std::map<int, int> c1;
  const int draws = 20000;
  for (int i = 0; i < draws; ++i)
    c1[sample(flat.data(), 4, dist, r, scratch, twice0, 2)]++;
  double e = std::exp(1.0), z = 1.0 + 3 * e;
  CHECK(std::abs(c1[0] / (double)draws - 1.0 / z) < 0.01);
  CHECK(std::abs(c1[2] / (double)draws - e / z) < 0.015);

  // top-p reads the probabilities before temperature (llama.cpp's
  // temperature sampler comes last): logits {0.1, 2, 2, -1, 1.5} give
  // p(1) = p(2) ~ 0.38, so top-p 0.5 keeps ids 1 and 2 however high the
  // temperature (at temperature 10 the tempered probabilities would be
  // nearly flat and keep three).
  std::vector<float> logits = {0.1f, 2.0f, 2.0f, -1.0f, 1.5f};
  SamplingParams hot;
  hot.temperature = 10.0;
  hot.topK = 0;
  hot.topP = 0.5;
  std::map<int, int> c2;
  for (int i = 0; i < 2000; ++i)
    c2[sample(logits.data(), 5, hot, r, scratch)]++;
  CHECK(c2.size() == 2 && c2.count(1) && c2.count(2));

  // min-p: p_i >= min_p * p_max, i.e. logit >= 2 + ln(min_p). With 0.5
  // the cut is 1.307: ids 1, 2 and 4 (1.5) stay, 0 and 3 go; then the draw
  // follows the softmax of those three at temperature 1.
  SamplingParams mp;
  mp.temperature = 1.0;
  mp.topK = 0;
  mp.topP = 1.0;
  mp.minP = 0.5;
  std::map<int, int> c3;
  for (int i = 0; i < draws; ++i)
    c3[sample(logits.data(), 5, mp, r, scratch)]++;
  CHECK(c3.count(0) == 0 && c3.count(3) == 0);
  double z3 = 2 * std::exp(2.0) + std::exp(1.5);
  CHECK(std::abs(c3[4] / (double)draws - std::exp(1.5) / z3) < 0.015);
  // With 0.7 the cut is 1.643: only the two tied largest.
  mp.minP = 0.7;
  for (int i = 0; i < 300; ++i) {
    int s = sample(logits.data(), 5, mp, r, scratch);
    CHECK(s == 1 || s == 2);
  }
}

// StopMatcher: text before the first stop string, held-back prefixes.
static void testStopMatcher() {
  {
    StopMatcher m({"\n\n", "END"});
    CHECK(m.push("Hello") == "Hello");
    CHECK(m.push(" wor\n") == " wor"); // "\n" may begin "\n\n"
    CHECK(m.push("ld") == "\nld");     // it did not
    CHECK(m.push(" E") == " ");        // "E" may begin "END"
    CHECK(m.push("N") == "");
    CHECK(!m.stopped());
    CHECK(m.push("D and more") == "");
    CHECK(m.stopped());
    CHECK(m.push("after") == "" && m.flush() == "");
  }
  {
    // A stop string inside one piece: the bytes before it only.
    StopMatcher m({"stop"});
    CHECK(m.push("a stop b") == "a " && m.stopped());
  }
  {
    // The earliest occurrence wins over the order given.
    StopMatcher m({"cd", "b"});
    CHECK(m.push("abcd") == "a" && m.stopped());
  }
  {
    // Held back at the end of generation: flushed unchanged.
    StopMatcher m({"xyz"});
    CHECK(m.push("abx") == "ab" && m.push("y") == "");
    CHECK(!m.stopped() && m.flush() == "xy");
  }
  {
    // No stop strings: everything passes through.
    StopMatcher m({});
    CHECK(m.push("abc") == "abc" && !m.stopped() && m.flush().empty());
  }
}

static void testSampling() {
  Rng a(42), b(42), c(43);
  bool same = true, differs = false;
  for (int i = 0; i < 100; ++i) {
    uint64_t x = a.next(), y = b.next(), z = c.next();
    same &= x == y;
    differs |= x != z;
  }
  CHECK(same && differs);
  Rng u(1);
  for (int i = 0; i < 1000; ++i) {
    double v = u.uniform();
    CHECK(v >= 0.0 && v < 1.0);
  }

  std::vector<float> logits = {0.1f, 2.0f, 2.0f, -1.0f, 1.5f};
  SamplingParams greedy;
  greedy.temperature = 0;
  Rng r(7);
  CHECK(sample(logits.data(), 5, greedy, r) == 1); // lowest index wins ties

  // top-k 1 is greedy whatever the temperature.
  SamplingParams k1;
  k1.temperature = 5.0;
  k1.topK = 1;
  k1.topP = 1.0;
  for (int i = 0; i < 50; ++i)
    CHECK(sample(logits.data(), 5, k1, r) == 1);

  // top-k 3 never picks outside the three largest (ids 1, 2, 4).
  SamplingParams k3;
  k3.temperature = 1.0;
  k3.topK = 3;
  k3.topP = 1.0;
  std::map<int, int> counts;
  for (int i = 0; i < 3000; ++i)
    counts[sample(logits.data(), 5, k3, r)]++;
  CHECK(counts.count(0) == 0 && counts.count(3) == 0);
  // Frequencies follow the softmax: p(1) = p(2) = e^2/(2e^2+e^1.5) ~ 0.38.
  CHECK(std::abs(counts[1] / 3000.0 - 0.3837) < 0.04);
  CHECK(std::abs(counts[4] / 3000.0 - 0.2327) < 0.04);

  // top-p keeps the smallest prefix reaching the mass: with p = 0.5 only
  // the two tied largest tokens.
  SamplingParams p5;
  p5.temperature = 1.0;
  p5.topK = 0;
  p5.topP = 0.5;
  for (int i = 0; i < 300; ++i) {
    int s = sample(logits.data(), 5, p5, r);
    CHECK(s == 1 || s == 2);
  }
  // Same seed, same draws.
  Rng r1(99), r2(99);
  SamplingParams t;
  for (int i = 0; i < 100; ++i)
    CHECK(sample(logits.data(), 5, t, r1) == sample(logits.data(), 5, t, r2));

  testSamplerChain();
  testStopMatcher();
}

//===----------------------------------------------------------------------===//
// Flags
//===----------------------------------------------------------------------===//

static std::optional<Error> parse(std::vector<std::string> args, Options &o) {
  std::vector<char *> argv = {const_cast<char *>("exe")};
  for (std::string &a : args)
    argv.push_back(a.data());
  return parseOptions(argv.size(), argv.data(), o);
}

static void testOptions() {
  Options o;
  CHECK(!parse({"-p", "hi", "-n", "5", "--temp=0", "--top-k", "3", "--top-p",
                "0.5", "--seed", "7", "-t", "2", "--ignore-eos",
                "--output=json", "--logits"},
               o));
  CHECK(*o.prompt == "hi" && o.nPredict == 5 && o.sampling.temperature == 0 &&
        o.sampling.topK == 3 && o.sampling.topP == 0.5 && *o.seed == 7 &&
        o.threads == 2 && o.ignoreEos && o.output == OutputFormat::Json &&
        o.logits);
  Options pen;
  CHECK(!parse({"-p", "hi", "--min-p", "0.05", "--repeat-penalty", "1.1",
                "--repeat-last-n", "-1", "--presence-penalty", "0.5",
                "--frequency-penalty=-0.25"},
               pen));
  CHECK(pen.sampling.minP == 0.05 && pen.sampling.repeatPenalty == 1.1 &&
        pen.sampling.repeatLastN == -1 && pen.sampling.presencePenalty == 0.5 &&
        pen.sampling.frequencyPenalty == -0.25);
  Options t;
  CHECK(!parse({"--prompt-tokens", "1,2,3", "--output", "text"}, t));
  CHECK((*t.promptTokens == std::vector<int32_t>{1, 2, 3}));
  Options h;
  CHECK(!parse({"--help"}, h) && h.help);

  struct Bad {
    std::vector<std::string> args;
    const char *msg;
  } bad[] = {
      {{"-p", "x", "--temp", "-1"}, "--temp must be >= 0"},
      {{"-p", "x", "--top-p", "2"}, "--top-p must be in (0, 1]"},
      {{"-p", "x", "--top-p", "0"}, "--top-p must be in (0, 1]"},
      {{"-p", "x", "-n", "-5"}, "must be -1"},
      {{"-p", "x", "-t", "0"}, "between 1 and 1024"},
      {{"-p", "x", "--top-k", "-2"}, "--top-k must be >= 0"},
      {{"-p", "x", "--min-p", "1.5"}, "--min-p must be in [0, 1]"},
      {{"-p", "x", "--repeat-penalty", "0"},
       "--repeat-penalty must be positive"},
      {{"-p", "x", "--repeat-last-n", "-2"}, "--repeat-last-n must be -1"},
      {{"-p", "x", "--presence-penalty", "inf"}, "invalid number 'inf'"},
      {{"-p", "x", "--frequency-penalty"},
       "missing value for --frequency-penalty"},
      {{"-p", "x", "--stop", ""}, "--stop needs a non-empty string"},
      {{"-p", "x", "--beams", "2", "--stop", "y"},
       "--stop applies to generation"},
      {{"-p", "x", "--seed", "abc"}, "invalid integer 'abc'"},
      {{"-p", "x", "--temp", "nan"}, "invalid number 'nan'"},
      {{"-p", "x", "--output=xml"}, "--output must be text or json"},
      {{"-p", "x", "--bogus"}, "unknown argument '--bogus'"},
      {{"-p"}, "missing value for -p"},
      {{"--prompt-tokens", "1,,2"}, "invalid token id ''"},
      {{"--prompt-tokens", "1,-2"}, "invalid token id '-2'"},
      {{}, "no prompt"},
      {{"-p", "x", "--prompt-tokens", "1"}, "give one of"},
      {{"-p", "x", "--score", "y"}, "give one of"},
      {{"--score", "x", "--stride", "0"}, "--stride must be >= 1"},
      {{"-i", "--output=json"}, "-i works with text output"},
      {{"-p", "x", "--logits"}, "--logits needs --output=json"},
      {{"-p", "x", "--ignore-eos=1"}, "takes no value"},
      {{"-p", "x", "--system", "s"}, "go with --chat or --print-prompt"},
      {{"-p", "x", "--chat-template", "chatml"},
       "go with --chat or --print-prompt"},
      {{"--chat", "--print-prompt", "-p", "x"},
       "give one of --chat and --print-prompt"},
      {{"--chat", "--prompt-tokens", "1"}, "take the conversation as"},
      {{"--chat", "-i"}, "take the conversation as"},
      {{"--chat", "--output=json"}, "--chat prints text"},
      {{"--print-prompt"}, "--print-prompt needs a conversation"},
      {{"--chat", "--messages"}, "missing value for --messages"},
      {{"-p", "x", "--chat-template-kwargs", "{}"},
       "go with --chat or --print-prompt"},
  };
  for (auto &b : bad) {
    Options x;
    CHECK_ERR(parse(b.args, x), kExitUsage, b.msg);
  }
  CHECK(helpText("exe").find("--prompt-tokens") != std::string::npos);
  CHECK(helpText("exe").find("Exit codes") != std::string::npos);
}

//===----------------------------------------------------------------------===//
// Generation loop with a model written in C++
//===----------------------------------------------------------------------===//

namespace {
struct MockLog {
  std::vector<std::pair<int64_t, int64_t>> prefills; // (pos, len)
  std::vector<int64_t> decodes;                      // pos
  int64_t cacheSizes[5];
} mock;

void peak(kiln_memref_2d *logits, int32_t last) {
  float *l = static_cast<float *>(logits->aligned);
  int64_t v = logits->sizes[1];
  for (int64_t i = 0; i < v; ++i)
    l[i] = 0.0f;
  l[(last + 1) % v] = 1.0f;
}
void mockPrefill(kiln_memref_1d *, kiln_memref_1d *, kiln_memref_2d *tokens,
                 int64_t pos, kiln_memref_5d *cache, kiln_memref_2d *logits) {
  mock.prefills.push_back({pos, tokens->sizes[1]});
  std::memcpy(mock.cacheSizes, cache->sizes, sizeof mock.cacheSizes);
  auto *ids = static_cast<int32_t *>(tokens->aligned);
  peak(logits, ids[tokens->sizes[1] - 1]);
}
void mockDecode(kiln_memref_1d *, kiln_memref_1d *, kiln_memref_2d *tokens,
                int64_t pos, kiln_memref_5d *, kiln_memref_2d *logits) {
  mock.decodes.push_back(pos);
  peak(logits, static_cast<int32_t *>(tokens->aligned)[0]);
}
void mockForward(kiln_memref_1d *, kiln_memref_1d *, kiln_memref_2d *tokens,
                 kiln_memref_3d *logits) {
  auto *ids = static_cast<int32_t *>(tokens->aligned);
  float *l = static_cast<float *>(logits->aligned);
  int64_t v = logits->sizes[2];
  for (int64_t s = 0; s < tokens->sizes[1]; ++s)
    l[s * v + (ids[s] + 1) % v] = 1.0f;
}
} // namespace

static void testGeneration() {
  ModelFile m;
  CHECK(!loadModelBuffer(buildFile({}), m)); // vocab 300, context 16, eos 299
  EntryPoints e;
  e.prefill = mockPrefill;
  e.decode = mockDecode;
  e.forward = mockForward;
  e.info = {KILN_ABI_VERSION, 1, 1, 3, 8, 16, 300, "", m.weightsFingerprint};
  e.info.kv_element_bytes = 4;
  Session s(m, e);
  CHECK(!s.init());
  CHECK(s.cacheElements() == 3u * 2 * 1 * 16 * 8);
  SamplingParams greedy;
  greedy.temperature = 0;
  Rng rng(1);

  mock = {};
  GenerationResult r;
  std::vector<int32_t> streamed;
  CHECK(!s.generate(
      {10, 11, 12}, 4, greedy, rng, false, true,
      [&](int32_t t) { streamed.push_back(t); }, r));
  CHECK((r.tokens == std::vector<int32_t>{13, 14, 15, 16}));
  CHECK(streamed == r.tokens);
  CHECK(r.stop == StopReason::Length && r.logits.size() == 4);
  CHECK(mock.prefills.size() == 1 && mock.prefills[0].first == 0 &&
        mock.prefills[0].second == 3);
  CHECK((mock.decodes == std::vector<int64_t>{3, 4, 5}));
  CHECK(mock.cacheSizes[0] == 3 && mock.cacheSizes[1] == 2 &&
        mock.cacheSizes[3] == 16 && mock.cacheSizes[4] == 8);

  // Stops at EOS (299), which is part of the result.
  mock = {};
  GenerationResult eos;
  CHECK(!s.generate(
      {296}, -1, greedy, rng, false, false, [](int32_t) {}, eos));
  CHECK((eos.tokens == std::vector<int32_t>{297, 298, 299}));
  CHECK(eos.stop == StopReason::Eos);
  // Another end token of the file (Metadata.end_token_ids) stops it too.
  {
    FileSpec withEnds;
    withEnds.ends = {290, 5};
    ModelFile me;
    CHECK(!loadModelBuffer(buildFile(withEnds), me));
    CHECK(me.isEndToken(290) && me.isEndToken(5) && me.isEndToken(299) &&
          !me.isEndToken(291) && !me.isEndToken(-1));
    Session se(me, e);
    CHECK(!se.init());
    mock = {};
    GenerationResult end;
    CHECK(!se.generate(
        {287}, -1, greedy, rng, false, false, [](int32_t) {}, end));
    CHECK((end.tokens == std::vector<int32_t>{288, 289, 290}));
    CHECK(end.stop == StopReason::Eos);
  }
  // ... unless told to ignore it; then the context limit stops it cleanly.
  mock = {};
  GenerationResult ctx;
  CHECK(!s.generate(
      {296}, -1, greedy, rng, true, false, [](int32_t) {}, ctx));
  CHECK(ctx.stop == StopReason::Context);
  CHECK(ctx.tokens.size() == 16); // positions 1..15 decoded, + the prefill's
  CHECK(mock.decodes.back() == 15);

  // -n 0 runs the prefill only.
  mock = {};
  GenerationResult none;
  CHECK(!s.generate(
      {1, 2}, 0, greedy, rng, false, false, [](int32_t) {}, none));
  CHECK(none.tokens.empty() && mock.prefills.size() == 1 &&
        mock.decodes.empty());

  // Sliding-window scoring: every token after the first scored once, each
  // with the mock's NLL for a correct peak: log(e + V - 1) - 1.
  std::vector<int32_t> seq;
  for (int i = 0; i < 40; ++i)
    seq.push_back(i);
  for (int64_t stride : {0, 5, 16, 100}) {
    ScoreResult sr;
    CHECK(!s.score(seq, stride, sr));
    CHECK(sr.nll.size() == 39 && sr.window == 16);
    CHECK(sr.stride == (stride == 0 ? 8 : std::min<int64_t>(stride, 15)));
    double want = std::log(std::exp(1.0) + 299) - 1;
    bool all = true;
    for (double x : sr.nll)
      all &= std::abs(x - want) < 1e-6;
    CHECK(all && std::abs(sr.perplexity - std::exp(want)) < 1e-6);
  }
  ScoreResult one;
  CHECK_ERR(s.score({7}, 0, one), kExitPrompt, "at least 2 tokens");

  // generateAt continues from the cache at a position.
  mock = {};
  GenerationResult at;
  CHECK(!s.generateAt(
      5, {20, 21}, 3, greedy, rng, true, false, [](int32_t) { return true; },
      at));
  CHECK(mock.prefills[0].first == 5 && mock.prefills[0].second == 2);
  CHECK((mock.decodes == std::vector<int64_t>{7, 8}));
  CHECK_ERR(s.generateAt(
                15, {1, 2}, 3, greedy, rng, true, false,
                [](int32_t) { return true; }, at),
            kExitPrompt, "does not fit the context of 16");

  std::vector<float> logits;
  CHECK(!s.forward({5, 6}, logits));
  CHECK(logits.size() == 600 && logits[6] == 1.0f && logits[300 + 7] == 1.0f);
}

//===----------------------------------------------------------------------===//
// Encoder-decoder generation and beam search
//===----------------------------------------------------------------------===//

namespace {
/// A fake encoder-decoder: encode writes the source length into the cross
/// state; decode writes its token into row `pos` of the cache and returns
/// logits that are a hash of the whole cached history (rows 0..pos) and the
/// cross state. So any mistake in how beams' caches are reordered changes
/// the logits a beam sees.
constexpr int64_t kS2SVocab = 7, kS2SEos = 6, kS2SBos = 5;
struct {
  int encodes = 0, decodes = 0;
} s2s;
float historyLogit(const std::vector<int32_t> &history, float crossValue,
                   int64_t j) {
  uint64_t h = 1469598103934665603ull ^ (uint64_t)(crossValue * 1000);
  for (int32_t t : history)
    h = (h ^ (uint64_t)t) * 1099511628211ull;
  h = (h ^ (uint64_t)j) * 1099511628211ull;
  h ^= h >> 29;
  return (float)((h % 10007) / 1000.0) + (j == kS2SEos ? 1.5f : 0.0f);
}
void s2sEncode(kiln_memref_1d *, kiln_memref_1d *, kiln_memref_2d *src,
               kiln_memref_5d *cross) {
  ++s2s.encodes;
  static_cast<float *>(cross->aligned)[0] = (float)src->sizes[1];
}
void s2sDecode(kiln_memref_1d *, kiln_memref_1d *, kiln_memref_2d *tokens,
               int64_t pos, kiln_memref_5d *cache, kiln_memref_2d *,
               kiln_memref_5d *cross, kiln_memref_2d *logits) {
  ++s2s.decodes;
  float *c = static_cast<float *>(cache->aligned);
  int64_t rowStride = cache->strides[3];
  c[pos * rowStride] = (float)static_cast<int32_t *>(tokens->aligned)[0];
  std::vector<int32_t> history;
  for (int64_t p = 0; p <= pos; ++p)
    history.push_back((int32_t)c[p * rowStride]);
  float crossValue = static_cast<float *>(cross->aligned)[0];
  float *l = static_cast<float *>(logits->aligned);
  for (int64_t j = 0; j < kS2SVocab; ++j)
    l[j] = historyLogit(history, crossValue, j);
}
void s2sForward(kiln_memref_1d *, kiln_memref_1d *, kiln_memref_2d *,
                kiln_memref_2d *, kiln_memref_3d *) {}

/// The documented beam search over explicit histories (no caches).
std::vector<Hypothesis> referenceBeams(float crossValue, size_t K, double alpha,
                                       int64_t maxNew, bool earlyStop) {
  struct B {
    std::vector<int32_t> toks;
    double lp;
  };
  std::vector<Hypothesis> done;
  std::vector<B> live = {{{}, 0.0}};
  for (int64_t step = 0; step < maxNew; ++step) {
    struct C {
      double lp;
      size_t b;
      int32_t t;
    };
    std::vector<C> cands;
    for (size_t b = 0; b < live.size(); ++b) {
      std::vector<int32_t> hist = {(int32_t)kS2SBos};
      hist.insert(hist.end(), live[b].toks.begin(), live[b].toks.end());
      double l[kS2SVocab], mx = -1e300, sum = 0;
      for (int64_t j = 0; j < kS2SVocab; ++j)
        mx = std::max(mx, l[j] = historyLogit(hist, crossValue, j));
      for (int64_t j = 0; j < kS2SVocab; ++j)
        sum += std::exp(l[j] - mx);
      for (int64_t j = 0; j < kS2SVocab; ++j)
        cands.push_back({live[b].lp + l[j] - mx - std::log(sum), b, (int32_t)j});
    }
    std::stable_sort(cands.begin(), cands.end(), [](const C &a, const C &c) {
      return a.lp > c.lp || (a.lp == c.lp && (a.b < c.b || (a.b == c.b && a.t < c.t)));
    });
    std::vector<B> next;
    for (size_t r = 0; r < cands.size() && r < 2 * K && next.size() < K; ++r) {
      std::vector<int32_t> toks = live[cands[r].b].toks;
      toks.push_back(cands[r].t);
      if (cands[r].t == kS2SEos) {
        if (r < K)
          done.push_back({toks, cands[r].lp,
                          cands[r].lp / std::pow((double)toks.size(), alpha)});
        continue;
      }
      next.push_back({toks, cands[r].lp});
    }
    std::stable_sort(done.begin(), done.end(),
                     [](const Hypothesis &a, const Hypothesis &b) {
                       return a.score > b.score;
                     });
    if (done.size() > K)
      done.resize(K);
    if (next.empty() ||
        (done.size() >= K &&
         (earlyStop || next[0].lp / std::pow((double)next[0].toks.size(), alpha) <=
                           done.back().score))) {
      live.clear();
      break;
    }
    live = next;
  }
  for (B &b : live)
    done.push_back({b.toks, b.lp, b.lp / std::pow((double)b.toks.size(), alpha)});
  std::stable_sort(done.begin(), done.end(),
                   [](const Hypothesis &a, const Hypothesis &b) {
                     return a.score > b.score;
                   });
  return done;
}
} // namespace

static void testSeq2Seq() {
  FileSpec spec;
  spec.vocab = kS2SVocab;
  spec.eos = kS2SEos;
  spec.bos = kS2SBos;
  spec.context = 20;
  spec.sourceLength = 8;
  ModelFile m;
  CHECK(!loadModelBuffer(buildFile(spec), m));
  CHECK(m.encoderDecoder && m.sourceLength == 8 && m.sourceVocabSize == 7);
  EntryPoints e;
  e.encode = s2sEncode;
  e.seq2seqDecode = s2sDecode;
  e.seq2seqForward = s2sForward;
  e.info = {KILN_ABI_VERSION,
            1,
            1,
            2,
            3,
            20,
            kS2SVocab,
            "",
            m.weightsFingerprint,
            KILN_MODEL_ENCODER_DECODER,
            8,
            1,
            4,
            4};
  CHECK(!checkCompatible(m, e.info));
  kiln_model_info decoderOnly = e.info;
  decoderOnly.kind = KILN_MODEL_DECODER_ONLY;
  CHECK_ERR(checkCompatible(m, decoderOnly), kExitModel,
            "encoder-decoder file, decoder-only executable");

  Seq2SeqSession s(m, e);
  CHECK(!s.init());
  Seq2SeqResult enc;
  CHECK_ERR(s.encode({}, enc), kExitPrompt, "the source is empty");
  CHECK_ERR(s.encode(std::vector<int32_t>(9, 1), enc), kExitPrompt,
            "source has 9 tokens but the model reads at most 8");
  CHECK_ERR(s.encode({1, 7}, enc), kExitPrompt,
            "source token id 7 is outside the source vocabulary of 7");
  s2s = {};
  CHECK(!s.encode({1, 2, 3}, enc) && s2s.encodes == 1);

  // Greedy: the first decode gets BOS at position 0; stops at EOS.
  SamplingParams greedy;
  greedy.temperature = 0;
  Rng rng(1);
  Seq2SeqResult g;
  CHECK(!s.generate(12, greedy, rng, false, true,
                    [](int32_t) { return true; }, g));
  CHECK(!g.tokens.empty() && g.logits.size() == g.tokens.size());
  CHECK(g.decodeCalls == (int64_t)g.tokens.size());
  CHECK(g.stop == (g.tokens.back() == kS2SEos ? StopReason::Eos
                                             : StopReason::Length));

  // Beam search equals the reference over explicit histories, for several
  // widths and length penalties; forks copy filled rows, not whole caches.
  for (size_t K : {1u, 2u, 3u, 5u}) {
    for (double alpha : {0.0, 0.7, 1.5})
    for (bool early : {false, true}) {
      Seq2SeqResult b;
      CHECK(!s.beamSearch(10, K, alpha, early, b));
      std::vector<Hypothesis> want = referenceBeams(3.0f, K, alpha, 10, early);
      CHECK(b.hypotheses.size() == want.size());
      for (size_t i = 0; i < want.size() && i < b.hypotheses.size(); ++i) {
        CHECK(b.hypotheses[i].tokens == want[i].tokens);
        CHECK(std::fabs(b.hypotheses[i].score - want[i].score) < 1e-9);
      }
      CHECK(b.tokens == want.front().tokens);
      size_t wholeCache = (size_t)2 * 2 * 20 * 3 * sizeof(float);
      CHECK(s.beamCopyBytes() <= (size_t)b.decodeCalls * wholeCache / 2);
    }
  }
  // The context limit ends beam search too (live beams become hypotheses).
  Seq2SeqResult full;
  CHECK(!s.beamSearch(-1, 3, 1.0, false, full));
  CHECK(!full.hypotheses.empty());
  for (const Hypothesis &h : full.hypotheses)
    CHECK(h.tokens.size() <= 20);
}

/// The chat-template renderer's bounds and messages (the renderings
/// themselves are checked against @huggingface/jinja by
/// test/e2e/chat-templates.test).
static void testChatTemplates() {
  ChatTemplateInput in;
  in.messages = {{"user", "hi"}, {"assistant", "hello"}};
  std::string out, err;
  CHECK(
      renderChatTemplate("{% for m in messages %}{{ m.role }}:{{ m.content }};"
                         "{% endfor %}",
                         in, out, err));
  CHECK(out == "user:hi;assistant:hello;");
  // Nested loops past the step bound stop with a message, not a hang.
  std::string loops = "{% for a in range(1000) %}{% for b in range(1000) %}"
                      "{% for c in range(1000) %}x{% endfor %}{% endfor %}"
                      "{% endfor %}";
  CHECK(!renderChatTemplate(loops, in, out, err));
  CHECK(out.empty() && (err.find("steps") != std::string::npos ||
                        err.find("bytes") != std::string::npos));
  // Output past the bound.
  std::string big = "{% for a in range(100000) %}{{ '" + std::string(100, 'y') +
                    "' }}{% endfor %}";
  CHECK(!renderChatTemplate(big, in, out, err));
  CHECK(err.find("exceeds") != std::string::npos);
  // Nesting past the depth bound, in expressions and statements.
  CHECK(!renderChatTemplate("{{ " + std::string(5000, '(') + "1" +
                                std::string(5000, ')') + " }}",
                            in, out, err));
  CHECK(err.find("nests too deeply") != std::string::npos);
  std::string ifs;
  for (int i = 0; i < 1000; ++i)
    ifs += "{% if true %}";
  CHECK(!renderChatTemplate(ifs, in, out, err));
  CHECK(err.find("nests too deeply") != std::string::npos);
  // Errors name the place and the construct.
  CHECK(!renderChatTemplate("ok\n{{ messages | shuffle }}", in, out, err));
  CHECK(err == "line 2, column 13: the filter 'shuffle' is not supported");
  CHECK(!renderChatTemplate("{% for m in messages %}", in, out, err));
  CHECK(err.find("missing '{% endfor %}'") != std::string::npos);
  // Integer overflow is an error, not undefined behaviour (a fuzzer found
  // `x - 9223372036854775807` wrapping).
  CHECK(!renderChatTemplate("{{ -9223372036854775807 - 9223372036854775807 }}",
                            in, out, err));
  CHECK(err.find("integer overflow in '-'") != std::string::npos);
  CHECK(!renderChatTemplate("{{ 1e300|int }}", in, out, err));
  CHECK(renderChatTemplate("{{ range(0, 9223372036854775807, "
                           "9223372036854775807)|length }}",
                           in, out, err) &&
        out == "1");
  // Variables from JSON.
  in.variablesJson = R"({"enable_thinking": false, "tools": [{"n": 1}]})";
  CHECK(renderChatTemplate("{{ enable_thinking is false }} {{ tools|tojson }}",
                           in, out, err));
  CHECK(out == R"(true [{"n": 1}])");
  in.variablesJson = "[1]";
  CHECK(!renderChatTemplate("x", in, out, err));
  CHECK(err.find("not a JSON object") != std::string::npos);
  in.variablesJson.clear();
  CHECK(!renderChatTemplate("{{ raise_exception('no system role') }}", in, out,
                            err));
  CHECK(err.find("the template raised an exception: no system role") !=
        std::string::npos);
}

int main() {
  testChatTemplates();
  testModelFiles();
  testTokenizers();
  testSampling();
  testOptions();
  testGeneration();
  testSeq2Seq();
  std::printf("%d checks, %d failures\n", checks, failures);
  return failures ? 1 : 0;
}
