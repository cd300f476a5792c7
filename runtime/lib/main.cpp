//===- main.cpp - main() of generated executables -------------------------===//
//
// Binds the entry points and model record that the compiler's object file
// defines, and runs the generation loop.
//
//===----------------------------------------------------------------------===//

#include "kiln/rt/driver.h"

extern "C" int kiln_main(int argc, char **argv) {
  return kiln::rt::run(argc, argv, kiln::rt::linkedEntryPoints());
}

int main(int argc, char **argv) { return kiln_main(argc, argv); }
