//===- model_file.cpp - Map and validate a .kiln model file ---------------===//

#include "kiln/rt/model.h"
#include "kiln/rt/dtype.h"

#include "kiln_generated.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
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

const char kUpgradeAdvice[] =
    "rewrite it as version 2 with `python3 -m kiln_export.upgrade OLD.kiln "
    "NEW.kiln` (PYTHONPATH=<kiln>/compiler/kiln_export), or convert the "
    "original GGUF file or Hugging Face directory again with kiln-convert";

void ModelFile::releaseStorage() {
  if (mapBase)
    munmap(mapBase, mapLength);
  std::free(alignedCopy);
  mapBase = nullptr;
  mapLength = 0;
  alignedCopy = nullptr;
}

ModelFile::~ModelFile() { releaseStorage(); }

static Error modelError(const std::string &msg) { return {kExitModel, msg}; }

static std::string mib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / 1048576.0);
  return buf;
}

MemoryInfo readMemoryInfo() {
  MemoryInfo info;
  std::ifstream meminfo("/proc/meminfo");
  std::string key, unit;
  uint64_t value;
  while (meminfo >> key >> value) {
    std::getline(meminfo, unit);
    if (key == "MemAvailable:") {
      info.available = value * 1024;
      info.known = true;
    } else if (key == "SwapFree:") {
      info.swapFree = value * 1024;
    }
  }
  return info;
}

/// Whether madvise(MADV_HUGEPAGE) can give this process transparent huge
/// pages (the kernel's mode is "always" or "madvise", not "never").
static bool transparentHugePages() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string mode((std::istreambuf_iterator<char>(f)),
                   std::istreambuf_iterator<char>());
  return !mode.empty() && mode.find("[never]") == std::string::npos;
}

std::optional<std::string> checkModelLayout(const uint8_t *file,
                                            uint64_t fileSize,
                                            const char *reader,
                                            ModelLayout &out) {
  if (fileSize < 8 || !fb::ModelBufferHasIdentifier(file))
    return std::string("not a Kiln model file (missing the 'KILN' "
                       "identifier)");
  flatbuffers::Verifier::Options vopts;
  vopts.max_tables = 1u << 24;
  const char *malformed =
      "model file is malformed or truncated (FlatBuffers verification failed)";
  // First over the whole file (at most what a FlatBuffer can address), to
  // read the version and the data section's place; then over the FlatBuffer
  // alone, which must not reach into the data section.
  uint64_t span =
      std::min<uint64_t>(fileSize, FLATBUFFERS_MAX_BUFFER_SIZE - 1);
  {
    flatbuffers::Verifier verifier(file, span, vopts);
    if (!fb::VerifyModelBuffer(verifier))
      return std::string(malformed);
  }
  const fb::Model *model = fb::GetModel(file);
  out.version = model->version();
  if (out.version < 2)
    return "model file has schema version " + std::to_string(out.version) +
           " (weights inside the FlatBuffer), which this " + reader +
           " no longer reads: " + kUpgradeAdvice;
  if (out.version > kModelSchemaVersion)
    return "model file schema version " + std::to_string(out.version) +
           " is newer than this " + reader + " supports (" +
           std::to_string(kModelSchemaVersion) + ")";
  out.dataOffset = model->data_offset();
  out.dataSize = model->data_size();
  if (out.dataOffset == 0 || out.dataOffset % kDataSectionAlignment != 0)
    return "model file's data_offset " + std::to_string(out.dataOffset) +
           " is not a positive multiple of " +
           std::to_string(kDataSectionAlignment) +
           " (the data section must start on a page)";
  uint64_t end;
  if (__builtin_add_overflow(out.dataOffset, out.dataSize, &end) ||
      end > fileSize)
    return "model file is shorter than it claims: " +
           std::to_string(fileSize) + " bytes, but its data section (" +
           std::to_string(out.dataSize) + " bytes at " +
           std::to_string(out.dataOffset) + ") ends past that (truncated?)";
  if (end < fileSize)
    return "model file is longer than it claims: " + std::to_string(fileSize) +
           " bytes, but its data section (" + std::to_string(out.dataSize) +
           " bytes at " + std::to_string(out.dataOffset) + ") ends at " +
           std::to_string(end);
  if (out.dataOffset >= FLATBUFFERS_MAX_BUFFER_SIZE)
    return "model file's FlatBuffer part (" + std::to_string(out.dataOffset) +
           " bytes) exceeds the 2 GiB FlatBuffers limit";
  {
    flatbuffers::Verifier verifier(file, out.dataOffset, vopts);
    if (!fb::VerifyModelBuffer(verifier))
      return std::string(malformed) + " within its first data_offset = " +
             std::to_string(out.dataOffset) + " bytes";
  }

  struct Span {
    uint64_t begin, end;
    unsigned index;
  };
  std::vector<Span> spans;
  const auto *weights = model->weights();
  out.weightOffsets.clear();
  out.weightOffsets.reserve(weights->size());
  for (unsigned i = 0; i < weights->size(); ++i) {
    const fb::Weight *w = weights->Get(i);
    std::string name = "weight '" + w->name()->str() + "'";
    // The FlatBuffers verifier checks a vector's length field, not that its
    // 8-byte elements are 8-byte aligned: reading a crafted shape would be a
    // misaligned load (found by fuzzing).
    if (reinterpret_cast<uintptr_t>(w->shape()->data()) % alignof(int64_t))
      return name + " has a misaligned shape vector";
    std::vector<int64_t> shape(w->shape()->begin(), w->shape()->end());
    uint64_t bytes = 0;
    if (auto msg = storageBytes(w->dtype(), shape.data(), shape.size(), bytes))
      return name + " " + *msg;
    uint64_t offset = w->offset(), size = w->size(), wend;
    if (offset % kWeightAlignment)
      return name + " has offset " + std::to_string(offset) +
             ", not a multiple of " + std::to_string(kWeightAlignment);
    if (__builtin_add_overflow(offset, size, &wend) || wend > out.dataSize)
      return name + " (" + std::to_string(size) + " bytes at offset " +
             std::to_string(offset) + ") ends past the data section of " +
             std::to_string(out.dataSize) + " bytes";
    if (size != bytes)
      return name + " has size " + std::to_string(size) + " but its dtype " +
             dtypeName(w->dtype()) + " and shape need " +
             std::to_string(bytes) + " bytes";
    spans.push_back({offset, wend, i});
    out.weightOffsets.push_back((int64_t)offset);
  }
  std::sort(spans.begin(), spans.end(), [](const Span &a, const Span &b) {
    return a.begin < b.begin;
  });
  for (size_t i = 1; i < spans.size(); ++i)
    if (spans[i].begin < spans[i - 1].end)
      return "weights '" + weights->Get(spans[i - 1].index)->name()->str() +
             "' and '" + weights->Get(spans[i].index)->name()->str() +
             "' overlap in the data section";
  return std::nullopt;
}

/// Checks the file at `file` (its FlatBuffer and weight table) and fills
/// every field of `out` except the data section's placement.
static std::optional<Error> validate(const uint8_t *file, uint64_t fileSize,
                                     ModelFile &out) {
  ModelLayout layout;
  if (auto msg = checkModelLayout(file, fileSize, "runtime", layout))
    return modelError(*msg);
  out.fileSize = fileSize;
  out.dataOffset = layout.dataOffset;
  out.size = layout.dataSize;
  out.weightOffsets = std::move(layout.weightOffsets);
  const fb::Model *model = fb::GetModel(file);
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
  out.endIds.clear();
  if (const auto *ends = meta->end_token_ids()) {
    if (ends->size() > (uint64_t)out.vocabSize)
      return modelError("metadata: " + std::to_string(ends->size()) +
                        " end tokens in a vocabulary of " +
                        std::to_string(out.vocabSize));
    for (int32_t id : *ends) {
      if (id < 0 || id >= out.vocabSize)
        return modelError("metadata: end token id " + std::to_string(id) +
                          " is outside the vocabulary of " +
                          std::to_string(out.vocabSize));
      out.endIds.push_back(id);
    }
  }

  // Every weight dtype of the table is accepted here: the compiled code
  // decides what it reads, through the fingerprint (which covers dtypes).
  out.weightsFingerprint = kiln_fingerprint_begin();
  for (const fb::Weight *w : *model->weights()) {
    std::vector<int64_t> shape(w->shape()->begin(), w->shape()->end());
    out.weightsFingerprint = kiln_fingerprint_weight(
        out.weightsFingerprint, w->name()->c_str(), w->name()->size(),
        (uint8_t)w->dtype(), shape.data(), shape.size());
  }

  out.pieces.clear();
  out.scores.clear();
  out.tokenTypes.clear();
  out.merges.clear();
  out.preTokenizer = fb::PreTokenizer::GPT2;
  out.ignoreMerges = false;
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
    out.preTokenizer = tok->pre_tokenizer();
    out.ignoreMerges = tok->ignore_merges();
    if (tok->chat_template())
      out.chatTemplate = tok->chat_template()->str();
    if (out.preTokenizer > fb::PreTokenizer::MAX)
      return modelError("unknown pre-tokenizer " +
                        std::to_string((int)out.preTokenizer) +
                        " (this runtime knows GPT2, Llama3, Qwen2)");
  }
  if (out.tokenizer != fb::TokenizerKind::Bytes &&
      (int64_t)out.pieces.size() != out.vocabSize)
    return modelError("a BPE tokenizer needs one piece per vocabulary entry");
  if (auto msg = validateTokenizer(out))
    return modelError(*msg);
  return std::nullopt;
}

/// Reads [offset, offset + length) of `fd` into `dst`.
static std::optional<std::string> readAll(int fd, uint8_t *dst,
                                          uint64_t length, uint64_t offset) {
  uint64_t done = 0;
  while (done < length) {
    size_t chunk = (size_t)std::min<uint64_t>(length - done, 1u << 30);
    ssize_t r = pread(fd, dst + done, chunk, (off_t)(offset + done));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return r < 0 ? std::string(strerror(errno)) : "unexpected end of file";
    done += (uint64_t)r;
  }
  return std::nullopt;
}

std::optional<Error> loadModelFile(const std::string &path, ModelFile &out,
                                   uint64_t reserveBytes) {
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
  uint64_t fileSize = (uint64_t)st.st_size;
  // Map the file without reading it: validation touches the FlatBuffer's
  // pages only, and nothing is allocated for the weights before it passed.
  out.releaseStorage();
  void *map = mmap(nullptr, fileSize, PROT_READ, MAP_PRIVATE, fd, 0);
  if (map == MAP_FAILED) {
    int e = errno;
    close(fd);
    return modelError("cannot map model file: " + std::string(strerror(e)) +
                      " (" + path + ")");
  }
  out.mapBase = map;
  out.mapLength = fileSize;
  const auto *file = static_cast<const uint8_t *>(map);
  if (auto err = validate(file, fileSize, out)) {
    close(fd);
    err->message += " (" + path + ")";
    return err;
  }

  // The data section goes into anonymous memory on transparent huge pages
  // when the kernel offers them and it fits comfortably (with the caches
  // the session allocates, at most 3/4 of MemAvailable): a decode step
  // streams every weight once, and with 4 KiB pages of a file mapping every
  // page boundary costs a TLB miss and stops the hardware prefetchers
  // (decode of a 134 M-parameter Llama: +8%, bench/llama_vs_peers.py).
  // Otherwise the file mapping is used as it is: nothing is copied, and the
  // kernel pages weights in (and out) as the memory allows.
  uint64_t dataSize = out.size;
  MemoryInfo mem = readMemoryInfo();
  bool thp = transparentHugePages();
  uint64_t need = dataSize + reserveBytes;
  bool fits = mem.known && need <= mem.available / 4 * 3;
  std::string sizes = "data section " + mib(dataSize) + " + caches " +
                      mib(reserveBytes) + ", MemAvailable " +
                      (mem.known ? mib(mem.available) : "unknown");
  if (thp && fits && dataSize > 0) {
    constexpr size_t kHuge = 2 << 20;
    size_t rounded = (dataSize + kHuge - 1) / kHuge * kHuge;
    size_t length = rounded + kHuge;
    void *m = mmap(nullptr, length, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m != MAP_FAILED) {
      auto *aligned = reinterpret_cast<uint8_t *>(
          (reinterpret_cast<uintptr_t>(m) + kHuge - 1) / kHuge * kHuge);
      madvise(aligned, rounded, MADV_HUGEPAGE);
      if (auto why = readAll(fd, aligned, dataSize, out.dataOffset)) {
        munmap(m, length);
        close(fd);
        return modelError("cannot read model file: " + *why + " (" + path +
                          ")");
      }
      // Read-only from here on, as a file mapping would be; the file's own
      // mapping is no longer needed (validate copied what it keeps).
      mprotect(m, length, PROT_READ);
      munmap(out.mapBase, out.mapLength);
      out.data = aligned;
      out.mapBase = m;
      out.mapLength = length;
      out.mapped = false;
      out.placement = "read into anonymous memory on transparent huge pages (" +
                      sizes + ")";
    }
  }
  if (!out.data) {
    uint8_t *data = const_cast<uint8_t *>(file) + out.dataOffset;
    // data_offset is page aligned: the section's pages are the mapping's.
    if (dataSize > 0) {
      madvise(data, dataSize, MADV_HUGEPAGE);
      // Page the weights in now rather than one fault at a time during the
      // first forward pass (MAP_POPULATE, as llama.cpp does), when they fit
      // in memory at all.
      if (mem.known && dataSize <= mem.available) {
#ifdef MADV_POPULATE_READ
        if (madvise(data, dataSize, MADV_POPULATE_READ) != 0)
#endif
          madvise(data, dataSize, MADV_WILLNEED);
      }
    }
    out.data = data;
    out.mapped = true;
    out.placement =
        std::string("mapped read-only from the file, not copied (") +
        (!thp ? "no transparent huge pages; "
              : !mem.known ? "available memory unknown; "
                           : !fits ? "more than 3/4 of MemAvailable; " : "") +
        sizes + ")";
  }
  close(fd);
  return std::nullopt;
}

std::optional<Error> loadModelBuffer(std::vector<uint8_t> bytes,
                                     ModelFile &out) {
  out.releaseStorage();
  // Page alignment, as the data section has in a mapped file.
  size_t n = (bytes.size() + 4095) / 4096 * 4096;
  out.alignedCopy = std::aligned_alloc(4096, n ? n : 4096);
  if (!out.alignedCopy)
    return Error{kExitInternal, "out of memory"};
  if (!bytes.empty())
    std::memcpy(out.alignedCopy, bytes.data(), bytes.size());
  const auto *file = static_cast<const uint8_t *>(out.alignedCopy);
  if (auto err = validate(file, bytes.size(), out))
    return err;
  out.data = file + out.dataOffset;
  out.placement = "in memory";
  return std::nullopt;
}

std::optional<Error> checkCompatible(const ModelFile &model,
                                     const kiln_model_info &info) {
  if (info.abi_version != KILN_ABI_VERSION)
    return Error{kExitInternal, "executable ABI version " +
                                    std::to_string(info.abi_version) +
                                    " does not match the runtime's " +
                                    std::to_string(KILN_ABI_VERSION)};
  if (info.kv_element_bytes != 2 && info.kv_element_bytes != 4)
    return Error{kExitInternal, "executable's KV cache element size " +
                                    std::to_string(info.kv_element_bytes) +
                                    " is neither 2 nor 4 bytes"};
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
