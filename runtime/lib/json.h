//===- json.h - The JSON the runtime prints ---------------------*- C++ -*-===//
//
// Every JSON text the runtime prints (generated executables' --output=json,
// kiln-convert's --tokenize / --detokenize through jsonString and idList) is
// built as an nlohmann::ordered_json, whose keys keep the order they were
// inserted in, and printed by dumpJson. The conventions of the format live
// here: strings are valid UTF-8 (replaceInvalidUtf8), real numbers carry the
// value of their 9-significant-digit decimal, which gives back the same
// float32 (and is the value the format has always printed), non-finite
// numbers are null, and milliseconds have 3 decimals.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_JSON_H
#define KILN_RUNTIME_JSON_H

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>

namespace kiln::rt {

using Json = nlohmann::ordered_json;

/// `s` as a JSON string (replaceInvalidUtf8).
Json jsonText(const std::string &s);
/// `x` rounded to 9 significant digits; null when not finite.
Json jsonReal(double x);
/// `n` floats as an array of jsonReal.
Json jsonReals(const float *data, size_t n);
/// Milliseconds rounded to 3 decimals.
Json jsonMs(double ms);
/// The compact text of `value`: no spaces, non-ASCII characters as UTF-8.
std::string dumpJson(const Json &value);

} // namespace kiln::rt

#endif // KILN_RUNTIME_JSON_H
