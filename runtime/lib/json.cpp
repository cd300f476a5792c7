//===- json.cpp - The JSON the runtime prints -----------------------------===//

#include "json.h"

#include "kiln/rt/model.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace kiln::rt {

Json jsonText(const std::string &s) { return replaceInvalidUtf8(s); }

/// The double nearest to `x` printed with `format` (one conversion of a
/// double): what a reader of the decimal gets.
static double roundDecimal(double x, const char *format) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, x);
  return std::strtod(buf, nullptr);
}

Json jsonReal(double x) {
  if (!std::isfinite(x))
    return nullptr;
  return roundDecimal(x, "%.9g");
}

Json jsonReals(const float *data, size_t n) {
  Json a = Json::array();
  a.get_ref<Json::array_t &>().reserve(n);
  for (size_t i = 0; i < n; ++i)
    a.push_back(jsonReal(data[i]));
  return a;
}

Json jsonMs(double ms) {
  if (!std::isfinite(ms))
    return nullptr;
  return roundDecimal(ms, "%.3f");
}

std::string dumpJson(const Json &value) {
  // Strings are valid UTF-8 by construction (jsonText); `replace` keeps a
  // stray invalid byte from ever throwing.
  return value.dump(-1, ' ', /*ensure_ascii=*/false,
                    Json::error_handler_t::replace);
}

std::string jsonString(const std::string &s) { return dumpJson(jsonText(s)); }

std::string idList(const std::vector<int32_t> &ids) {
  return dumpJson(Json(ids));
}

} // namespace kiln::rt
