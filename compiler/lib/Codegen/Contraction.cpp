//===- Contraction.cpp - Matching Kiln's contractions in linalg -----------===//

#include "Contraction.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Matchers.h"

using namespace mlir;

/// Whether the body is `out + a * b` (either order of each operation).
static bool isMulAccBody(linalg::GenericOp op) {
  Block &body = op.getRegion().front();
  if (body.getOperations().size() != 3)
    return false;
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  auto add = yield.getValues()[0].getDefiningOp<arith::AddFOp>();
  if (!add)
    return false;
  Value acc = body.getArgument(2);
  Value prod = add.getLhs() == acc ? add.getRhs() : add.getLhs();
  if (add.getLhs() != acc && add.getRhs() != acc)
    return false;
  auto mul = prod.getDefiningOp<arith::MulFOp>();
  if (!mul)
    return false;
  Value a = body.getArgument(0), b = body.getArgument(1);
  return (mul.getLhs() == a && mul.getRhs() == b) ||
         (mul.getLhs() == b && mul.getRhs() == a);
}

std::optional<kiln::Linear> kiln::matchLinear(linalg::GenericOp op) {
  if (op.getNumDpsInputs() != 2 || op.getNumDpsInits() != 1 ||
      !op.hasPureTensorSemantics())
    return std::nullopt;
  unsigned loops = op.getNumLoops();
  if (loops < 3)
    return std::nullopt;
  auto iters = op.getIteratorTypesArray();
  for (unsigned i = 0; i + 1 < loops; ++i)
    if (iters[i] != utils::IteratorType::parallel)
      return std::nullopt;
  if (iters.back() != utils::IteratorType::reduction)
    return std::nullopt;
  // x: (d0 .. d[L-3], d[L-1]); w: (d[L-2], d[L-1]); out: (d0 .. d[L-2]).
  MLIRContext *ctx = op.getContext();
  SmallVector<AffineExpr> xe, oe;
  for (unsigned i = 0; i + 2 < loops; ++i) {
    xe.push_back(getAffineDimExpr(i, ctx));
    oe.push_back(getAffineDimExpr(i, ctx));
  }
  xe.push_back(getAffineDimExpr(loops - 1, ctx));
  oe.push_back(getAffineDimExpr(loops - 2, ctx));
  auto maps = op.getIndexingMapsArray();
  if (maps[0] != AffineMap::get(loops, 0, xe, ctx) ||
      maps[1] != AffineMap::get(loops, 0,
                                {getAffineDimExpr(loops - 2, ctx),
                                 getAffineDimExpr(loops - 1, ctx)},
                                ctx) ||
      maps[2] != AffineMap::get(loops, 0, oe, ctx))
    return std::nullopt;
  if (!isMulAccBody(op))
    return std::nullopt;
  Linear l{op, 0, 0};
  auto wType = cast<RankedTensorType>(l.w().getType());
  auto xType = cast<RankedTensorType>(l.x().getType());
  auto oType = cast<RankedTensorType>(l.init().getType());
  if (!wType.hasStaticShape() || !wType.getElementType().isF32() ||
      !xType.getElementType().isF32() || !oType.getElementType().isF32())
    return std::nullopt;
  l.n = wType.getDimSize(0);
  l.k = wType.getDimSize(1);
  return l;
}

bool kiln::isZeroFill(Value v) {
  auto fill = v.getDefiningOp<linalg::FillOp>();
  return fill && matchPattern(fill.getInputs()[0], m_PosZeroFloat());
}

bool kiln::isElementwiseBinary(linalg::GenericOp op) {
  return op.getNumDpsInputs() == 2 && op.getNumDpsInits() == 1 &&
         op.hasPureTensorSemantics() && op.getNumReductionLoops() == 0 &&
         llvm::all_of(op.getIndexingMapsArray(),
                      [](AffineMap m) { return m.isIdentity(); });
}


mlir::DictionaryAttr kiln::KernelConfig::toAttr(MLIRContext *context) const {
  Builder b(context);
  SmallVector<NamedAttribute> entries{
      b.getNamedAttr("role", b.getStringAttr(isDecode() ? "decode" : "prompt")),
      b.getNamedAttr("vector_lanes", b.getI64IntegerAttr(vectorLanes)),
      b.getNamedAttr("block_cols", b.getI64IntegerAttr(blockCols)),
      b.getNamedAttr("dot_rows", b.getI64IntegerAttr(dotRows)),
      b.getNamedAttr("packed", b.getBoolAttr(packed)),
      b.getNamedAttr("pack_min_rows", b.getI64IntegerAttr(packMinRows)),
      b.getNamedAttr("outer_rows", b.getI64IntegerAttr(outerRows)),
  };
  // Written only when not the default (f32).
  if (int8Activations)
    entries.push_back(b.getNamedAttr("activations", b.getStringAttr("i8")));
  return b.getDictionaryAttr(entries);
}

std::optional<kiln::KernelConfig>
kiln::KernelConfig::fromAttr(Attribute attr) {
  auto dict = dyn_cast_or_null<DictionaryAttr>(attr);
  if (!dict)
    return std::nullopt;
  KernelConfig c;
  auto role = dict.getAs<StringAttr>("role");
  auto packed = dict.getAs<BoolAttr>("packed");
  if (!role || !packed ||
      (role.getValue() != "decode" && role.getValue() != "prompt"))
    return std::nullopt;
  c.role = role.getValue() == "decode" ? Role::Decode : Role::Prompt;
  c.packed = packed.getValue();
  if (Attribute a = dict.get("activations")) {
    auto s = dyn_cast<StringAttr>(a);
    if (!s || (s.getValue() != "f32" && s.getValue() != "i8"))
      return std::nullopt;
    c.int8Activations = s.getValue() == "i8";
  }
  for (auto [name, field] :
       {std::pair<StringRef, int64_t *>{"vector_lanes", &c.vectorLanes},
        {"block_cols", &c.blockCols},
        {"dot_rows", &c.dotRows},
        {"pack_min_rows", &c.packMinRows},
        {"outer_rows", &c.outerRows}}) {
    auto v = dict.getAs<IntegerAttr>(name);
    if (!v || v.getInt() < 1)
      return std::nullopt;
    *field = v.getInt();
  }
  return c;
}
