//===- Convert.cpp - Input detection, .kiln summaries, atomic writes ------===//

#include "kiln/Convert/Convert.h"
#include "ConvertInternal.h"
#include "kiln/rt/model.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <cstring>
#include <map>

using namespace llvm;

namespace kiln::convert {

Expected<InputKind> detectInput(StringRef path) {
  if (sys::fs::is_directory(path)) {
    SmallString<256> cfg(path);
    sys::path::append(cfg, "config.json");
    if (!sys::fs::exists(cfg))
      return fail("'" + path + "' is a directory without config.json (not a "
                  "Hugging Face model directory)");
    return InputKind::HuggingFace;
  }
  if (!sys::fs::exists(path))
    return fail("'" + path + "' does not exist");
  uint64_t size = 0;
  if (std::error_code ec = sys::fs::file_size(path, size))
    return fail("cannot read '" + path + "': " + ec.message());
  if (size < 8)
    return fail("'" + path + "' is too short to be a model file (" +
                Twine(size) + " bytes)");
  auto f = MemoryBuffer::getFileSlice(path, 8, 0, /*IsVolatile=*/false);
  if (!f)
    return fail("cannot read '" + path + "': " + f.getError().message());
  StringRef head = (*f)->getBuffer();
  if (head.size() < 8)
    return fail("'" + path + "' is too short to be a model file");
  if (head.starts_with("GGUF"))
    return InputKind::GGUF;
  if (head.substr(4, 4) == "KILN")
    return InputKind::Kiln;
  return fail("'" + path + "' is neither a GGUF file, a .kiln file nor a "
              "Hugging Face model directory");
}

bool needsConversion(StringRef path) {
  if (sys::fs::is_directory(path))
    return true;
  uint64_t size = 0;
  if (sys::fs::file_size(path, size) || size < 4)
    return false;
  auto f = MemoryBuffer::getFileSlice(path, 4, 0, /*IsVolatile=*/false);
  return f && (*f)->getBuffer() == "GGUF";
}

Expected<ConvertedModel> convertToKiln(StringRef path,
                                       const ConvertOptions &options) {
  if (options.contextLength < 0)
    return fail("the context length must be positive");
  auto kind = detectInput(path);
  if (!kind)
    return kind.takeError();
  switch (*kind) {
  case InputKind::GGUF:
    return convertGGUF(path, options);
  case InputKind::HuggingFace:
    return convertHF(path, options);
  case InputKind::Kiln:
    return fail("'" + path + "' is already a .kiln file");
  }
  return fail("unknown input kind");
}

Expected<std::string> describe(StringRef path) {
  auto kind = detectInput(path);
  if (!kind)
    return kind.takeError();
  switch (*kind) {
  case InputKind::GGUF:
    return describeGGUF(path);
  case InputKind::HuggingFace:
    return describeHF(path);
  case InputKind::Kiln:
    return describeKiln(path);
  }
  return fail("unknown input kind");
}

Expected<std::string> describeKiln(StringRef path) {
  // Mapped: only the FlatBuffer's pages are read.
  auto buf = MemoryBuffer::getFile(path, /*IsText=*/false,
                                   /*RequiresNullTerminator=*/false);
  if (!buf)
    return fail("cannot read '" + path + "': " + buf.getError().message());
  const uint8_t *data =
      reinterpret_cast<const uint8_t *>((*buf)->getBufferStart());
  rt::ModelLayout layout;
  if (auto msg = rt::checkModelLayout(data, (*buf)->getBufferSize(),
                                      "kiln-convert", layout))
    return fail("'" + path + "' is not a valid .kiln file: " + *msg);
  const fb::Model *m = fb::GetModel(data);
  const fb::Metadata *md = m->metadata();
  std::string out;
  raw_string_ostream os(out);
  os << "format: .kiln (schema version " << m->version()
     << "; data section of " << layout.dataSize << " bytes at "
     << layout.dataOffset << ")\n";
  os << "architecture: " << fb::EnumNameArchitecture(md->architecture())
     << "\nname: " << (md->name() ? md->name()->str() : "") << "\n";
  os << "context: " << md->context_length()
     << "\nvocabulary: " << md->vocab_size() << "\n";
  if (md->source_length())
    os << "source length: " << md->source_length()
       << "\nsource vocabulary: " << md->source_vocab_size() << "\n";
  std::map<std::string, int> ops;
  for (const fb::Node *n : *m->nodes())
    ops[fb::EnumNameOp(n->op_type())] += 1;
  os << "graph: " << m->nodes()->size() << " nodes;";
  for (auto &[op, count] : ops)
    os << " " << op << " x" << count;
  os << "\n";
  uint64_t params = 0;
  std::map<std::string, int> dtypes;
  for (const fb::Weight *w : *m->weights()) {
    uint64_t n = 1;
    for (int64_t d : *w->shape())
      n *= (uint64_t)d;
    params += n;
    dtypes[rt::dtypeName(w->dtype())] += 1;
  }
  os << "weights: " << m->weights()->size() << " tensors, " << params
     << " parameters;";
  for (auto &[t, count] : dtypes)
    os << " " << t << " x" << count;
  os << "\n";
  const fb::Tokenizer *t = m->tokenizer();
  os << "tokenizer: "
     << fb::EnumNameTokenizerKind(t ? t->kind() : fb::TokenizerKind::Bytes);
  if (t && t->tokens())
    os << ", " << t->tokens()->size() << " tokens";
  if (t && t->merges())
    os << ", " << t->merges()->size() << " merges";
  if (t && t->scores())
    os << ", scores";
  os << "\nspecial tokens: bos " << md->bos_token_id() << ", eos "
     << md->eos_token_id() << ", pad " << md->pad_token_id()
     << (md->add_bos() ? " (BOS prepended to prompts)" : "") << "\n";
  if (const auto *ends = md->end_token_ids()) {
    os << "generation also ends at:";
    for (int32_t id : *ends) {
      os << " " << id;
      if (t && t->tokens() && id >= 0 && (uint32_t)id < t->tokens()->size()) {
        const auto *bytes = t->tokens()->Get(id)->bytes();
        if (bytes)
          os << " '"
             << StringRef(reinterpret_cast<const char *>(bytes->data()),
                          bytes->size())
             << "'";
      }
    }
    os << "\n";
  }
  if (t && t->chat_template())
    os << "chat template: " << t->chat_template()->size()
       << " bytes (--chat, --print-prompt)\n";
  return out;
}

Expected<json::Value> parseJSON(StringRef text, const Twine &what) {
  constexpr int kMaxDepth = 256;
  int depth = 0;
  bool inString = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (inString) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        inString = false;
    } else if (c == '"') {
      inString = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxDepth)
        return fail(what + " nests arrays and objects more than " +
                    Twine(kMaxDepth) + " deep");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  auto v = json::parse(text);
  if (!v)
    return fail(what + " is not valid JSON: " + toString(v.takeError()));
  return std::move(*v);
}

bool writeFileAtomically(StringRef path,
                         function_ref<bool(raw_pwrite_stream &)> write,
                         std::string &error) {
  if (path == "-") {
    outs().SetUnbuffered();
    return write(outs());
  }
  auto cannotWrite = [&](const Twine &reason) {
    error = ("cannot write '" + path + "': " + reason).str();
  };
  StringRef dir = sys::path::parent_path(path);
  SmallString<256> model(dir.empty() ? "." : dir);
  sys::path::append(model, ".kiln-tmp-%%%%%%");
  SmallString<256> tmp;
  int fd;
  if (std::error_code ec = sys::fs::createUniqueFile(model, fd, tmp)) {
    cannotWrite(ec.message());
    return false;
  }
  bool ok;
  {
    raw_fd_ostream os(fd, /*shouldClose=*/true);
    ok = write(os);
    os.close();
    if (os.has_error()) {
      cannotWrite(os.error().message());
      os.clear_error();
      ok = false;
    }
  }
  if (ok) {
    if (std::error_code ec = sys::fs::rename(tmp, path)) {
      cannotWrite(ec.message());
      ok = false;
    }
  }
  if (!ok)
    sys::fs::remove(tmp);
  return ok;
}

Error writeModelFile(StringRef path, const ConvertedModel &model) {
  std::string error;
  bool badInput = false;
  auto write = [&](raw_pwrite_stream &os) {
    badInput = !model.write(os, error);
    return !badInput;
  };
  if (!writeFileAtomically(path, write, error)) {
    if (badInput)
      return createStringError(std::make_error_code(std::errc::invalid_argument),
                               error);
    return fail(error.empty() ? "cannot write '" + path + "'" : error);
  }
  return Error::success();
}

} // namespace kiln::convert
