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

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kiln::convert {

enum class InputKind { Kiln, GGUF, HuggingFace };

/// The bytes of a converted .kiln file, held in the buffer they were built in
/// (no copy: a model's file is as large as its f32 weights).
class ModelBytes {
public:
  ModelBytes() = default;
  ModelBytes(std::shared_ptr<const void> owner, const uint8_t *data,
             size_t size)
      : owner(std::move(owner)), data(data), length(size) {}
  llvm::ArrayRef<uint8_t> bytes() const { return {data, length}; }
  size_t size() const { return length; }

private:
  std::shared_ptr<const void> owner;
  const uint8_t *data = nullptr;
  size_t length = 0;
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
};

/// Converts a GGUF file or a Hugging Face model directory to the bytes of a
/// .kiln model file (weights as f32, the graph, metadata and tokenizer).
llvm::Expected<ModelBytes>
convertToKiln(llvm::StringRef path, const ConvertOptions &options = {});

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

/// writeFileAtomically of `bytes`, with the message as an llvm::Error.
llvm::Error writeFileAtomically(llvm::StringRef path,
                                llvm::ArrayRef<uint8_t> bytes);

} // namespace kiln::convert

#endif // KILN_CONVERT_CONVERT_H
