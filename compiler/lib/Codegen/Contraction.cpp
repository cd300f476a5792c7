//===- Contraction.cpp - Matching Kiln's contractions in linalg -----------===//

#include "Contraction.h"
#include "kiln/Codegen/Passes.h"

#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

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

/// Whether `v` (defined in `body` or above it) depends on no block argument
/// outside `allowed` and only on side-effect-free, region-free ops.
static bool dependsOnlyOn(Value v, Block &body, ArrayRef<unsigned> allowed) {
  if (auto arg = dyn_cast<BlockArgument>(v))
    return arg.getOwner() != &body ||
           llvm::is_contained(allowed, arg.getArgNumber());
  Operation *def = v.getDefiningOp();
  if (def->getBlock() != &body)
    return true;
  if (def->getNumRegions() || !isPure(def) || isa<linalg::IndexOp>(def))
    return false;
  return llvm::all_of(def->getOperands(),
                      [&](Value o) { return dependsOnlyOn(o, body, allowed); });
}

std::optional<kiln::ScaledInput> kiln::matchScaledInput(Value x) {
  auto op = x.getDefiningOp<linalg::GenericOp>();
  if (!op || !op.hasPureTensorSemantics() || op->getNumResults() != 1 ||
      op.getNumReductionLoops() != 0)
    return std::nullopt;
  unsigned loops = op.getNumLoops();
  MLIRContext *ctx = op.getContext();
  AffineMap id = AffineMap::getMultiDimIdentityMap(loops, ctx);
  AffineMap lastDim =
      AffineMap::get(loops, 0, getAffineDimExpr(loops - 1, ctx));
  AffineMap leading = id.getMajorSubMap(loops - 1);
  if (op.getIndexingMapsArray().back() != id || loops < 2)
    return std::nullopt;
  ScaledInput s{op, -1, -1, {}, {}};
  SmallVector<unsigned> full, kIn;
  for (OpOperand *in : op.getDpsInputOperands()) {
    AffineMap m = op.getMatchingIndexingMap(in);
    unsigned i = in->getOperandNumber();
    if (m == id)
      full.push_back(i);
    else if (m == lastDim)
      kIn.push_back(i);
    else if (m == leading)
      s.rowInputs.push_back(i);
    else
      return std::nullopt;
  }
  // Flatten the yielded product into its factors.
  Block &body = op.getRegion().front();
  SmallVector<Value> factors, work{body.getTerminator()->getOperand(0)};
  while (!work.empty()) {
    Value v = work.pop_back_val();
    auto mul = v.getDefiningOp<arith::MulFOp>();
    if (mul && mul->getBlock() == &body) {
      work.push_back(mul.getLhs());
      work.push_back(mul.getRhs());
    } else {
      factors.push_back(v);
    }
  }
  for (Value f : factors) {
    auto arg = dyn_cast<BlockArgument>(f);
    bool own = arg && arg.getOwner() == &body;
    if (own && llvm::is_contained(full, arg.getArgNumber()) && s.h < 0) {
      s.h = arg.getArgNumber();
    } else if (own && llvm::is_contained(kIn, arg.getArgNumber()) && s.g < 0) {
      s.g = arg.getArgNumber();
    } else if (dependsOnlyOn(f, body, s.rowInputs)) {
      s.rowFactors.push_back(f);
    } else {
      return std::nullopt;
    }
  }
  if (s.h < 0 || op->getOperand(s.h).getType() != x.getType() ||
      (s.g >= 0 &&
       !cast<RankedTensorType>(op->getOperand(s.g).getType()).hasStaticShape()))
    return std::nullopt;
  return s;
}

std::optional<StringRef> kiln::pairEpilogueMismatch(linalg::GenericOp op,
                                                    const Linear &a,
                                                    const Linear &b) {
  if (!isElementwiseBinary(op))
    return StringRef("is not an elementwise generic of two inputs");
  Block &body = op.getRegion().front();
  if (!body.getArgument(2).use_empty() ||
      !body.getOps<linalg::IndexOp>().empty())
    return StringRef("reads its init or its indices");
  Value ra = a.op->getResult(0), rb = b.op->getResult(0);
  Value in0 = op.getDpsInputs()[0], in1 = op.getDpsInputs()[1];
  if (a.op == b.op || !((in0 == ra && in1 == rb) || (in0 == rb && in1 == ra)) ||
      !ra.hasOneUse() || !rb.hasOneUse())
    return StringRef("its inputs are not two configured products used by it "
                     "alone");
  if (a.x() != b.x() || a.k != b.k || a.n != b.n ||
      a.op->getBlock() != op->getBlock() || b.op->getBlock() != op->getBlock())
    return StringRef("its products do not read the same x into the same shape "
                     "in its block");
  return std::nullopt;
}

std::optional<StringRef> kiln::columnEpilogueMismatch(linalg::GenericOp r) {
  if (!r.hasPureTensorSemantics() || r.getNumDpsInputs() != 1 ||
      r.getNumDpsInits() != 1 || r.getNumReductionLoops() != 0 ||
      r.getResult(0).getType() != r.getDpsInputs()[0].getType() ||
      !llvm::all_of(r.getIndexingMapsArray(),
                    [](AffineMap m) { return m.isIdentity(); }))
    return StringRef("is not an elementwise generic of one input");
  Value p = r.getDpsInputs()[0];
  for (Operation *u : p.getUsers())
    if (u != r && u->getParentOfType<linalg::GenericOp>() != r)
      return StringRef("the product has other users");
  // One row index (the leading dims before it are 1), so that a row of the
  // kernel's [M, N] output is a row of the product.
  auto type = cast<RankedTensorType>(p.getType());
  for (int64_t d = 0; d + 2 < type.getRank(); ++d)
    if (type.getDimSize(d) != 1)
      return StringRef("the product has more than one row index");
  for (Operation &op : r.getRegion().front())
    if (op.getNumRegions())
      return StringRef("its body has regions");
  return std::nullopt;
}

bool kiln::availableAt(Value v, Operation *at) {
  if (auto arg = dyn_cast<BlockArgument>(v))
    return arg.getParentRegion()->isAncestor(at->getParentRegion());
  Operation *def = v.getDefiningOp();
  Operation *a = def->getBlock()->findAncestorOpInBlock(*at);
  return a && def != a && def->isBeforeInBlock(a);
}

bool kiln::operandsAvailableAt(linalg::GenericOp r, Operation *at) {
  if (!availableAt(r.getDpsInits()[0], at))
    return false;
  WalkResult res = r.getRegion().walk([&](Operation *op) {
    for (Value v : op->getOperands()) {
      Region *defRegion = isa<BlockArgument>(v)
                              ? cast<BlockArgument>(v).getParentRegion()
                              : v.getDefiningOp()->getParentRegion();
      if (r.getRegion().isAncestor(defRegion) || v == r.getDpsInputs()[0])
        continue;
      if (!availableAt(v, at))
        return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return !res.wasInterrupted();
}

Operation *kiln::firstUseIn(Block *block, ArrayRef<Operation *> ops) {
  Operation *at = nullptr;
  for (Operation *op : ops) {
    for (Operation *user : op->getUsers()) {
      Operation *a = block->findAncestorOpInBlock(*user);
      if (a && (!at || a->isBeforeInBlock(at)))
        at = a;
    }
  }
  return at;
}

/// The value of index-typed `v`, computed in a generic's body at column
/// `col` of dimension `lastDim`, when it is integer arithmetic on
/// constants and `linalg.index lastDim` alone.
static std::optional<int64_t>
evalAtColumn(Value v, int64_t col, unsigned lastDim,
             llvm::DenseMap<Value, int64_t> &memo) {
  if (auto it = memo.find(v); it != memo.end())
    return it->second;
  Operation *def = v.getDefiningOp();
  if (!def)
    return std::nullopt;
  auto operand = [&](unsigned i) {
    return evalAtColumn(def->getOperand(i), col, lastDim, memo);
  };
  std::optional<int64_t> r;
  if (auto index = dyn_cast<linalg::IndexOp>(def)) {
    if (index.getDim() == lastDim)
      r = col;
  } else if (auto c = dyn_cast<arith::ConstantOp>(def)) {
    if (auto i = dyn_cast<IntegerAttr>(c.getValue()))
      r = i.getValue().getSExtValue();
  } else if (auto cast = dyn_cast<arith::IndexCastOp>(def)) {
    r = operand(0);
  } else if (auto sel = dyn_cast<arith::SelectOp>(def)) {
    if (std::optional<int64_t> cond = operand(0))
      r = operand(*cond ? 1 : 2);
  } else if (def->getNumOperands() == 2 && def->getNumResults() == 1) {
    std::optional<int64_t> a = operand(0), b = operand(1);
    if (!a || !b)
      return std::nullopt;
    uint64_t ua = *a, ub = *b;
    if (isa<arith::AddIOp>(def))
      r = *a + *b;
    else if (isa<arith::SubIOp>(def))
      r = *a - *b;
    else if (isa<arith::MulIOp>(def))
      r = *a * *b;
    else if (*b != 0 && isa<arith::DivUIOp>(def))
      r = static_cast<int64_t>(ua / ub);
    else if (*b != 0 && isa<arith::RemUIOp>(def))
      r = static_cast<int64_t>(ua % ub);
    else if (*b != 0 && isa<arith::DivSIOp>(def))
      r = *a / *b;
    else if (*b != 0 && isa<arith::RemSIOp>(def))
      r = *a % *b;
    else if (auto cmp = dyn_cast<arith::CmpIOp>(def))
      r = arith::applyCmpPredicate(cmp.getPredicate(), APInt(64, ua),
                                   APInt(64, ub));
  }
  if (r)
    memo[v] = *r;
  return r;
}

std::optional<int64_t> kiln::readColumnGroup(linalg::GenericOp r, Value p,
                                             int64_t n) {
  unsigned rank = cast<RankedTensorType>(p.getType()).getRank();
  SmallVector<tensor::ExtractOp> reads;
  r.getRegion().walk([&](tensor::ExtractOp ex) {
    if (ex.getTensor() == p)
      reads.push_back(ex);
  });
  // A generic that reads its own element alone (an activation) is left
  // alone: not measured as an epilogue.
  if (reads.empty())
    return std::nullopt;
  // Every read is in the element's own row (and leading positions): the
  // element's index, or 0 where the dimension has one position.
  auto type = cast<RankedTensorType>(p.getType());
  for (tensor::ExtractOp ex : reads) {
    for (unsigned d = 0; d + 1 < rank; ++d) {
      Value at = ex.getIndices()[d];
      auto index = at.getDefiningOp<linalg::IndexOp>();
      if (!(index && index.getDim() == d) &&
          !(type.getDimSize(d) == 1 && isZeroInteger(at)))
        return std::nullopt;
    }
  }
  // columns[c]: the columns read at column c.
  std::vector<SmallVector<int64_t, 2>> columns(n);
  for (int64_t c = 0; c < n; ++c) {
    llvm::DenseMap<Value, int64_t> memo;
    for (tensor::ExtractOp ex : reads) {
      std::optional<int64_t> at =
          evalAtColumn(ex.getIndices()[rank - 1], c, rank - 1, memo);
      if (!at || *at < 0 || *at >= n)
        return std::nullopt;
      columns[c].push_back(*at);
    }
  }
  for (int64_t g = 1; g <= n; ++g) {
    if (n % g)
      continue;
    bool within = true;
    for (int64_t c = 0; c < n && within; ++c)
      within =
          llvm::all_of(columns[c], [&](int64_t at) { return at / g == c / g; });
    if (within)
      return g;
  }
  return std::nullopt;
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

FailureOr<SmallVector<kiln::ConfiguredLinear>>
kiln::configuredLinears(Operation *root) {
  SmallVector<ConfiguredLinear> found;
  WalkResult walk = root->walk([&](linalg::GenericOp op) {
    Attribute attr = op->getAttr(kKernelAttr);
    std::optional<Linear> l = attr ? matchLinear(op) : std::nullopt;
    if (!l)
      return WalkResult::advance();
    std::optional<KernelConfig> config = KernelConfig::fromAttr(attr);
    if (!config) {
      op.emitOpError("has a malformed '")
          << kKernelAttr << "' strategy: " << attr;
      return WalkResult::interrupt();
    }
    found.push_back({*l, *config});
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return failure();
  return found;
}
