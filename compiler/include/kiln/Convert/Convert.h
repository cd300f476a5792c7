//===- Convert.h - GGUF / Hugging Face checkpoints -> .kiln ------*- C++ -*-===//
//
// kiln-convert's library, shared with kiln-compile (which converts in memory
// when given a GGUF file or a Hugging Face directory). Every input byte is
// checked before it is trusted: an unsupported architecture, tensor type or
// setting is refused with a message naming it and what is supported, and a
// truncated or inconsistent input is refused, never half-converted.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_CONVERT_CONVERT_H
#define KILN_CONVERT_CONVERT_H

#include "kiln/Convert/Quantize.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kiln::convert {

enum class InputKind { Kiln, GGUF, HuggingFace };

/// How the converters store tensors in the .kiln file.
enum class WeightDType {
  /// Every tensor widened to f32 (exactly: F16, BF16 and the quantized
  /// types dequantize as ggml does).
  F32,
  /// Tensors of rank 2 and more kept in the type they were published in
  /// (F32, F16, BF16, Q8_0, ...), their bytes copied unchanged (no
  /// requantization); 1-D tensors (norms, biases) as f32.
  Stored,
};

/// A converted model, not yet written: its .kiln FlatBuffer (every weight's
/// dtype, shape, offset and size decided) and how each weight's bytes come
/// from the input, which it keeps mapped. write() streams the file one
/// tensor at a time, so a model is never held in memory twice.
class ConvertedModel {
public:
  struct Impl;
  explicit ConvertedModel(std::unique_ptr<Impl> impl);
  ConvertedModel(ConvertedModel &&) noexcept;
  ConvertedModel &operator=(ConvertedModel &&) noexcept;
  ~ConvertedModel();

  /// Bytes of the whole file (FlatBuffer, padding, data section).
  uint64_t fileSize() const;
  /// The FlatBuffer and its padding: the file's first data_offset bytes.
  llvm::ArrayRef<uint8_t> header() const;
  /// Writes the file to `os`: the header, then each weight, converted from
  /// the input as it goes. Returns false with `error` set when a weight
  /// cannot be converted (a non-finite value to quantize); a write error
  /// is the stream's own, for the caller to report.
  bool write(llvm::raw_ostream &os, std::string &error) const;
  /// The whole file in memory, page aligned (tests, --tokenize, compiling
  /// without writing the file); null when it cannot be allocated or
  /// written.
  std::unique_ptr<llvm::MemoryBuffer> toMemoryBuffer() const;

private:
  std::unique_ptr<Impl> impl;
};

/// What `path` is: a directory with config.json (Hugging Face), a file
/// starting with "GGUF", or a .kiln file (FlatBuffers identifier "KILN").
llvm::Expected<InputKind> detectInput(llvm::StringRef path);

/// True for a directory or a file that starts with "GGUF": inputs only the
/// converters read (kiln-compile hands everything else to the .kiln
/// importer, whose messages are more specific for damaged .kiln files).
bool needsConversion(llvm::StringRef path);

struct ConvertOptions {
  /// The model name recorded in the file (default: from the input).
  std::string name;
  /// Cap the context length (KV cache capacity) below the model's; 0 keeps it.
  int64_t contextLength = 0;
  /// How tensors are stored (kiln-convert --dtype; its default is
  /// kiln-convert's kDefaultWeightDType).
  WeightDType dtype = WeightDType::F32;
  /// Quantize F32/F16/BF16 matrices with llama-quantize's recipe
  /// (kiln-convert --quantize); tensors the recipe leaves alone are stored
  /// as `dtype` says. None: no quantization.
  QuantizeRecipe quantize = QuantizeRecipe::None;
};

/// Converts a GGUF file or a Hugging Face model directory to a .kiln model
/// file (the graph, metadata, tokenizer and the plan of its weights), ready
/// to be written.
llvm::Expected<ConvertedModel>
convertToKiln(llvm::StringRef path, const ConvertOptions &options = {});

/// Writes `model` to `path` atomically (writeFileAtomically), streaming it.
/// An error with code std::errc::invalid_argument is the input's (a weight
/// that cannot be quantized); any other is the output's.
llvm::Error writeModelFile(llvm::StringRef path, const ConvertedModel &model);

/// A human-readable summary of a GGUF file, Hugging Face directory or .kiln
/// file: architecture, shapes, tensor types, vocabulary, special tokens.
llvm::Expected<std::string> describe(llvm::StringRef path);

/// llvm::json::parse, after checking that arrays and objects nest at most
/// 256 deep: the parser and the value's destructor recurse once per level,
/// so a hostile file of a million '[' would overflow the stack. `what` names
/// the text in messages.
llvm::Expected<llvm::json::Value> parseJSON(llvm::StringRef text,
                                            const llvm::Twine &what);

/// Writes what `write` streams to `path` atomically: into a temporary file
/// in the same directory (`.kiln-tmp-XXXXXX`), renamed over `path` only once
/// `write` returned true and every byte was written, so that a reader never
/// sees a partial file and a failure leaves `path` as it was (the temporary
/// is removed). `path` "-" streams to stdout instead. Returns false with
/// `error` set ("cannot write 'PATH': REASON") when the file cannot be
/// created, written or renamed; when `write` returns false, returns false
/// and leaves `error` as `write` left it. kiln-convert writes its model
/// files and kiln-compile its outputs through it.
bool writeFileAtomically(
    llvm::StringRef path,
    llvm::function_ref<bool(llvm::raw_pwrite_stream &)> write,
    std::string &error);


} // namespace kiln::convert

#endif // KILN_CONVERT_CONVERT_H
