//===- ResultsToOutParams.cpp - Returned buffers allocated by the caller --===//
//
// Implements `kiln-results-to-out-params`. After bufferization, a function
// that returns a buffer it allocated (an outlined layer block's output rows)
// hands its caller a memref of unknown origin. Buffer deallocation cannot
// tell such a result from the caller's own temporaries, so it frees all of
// them together where the caller ends (one `bufferization.dealloc` with
// run-time alias checks): in a model's @prefill every layer's temporaries
// would stay alive until it returns, and each layer would touch fresh memory.
// Here the caller allocates the buffer instead and passes it as an extra
// argument. Unlike upstream's `buffer-results-to-out-params`, dynamic shapes
// are handled: the sizes (and any views the function returns the buffer
// through) are recomputed at each call site from the call's operands.
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

namespace kiln {
#define GEN_PASS_DEF_KILNRESULTSTOOUTPARAMS
#include "kiln/Codegen/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

/// A result of a function that the caller can allocate: the returned value
/// is `alloc` seen through `views` (innermost first), and `slice` (in block
/// order) computes the alloc's sizes and the views' other operands from the
/// function's arguments alone (ArgumentSizes).
struct OutParam {
  unsigned result;
  memref::AllocOp alloc;
  SmallVector<Operation *> views;
  SmallVector<Operation *> slice;
};

/// Rewrites index values of `body` (buffer sizes) as functions of its
/// arguments, with new ops at the start of `body`: a size read from a
/// buffer the function allocated or viewed (`memref.dim` of an alloc, a
/// reshape, a subview, a cast) becomes the size it was made with, down to
/// the arguments' own sizes. Every op it creates reads only arguments and
/// ops it created before: `takeSlice` returns the ones in use, in order,
/// which a call site can clone with the call's operands.
class ArgumentSizes {
public:
  explicit ArgumentSizes(Block &body) : body(body), b(&body, body.begin()) {}

  /// `v` (an index) from the arguments, or nothing.
  std::optional<Value> value(Value v) {
    if (auto arg = dyn_cast<BlockArgument>(v))
      return arg.getOwner() == &body ? std::optional<Value>(v) : std::nullopt;
    Operation *def = v.getDefiningOp();
    if (def->hasTrait<OpTrait::ConstantLike>())
      return track(b.clone(*def))->getResult(0);
    if (auto dim = dyn_cast<memref::DimOp>(def)) {
      std::optional<int64_t> i = dim.getConstantIndex();
      if (!i)
        return std::nullopt;
      return size(dim.getSource(), *i);
    }
    if (def->getNumRegions() != 0 || def->getNumResults() != 1 ||
        !isMemoryEffectFree(def) || def->getBlock() != &body ||
        !llvm::all_of(def->getOperandTypes(),
                      [](Type t) { return t.isIndex(); }))
      return std::nullopt;
    IRMapping map;
    for (Value operand : def->getOperands()) {
      std::optional<Value> r = value(operand);
      if (!r)
        return std::nullopt;
      map.map(operand, *r);
    }
    return track(b.clone(*def, map))->getResult(0);
  }

  /// The size of dimension `i` of buffer `m`, from the arguments.
  std::optional<Value> size(Value m, int64_t i) {
    auto type = cast<MemRefType>(m.getType());
    if (!type.isDynamicDim(i))
      return constant(type.getDimSize(i));
    if (auto arg = dyn_cast<BlockArgument>(m)) {
      if (arg.getOwner() != &body)
        return std::nullopt;
      return track(memref::DimOp::create(b, m.getLoc(), m, constant(i)))
          ->getResult(0);
    }
    Operation *def = m.getDefiningOp();
    if (auto alloc = dyn_cast<memref::AllocOp>(def))
      return mixed(alloc.getMixedSizes()[i]);
    if (auto expand = dyn_cast<memref::ExpandShapeOp>(def))
      return mixed(expand.getMixedOutputShape()[i]);
    if (auto cast = dyn_cast<memref::CastOp>(def))
      return size(cast.getSource(), i);
    if (auto sub = dyn_cast<memref::SubViewOp>(def);
        sub && sub.getSourceType().getRank() == type.getRank())
      return mixed(sub.getMixedSizes()[i]);
    if (auto collapse = dyn_cast<memref::CollapseShapeOp>(def)) {
      std::optional<Value> product;
      for (int64_t j : collapse.getReassociationIndices()[i]) {
        if (collapse.getSrcType().getDimSize(j) == 1)
          continue;
        std::optional<Value> d = size(collapse.getSrc(), j);
        if (!d)
          return std::nullopt;
        product =
            product ? track(arith::MulIOp::create(b, m.getLoc(), *product, *d))
                          ->getResult(0)
                    : *d;
      }
      return product;
    }
    return std::nullopt;
  }

  /// Erases the ops this created that nothing uses, and returns the others
  /// (in creation order: operands first).
  SmallVector<Operation *> takeSlice() {
    SmallVector<Operation *> used;
    for (Operation *op : llvm::reverse(created)) {
      if (op->use_empty())
        op->erase();
      else
        used.push_back(op);
    }
    created.clear();
    std::reverse(used.begin(), used.end());
    return used;
  }

private:
  Operation *track(Operation *op) {
    created.push_back(op);
    return op;
  }
  Value constant(int64_t v) {
    return track(arith::ConstantIndexOp::create(b, body.getParentOp()->getLoc(),
                                                v))
        ->getResult(0);
  }
  std::optional<Value> mixed(OpFoldResult r) {
    if (auto attr = dyn_cast<Attribute>(r))
      return constant(cast<IntegerAttr>(attr).getInt());
    return value(cast<Value>(r));
  }

  Block &body;
  OpBuilder b;
  SmallVector<Operation *> created;
};

/// Result `i` of `func` as an out-param, if its buffer can be allocated by
/// the caller.
std::optional<OutParam> outParam(func::FuncOp func, unsigned i) {
  Block &body = func.getBody().front();
  Value v = body.getTerminator()->getOperand(i);
  if (!isa<MemRefType>(v.getType()))
    return std::nullopt;
  OutParam p;
  p.result = i;
  Value root = v;
  while (auto view = root.getDefiningOp<ViewLikeOpInterface>()) {
    if (view->getNumResults() != 1 || view->getBlock() != &body)
      return std::nullopt;
    p.views.push_back(view);
    root = view.getViewSource();
  }
  std::reverse(p.views.begin(), p.views.end());
  p.alloc = root.getDefiningOp<memref::AllocOp>();
  if (!p.alloc || p.alloc->getBlock() != &body ||
      !p.alloc.getSymbolOperands().empty())
    return std::nullopt;
  // The alloc's sizes and the views' other operands, as functions of the
  // arguments.
  SmallVector<OpOperand *> uses;
  for (OpOperand &size : p.alloc.getDynamicSizesMutable())
    uses.push_back(&size);
  for (Operation *view : p.views)
    for (OpOperand &operand : view->getOpOperands())
      if (operand.get() != cast<ViewLikeOpInterface>(view).getViewSource())
        uses.push_back(&operand);
  ArgumentSizes sizes(body);
  SmallVector<Value> needs;
  for (OpOperand *use : uses) {
    std::optional<Value> v = sizes.value(use->get());
    if (!v) {
      sizes.takeSlice();
      return std::nullopt;
    }
    needs.push_back(*v);
  }
  for (auto [use, v] : llvm::zip(uses, needs))
    use->set(v);
  p.slice = sizes.takeSlice();
  return p;
}

/// Rewrites `func` and every call of it (`calls`) so that the caller
/// allocates the buffers of `params`, passed as trailing arguments.
void convert(func::FuncOp func, MutableArrayRef<OutParam> params,
             ArrayRef<func::CallOp> calls) {
  Block &body = func.getBody().front();
  Operation *ret = body.getTerminator();
  llvm::BitVector dropped(func.getNumResults());
  for (const OutParam &p : params)
    dropped.set(p.result);

  for (func::CallOp call : calls) {
    OpBuilder b(call);
    SmallVector<Value> operands(call.getOperands());
    SmallVector<Value> replacements(call.getNumResults());
    for (OutParam &p : params) {
      IRMapping map;
      map.map(body.getArguments(), call.getOperands());
      for (Operation *op : p.slice)
        b.clone(*op, map);
      Operation *alloc = b.clone(*p.alloc, map);
      operands.push_back(alloc->getResult(0));
      Value view = alloc->getResult(0);
      map.map(p.alloc.getResult(), view);
      for (Operation *op : p.views)
        view = b.clone(*op, map)->getResult(0);
      replacements[p.result] = view;
    }
    SmallVector<Type> resultTypes;
    for (auto [i, t] : llvm::enumerate(call.getResultTypes()))
      if (!dropped.test(i))
        resultTypes.push_back(t);
    auto newCall = func::CallOp::create(b, call.getLoc(), func.getSymName(),
                                        resultTypes, operands);
    newCall->setAttrs(call->getAttrs());
    unsigned next = 0;
    for (auto [i, r] : llvm::enumerate(call.getResults()))
      r.replaceAllUsesWith(dropped.test(i) ? replacements[i]
                                           : newCall.getResult(next++));
    call.erase();
  }

  for (OutParam &p : params) {
    BlockArgument arg = body.addArgument(p.alloc.getType(), p.alloc.getLoc());
    p.alloc.getResult().replaceAllUsesWith(arg);
    p.alloc.erase();
  }
  ret->eraseOperands(dropped);
  SmallVector<Type> results;
  for (auto [i, t] : llvm::enumerate(func.getResultTypes()))
    if (!dropped.test(i))
      results.push_back(t);
  func.setType(
      FunctionType::get(func.getContext(), body.getArgumentTypes(), results));
}

struct KilnResultsToOutParamsPass
    : public kiln::impl::KilnResultsToOutParamsBase<
          KilnResultsToOutParamsPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    for (func::FuncOp func : module.getOps<func::FuncOp>()) {
      // Only private functions called directly: their signature is
      // internal (entry points keep the runtime's ABI).
      if (!func.isPrivate() || func.isExternal() ||
          !func.getBody().hasOneBlock())
        continue;
      std::optional<SymbolTable::UseRange> uses =
          SymbolTable::getSymbolUses(func, module);
      if (!uses)
        continue;
      SmallVector<func::CallOp> calls;
      bool onlyCalls = true;
      for (const SymbolTable::SymbolUse &use : *uses) {
        auto call = dyn_cast<func::CallOp>(use.getUser());
        onlyCalls &= call != nullptr;
        if (call)
          calls.push_back(call);
      }
      if (!onlyCalls)
        continue;
      SmallVector<OutParam> found, params;
      llvm::DenseMap<Operation *, int> returned;
      for (unsigned i = 0; i < func.getNumResults(); ++i)
        if (std::optional<OutParam> p = outParam(func, i)) {
          ++returned[p->alloc];
          found.push_back(std::move(*p));
        }
      // A buffer returned twice (through different views) stays a result.
      for (OutParam &p : found)
        if (returned[p.alloc] == 1)
          params.push_back(std::move(p));
      if (!params.empty())
        convert(func, params, calls);
    }
  }
};

} // namespace
