//===- main.cpp - main() of generated executables -------------------------===//
//
// Binds the entry points and model record that the compiler's object file
// defines, and runs the generation loop.
//
//===----------------------------------------------------------------------===//

#include "runtime_internal.h"

extern "C" int kiln_main(int argc, char **argv) {
  kiln::rt::EntryPoints entry;
  entry.forward = &_mlir_ciface_forward;
  entry.prefill = &_mlir_ciface_prefill;
  entry.decode = &_mlir_ciface_decode;
  entry.info = kiln_model;
  return kiln::rt::run(argc, argv, entry);
}

int main(int argc, char **argv) { return kiln_main(argc, argv); }
