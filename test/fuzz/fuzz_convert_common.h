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

/// Converts `path`; on success the runtime must accept the result. Also
/// describes the input (--info) and must not crash on it.
inline void convertAndCheck(const std::string &path) {
  auto bytes = kiln::convert::convertToKiln(path);
  if (bytes) {
    kiln::rt::ModelFile model;
    if (auto err = kiln::rt::loadModelBuffer(bytes->bytes().vec(), model)) {
      std::fprintf(stderr, "converted file refused: %s\n",
                   err->message.c_str());
      std::abort();
    }
  } else {
    llvm::consumeError(bytes.takeError());
  }
  auto info = kiln::convert::describe(path);
  if (!info)
    llvm::consumeError(info.takeError());
}

} // namespace kiln::fuzz

#endif
