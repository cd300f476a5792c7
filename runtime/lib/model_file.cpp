//===- model_file.cpp - Map and validate a .kiln model file ---------------===//

#include "kiln/rt/model.h"

#include "kiln_generated.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kiln::rt {
namespace fb = kiln::fb;

static constexpr uint32_t kSchemaVersion = 1;

ModelFile::~ModelFile() {
  if (mapBase)
    munmap(mapBase, mapLength);
  std::free(alignedCopy);
}

static Error modelError(const std::string &msg) { return {kExitModel, msg}; }

/// Whether madvise(MADV_HUGEPAGE) can give this process transparent huge
/// pages (the kernel's mode is "always" or "madvise", not "never").
static bool transparentHugePages() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string mode((std::istreambuf_iterator<char>(f)),
                   std::istreambuf_iterator<char>());
  return !mode.empty() && mode.find("[never]") == std::string::npos;
}

/// Validates the bytes at out.data/out.size and fills the rest of `out`.
static std::optional<Error> validate(ModelFile &out) {
  const uint8_t *base = out.data;
  if (out.size < 8 || !fb::ModelBufferHasIdentifier(base))
    return modelError("not a Kiln model file (missing the 'KILN' identifier)");
  if (out.size >= FLATBUFFERS_MAX_BUFFER_SIZE)
    return modelError("model file exceeds the 2 GiB FlatBuffers limit");
  flatbuffers::Verifier::Options vopts;
  vopts.max_tables = 1u << 24;
  flatbuffers::Verifier verifier(base, out.size, vopts);
  if (!fb::VerifyModelBuffer(verifier))
    return modelError("model file is malformed or truncated (FlatBuffers "
                      "verification failed)");
  const fb::Model *model = fb::GetModel(base);
  if (model->version() > kSchemaVersion)
    return modelError("model file schema version " +
                      std::to_string(model->version()) +
                      " is newer than this runtime supports (" +
                      std::to_string(kSchemaVersion) + ")");
  const fb::Metadata *meta = model->metadata();
  if (meta->context_length() <= 0 || meta->vocab_size() <= 0)
    return modelError(
        "metadata: context_length and vocab_size must be positive");
  out.contextLength = meta->context_length();
  out.vocabSize = meta->vocab_size();
  out.bosId = meta->bos_token_id();
  out.eosId = meta->eos_token_id();
  out.padId = meta->pad_token_id();
  out.addBos = meta->add_bos();
  unsigned numInputs = model->inputs()->size();
  if (numInputs < 1 || numInputs > 2)
    return modelError("the graph has " + std::to_string(numInputs) +
                      " inputs; expected 1 (decoder-only) or 2 "
                      "(encoder-decoder: source and target ids)");
  out.encoderDecoder = numInputs == 2;
  if (meta->source_vocab_size() < 0)
    return modelError("metadata: source_vocab_size must not be negative");
  out.sourceVocabSize = meta->source_vocab_size() > 0
                            ? meta->source_vocab_size()
                            : meta->vocab_size();
  out.sourceLength = meta->source_length();
  if (out.encoderDecoder && out.sourceLength <= 0)
    return modelError("metadata: an encoder-decoder model needs a positive "
                      "source_length");
  if (out.encoderDecoder && meta->bos_token_id() < 0)
    return modelError("metadata: an encoder-decoder model needs "
                      "bos_token_id (the token decoding starts from)");
  for (const fb::Node *node : *model->nodes())
    if (node->op_type() == fb::Op::PaddingMaskOp) {
      out.sourcePadId = node->op_as_PaddingMaskOp()->pad_id();
      break;
    }
  if (meta->name())
    out.name = meta->name()->str();
  for (int64_t id : {out.bosId, out.eosId, out.padId})
    if (id < -1 || id >= out.vocabSize)
      return modelError("metadata: special token id " + std::to_string(id) +
                        " is outside the vocabulary of " +
                        std::to_string(out.vocabSize));

  out.weightsFingerprint = kiln_fingerprint_begin();
  for (const fb::Weight *w : *model->weights()) {
    std::string name = w->name()->str();
    // The FlatBuffers verifier checks a vector's length field, not that its
    // 8-byte elements are 8-byte aligned: reading a crafted shape would be a
    // misaligned load (found by fuzzing).
    if (reinterpret_cast<uintptr_t>(w->shape()->data()) % alignof(int64_t) != 0)
      return modelError("weight '" + name + "' has a misaligned shape vector");
    std::vector<int64_t> shape(w->shape()->begin(), w->shape()->end());
    out.weightsFingerprint = kiln_fingerprint_weight(
        out.weightsFingerprint, name.data(), name.size(), (uint8_t)w->dtype(),
        shape.data(), shape.size());
    if (w->dtype() != fb::DType::F32)
      return modelError("weight '" + name + "' has dtype " +
                        fb::EnumNameDType(w->dtype()) +
                        "; this runtime supports F32");
    uint64_t elements = 1;
    for (int64_t d : *w->shape()) {
      if (d <= 0 || __builtin_mul_overflow(elements, (uint64_t)d, &elements) ||
          elements > (uint64_t(1) << 40))
        return modelError("weight '" + name + "' has an invalid shape");
    }
    if (w->data()->size() != elements * 4)
      return modelError(
          "weight '" + name + "' holds " + std::to_string(w->data()->size()) +
          " bytes but its shape needs " + std::to_string(elements * 4));
    int64_t offset = w->data()->data() - base;
    if (offset % 64 != 0)
      return modelError("weight '" + name + "' is not 64-byte aligned");
    out.weightOffsets.push_back(offset);
  }

  if (const fb::Tokenizer *tok = model->tokenizer()) {
    if (tok->kind() > fb::TokenizerKind::MAX)
      return modelError("unknown tokenizer kind " +
                        std::to_string((int)tok->kind()));
    out.tokenizer = tok->kind();
    if (tok->tokens()) {
      if ((int64_t)tok->tokens()->size() > out.vocabSize)
        return modelError("tokenizer has more tokens than the vocabulary");
      for (const fb::Token *t : *tok->tokens())
        out.pieces.emplace_back(
            t->bytes() ? std::string(t->bytes()->begin(), t->bytes()->end())
                       : std::string());
    }
    if (tok->scores())
      out.scores.assign(tok->scores()->begin(), tok->scores()->end());
    if (tok->token_types())
      out.tokenTypes.assign(tok->token_types()->begin(),
                            tok->token_types()->end());
    if (tok->merges())
      for (const flatbuffers::String *m : *tok->merges())
        out.merges.emplace_back(m ? m->str() : std::string());
    out.addSpacePrefix = tok->add_space_prefix();
  }
  if (out.tokenizer != fb::TokenizerKind::Bytes &&
      (int64_t)out.pieces.size() != out.vocabSize)
    return modelError("a BPE tokenizer needs one piece per vocabulary entry");
  if (auto msg = validateTokenizer(out))
    return modelError(*msg);
  return std::nullopt;
}

std::optional<Error> loadModelFile(const std::string &path, ModelFile &out) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return modelError("cannot open model file: " +
                      std::string(strerror(errno)) + " (" + path + ")");
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return modelError("model file is not a regular file (" + path + ")");
  }
  if (st.st_size < 8) {
    close(fd);
    return modelError("model file is too small to be a Kiln model (" + path +
                      ")");
  }
  // The weights go into anonymous memory on transparent huge pages when the
  // kernel offers them: a decode step streams every weight once, and with
  // 4 KiB pages of a file mapping every page boundary costs a TLB miss and
  // stops the hardware prefetchers (decode of a 134 M-parameter Llama: +8%,
  // bench/llama_vs_peers.py). Otherwise the file is mapped as it is.
  std::optional<Error> readErr;
  if (transparentHugePages()) {
    constexpr size_t kHuge = 2 << 20;
    size_t rounded = (st.st_size + kHuge - 1) / kHuge * kHuge;
    size_t length = rounded + kHuge;
    void *m = mmap(nullptr, length, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m != MAP_FAILED) {
      auto *aligned = reinterpret_cast<uint8_t *>(
          (reinterpret_cast<uintptr_t>(m) + kHuge - 1) / kHuge * kHuge);
      madvise(aligned, rounded, MADV_HUGEPAGE);
      size_t done = 0;
      while (done < static_cast<size_t>(st.st_size)) {
        ssize_t r = pread(fd, aligned + done, st.st_size - done, done);
        if (r < 0 && errno == EINTR)
          continue;
        if (r <= 0) {
          readErr = modelError(
              "cannot read model file: " +
              std::string(r < 0 ? strerror(errno) : "unexpected end") + " (" +
              path + ")");
          break;
        }
        done += r;
      }
      if (readErr) {
        munmap(m, length);
        close(fd);
        return *readErr;
      }
      // Read-only from here on, as a file mapping would be.
      mprotect(m, length, PROT_READ);
      out.data = aligned;
      out.mapBase = m;
      out.mapLength = length;
    }
  }
  if (!out.data) {
    // MAP_POPULATE: map every page now, at load, rather than fault them in
    // one by one during the first forward pass (llama.cpp does the same).
    void *p = mmap(nullptr, st.st_size, PROT_READ,
                   MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED) {
      close(fd);
      return modelError("cannot map model file: " +
                        std::string(strerror(errno)) + " (" + path + ")");
    }
    out.data = static_cast<const uint8_t *>(p);
    out.mapBase = p;
    out.mapLength = st.st_size;
  }
  close(fd);
  out.size = st.st_size;
  if (auto err = validate(out)) {
    err->message += " (" + path + ")";
    return err;
  }
  return std::nullopt;
}

std::optional<Error> loadModelBuffer(std::vector<uint8_t> bytes,
                                     ModelFile &out) {
  // Keep the 64-byte alignment the weights rely on.
  size_t n = (bytes.size() + 63) / 64 * 64;
  out.alignedCopy = std::aligned_alloc(64, n ? n : 64);
  if (!out.alignedCopy)
    return Error{kExitInternal, "out of memory"};
  if (!bytes.empty())
    std::memcpy(out.alignedCopy, bytes.data(), bytes.size());
  out.data = static_cast<const uint8_t *>(out.alignedCopy);
  out.size = bytes.size();
  return validate(out);
}

std::optional<Error> checkCompatible(const ModelFile &model,
                                     const kiln_model_info &info) {
  if (info.abi_version != KILN_ABI_VERSION)
    return Error{kExitInternal, "executable ABI version " +
                                    std::to_string(info.abi_version) +
                                    " does not match the runtime's " +
                                    std::to_string(KILN_ABI_VERSION)};
  if ((size_t)info.num_weights != model.weightOffsets.size() ||
      info.vocab_size != model.vocabSize ||
      (info.capacity != 0 && info.capacity != model.contextLength))
    return modelError("model file does not match the compiled model (weights " +
                      std::to_string(model.weightOffsets.size()) + " vs " +
                      std::to_string(info.num_weights) + ", vocabulary " +
                      std::to_string(model.vocabSize) + " vs " +
                      std::to_string(info.vocab_size) + ", context " +
                      std::to_string(model.contextLength) + " vs " +
                      std::to_string(info.capacity) + ")");
  bool encDec = info.kind == KILN_MODEL_ENCODER_DECODER;
  if (encDec != model.encoderDecoder ||
      (encDec && info.source_capacity != model.sourceLength))
    return modelError(std::string("model file does not match the compiled "
                                  "model (") +
                      (model.encoderDecoder ? "encoder-decoder" : "decoder-only") +
                      " file, " + (encDec ? "encoder-decoder" : "decoder-only") +
                      " executable, source length " +
                      std::to_string(model.sourceLength) + " vs " +
                      std::to_string(info.source_capacity) + ")");
  if (info.weights_fingerprint != model.weightsFingerprint)
    return modelError(
        "model file's weight table (names, dtypes, shapes) differs "
        "from the one the executable was compiled for");
  if (info.batch != 1)
    return Error{kExitUsage, "this runtime drives batch 1; the executable was "
                             "compiled for batch " +
                                 std::to_string(info.batch)};
  return std::nullopt;
}

} // namespace kiln::rt
