//===- fuzz_gguf.cpp - libFuzzer target: GGUF files -----------------------===//
//
// Any bytes as a GGUF file: conversion either fails with a message or
// yields a model file the runtime accepts; --info never crashes.
//
//===----------------------------------------------------------------------===//

#include "fuzz_convert_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const std::string path = kiln::fuzz::scratchDir() + "/model.gguf";
  kiln::fuzz::writeFile(path, data, size);
  kiln::fuzz::convertAndCheck(path);
  return 0;
}
