//===- fuzz_convert_common.h - Shared by the converter fuzz targets -------===//
//
// The converters read files (GGUF) and directories (Hugging Face), so the
// targets write each input into a private temporary directory. A conversion
// that succeeds must yield a model file the runtime accepts: kiln-convert
// never writes a file the executable would refuse.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TEST_FUZZ_CONVERT_COMMON_H
#define KILN_TEST_FUZZ_CONVERT_COMMON_H

#include "kiln/Convert/Convert.h"
#include "kiln/rt/model.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

namespace kiln::fuzz {

/// A directory of this process's own, removed at exit.
inline const std::string &scratchDir() {
  static std::string dir = [] {
    const char *base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") +
                       "/kiln-fuzz-XXXXXX";
    if (!mkdtemp(tmpl.data()))
      std::abort();
    return tmpl;
  }();
  return dir;
}

inline void writeFile(const std::string &path, const uint8_t *data,
                      size_t size) {
  FILE *f = std::fopen(path.c_str(), "wb");
  if (!f)
    std::abort();
  if (size && std::fwrite(data, 1, size, f) != size)
    std::abort();
  std::fclose(f);
}

/// Converts `path` storing tensors as `dtype`; on success the runtime must
/// accept the written file.
inline void convertAndCheck(const std::string &path,
                            kiln::convert::WeightDType dtype) {
  kiln::convert::ConvertOptions options;
  options.dtype = dtype;
  auto converted = kiln::convert::convertToKiln(path, options);
  if (!converted) {
    llvm::consumeError(converted.takeError());
    return;
  }
  std::unique_ptr<llvm::MemoryBuffer> buf = converted->toMemoryBuffer();
  if (!buf)
    return;
  kiln::rt::ModelFile model;
  if (auto err = kiln::rt::loadModelBuffer(
          std::vector<uint8_t>(buf->getBufferStart(), buf->getBufferEnd()),
          model)) {
    std::fprintf(stderr, "converted file refused: %s\n",
                 err->message.c_str());
    std::abort();
  }
}

/// Converts `path` both ways (f32 and stored); on success the runtime must
/// accept the result. Also describes the input (--info) and must not crash
/// on it.
inline void convertAndCheck(const std::string &path) {
  for (auto dtype :
       {kiln::convert::WeightDType::F32, kiln::convert::WeightDType::Stored})
    convertAndCheck(path, dtype);
  auto info = kiln::convert::describe(path);
  if (!info)
    llvm::consumeError(info.takeError());
}

} // namespace kiln::fuzz

#endif
