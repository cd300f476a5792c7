//===- TargetDescription.cpp - The CPU Kiln generates code for -----------===//

#include "kiln/Target/TargetDescription.h"

#include "mlir/IR/Builders.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/Triple.h"

#include <memory>
#include <unistd.h>

using namespace llvm;

namespace {
/// Caches assumed for a named CPU other than the host's, whose sizes LLVM
/// does not describe: those of the Zen 4 machines Kiln is measured on (L1d
/// 32 KiB, L2 1 MiB per core, L3 32 MiB shared).
constexpr int64_t kDefaultL1d = 32 << 10, kDefaultL2 = 1 << 20,
                  kDefaultL3 = 32 << 20;

int64_t sysconfBytes(int name, int64_t fallback) {
  long v = sysconf(name);
  return v > 0 ? v : fallback;
}
} // namespace

Expected<kiln::TargetDescription> kiln::describeTarget(StringRef cpu,
                                                       int64_t vectorBits) {
  InitializeNativeTarget();
  TargetDescription t;
  t.triple = sys::getDefaultTargetTriple();
  t.isHost = cpu.empty() || cpu == "host" || cpu == sys::getHostCPUName();
  t.cpu = t.isHost ? sys::getHostCPUName().str() : cpu.str();
  std::string error;
  Triple triple(t.triple);
  const Target *target = TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return createStringError(error);
  std::unique_ptr<MCSubtargetInfo> sti(
      target->createMCSubtargetInfo(triple, t.cpu, ""));
  if (!sti || !sti->isCPUStringValid(t.cpu))
    return createStringError("unknown CPU '" + cpu.str() + "' for " +
                             t.triple + " (try `llc -mcpu=help`)");
  // The host's own feature list (a VM may hide some of its model's);
  // otherwise what the CPU name implies.
  StringMap<bool> host;
  if (t.isHost)
    host = sys::getHostCPUFeatures();
  auto has = [&](StringRef f) {
    return t.isHost ? host.lookup(f) : sti->checkFeatures(("+" + f).str());
  };
  int64_t widest = has("avx512f") ? 512 : has("avx") ? 256 : 128;
  t.avx = has("avx");
  t.fma = has("fma");
  t.f16c = has("f16c");
  t.avx512vnni = has("avx512vnni");
  t.avx512bf16 = has("avx512bf16");
  if (vectorBits == 0)
    vectorBits = widest;
  if (vectorBits != 128 && vectorBits != 256 && vectorBits != 512)
    return createStringError("vector width " + std::to_string(vectorBits) +
                             " bits: expected 128, 256 or 512");
  if (vectorBits > widest)
    return createStringError("CPU '" + t.cpu + "' has " +
                             std::to_string(widest) +
                             "-bit vectors at most, not " +
                             std::to_string(vectorBits));
  t.vectorBits = vectorBits;
  if (t.isHost) {
    t.l1dBytes = sysconfBytes(_SC_LEVEL1_DCACHE_SIZE, kDefaultL1d);
    t.l2Bytes = sysconfBytes(_SC_LEVEL2_CACHE_SIZE, kDefaultL2);
    t.l3Bytes = sysconfBytes(_SC_LEVEL3_CACHE_SIZE, kDefaultL3);
  } else {
    t.l1dBytes = kDefaultL1d;
    t.l2Bytes = kDefaultL2;
    t.l3Bytes = kDefaultL3;
  }
  return t;
}

mlir::DictionaryAttr
kiln::TargetDescription::toAttr(mlir::MLIRContext *context) const {
  mlir::Builder b(context);
  return b.getDictionaryAttr({
      b.getNamedAttr("triple", b.getStringAttr(triple)),
      b.getNamedAttr("cpu", b.getStringAttr(cpu)),
      b.getNamedAttr("host", b.getBoolAttr(isHost)),
      b.getNamedAttr("vector_bits", b.getI64IntegerAttr(vectorBits)),
      b.getNamedAttr("l1d_bytes", b.getI64IntegerAttr(l1dBytes)),
      b.getNamedAttr("l2_bytes", b.getI64IntegerAttr(l2Bytes)),
      b.getNamedAttr("l3_bytes", b.getI64IntegerAttr(l3Bytes)),
      b.getNamedAttr("avx", b.getBoolAttr(avx)),
      b.getNamedAttr("fma", b.getBoolAttr(fma)),
      b.getNamedAttr("f16c", b.getBoolAttr(f16c)),
      b.getNamedAttr("avx512_vnni", b.getBoolAttr(avx512vnni)),
      b.getNamedAttr("avx512_bf16", b.getBoolAttr(avx512bf16)),
  });
}

Expected<kiln::TargetDescription>
kiln::TargetDescription::fromAttr(mlir::DictionaryAttr attr) {
  TargetDescription t;
  std::string missing;
  auto str = [&](StringRef name, std::string &out) {
    if (auto s = attr.getAs<mlir::StringAttr>(name))
      out = s.str();
    else
      missing += " " + name.str();
  };
  auto i64 = [&](StringRef name, int64_t &out) {
    if (auto i = attr.getAs<mlir::IntegerAttr>(name))
      out = i.getInt();
    else
      missing += " " + name.str();
  };
  auto flag = [&](StringRef name, bool &out) {
    if (auto f = attr.getAs<mlir::BoolAttr>(name))
      out = f.getValue();
    else
      missing += " " + name.str();
  };
  str("triple", t.triple);
  str("cpu", t.cpu);
  flag("host", t.isHost);
  i64("vector_bits", t.vectorBits);
  i64("l1d_bytes", t.l1dBytes);
  i64("l2_bytes", t.l2Bytes);
  i64("l3_bytes", t.l3Bytes);
  flag("avx", t.avx);
  flag("fma", t.fma);
  flag("f16c", t.f16c);
  flag("avx512_vnni", t.avx512vnni);
  flag("avx512_bf16", t.avx512bf16);
  if (!missing.empty())
    return createStringError("'" + kTargetAttr.str() + "' lacks" + missing);
  if (t.vectorBits != 128 && t.vectorBits != 256 && t.vectorBits != 512)
    return createStringError("'" + kTargetAttr.str() +
                             "': vector_bits must be 128, 256 or 512");
  return t;
}

Expected<kiln::TargetDescription> kiln::targetOf(mlir::ModuleOp module) {
  if (auto attr = module->getAttrOfType<mlir::DictionaryAttr>(kTargetAttr))
    return TargetDescription::fromAttr(attr);
  return describeTarget();
}
