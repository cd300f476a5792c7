//===- entry_points.cpp - Bind the compiled model's entry points ----------===//
//
// The compiler's object defines either the decoder-only entry points or the
// encoder-decoder ones (kiln_runtime.h); both kinds share the symbol names
// forward, prefill and decode with different parameters. The runtime refers
// to them weakly and calls them through the pointer type of the model's kind
// (kiln_model.kind).
//
//===----------------------------------------------------------------------===//

#include "kiln/rt/session.h"

extern "C" {
#pragma weak _mlir_ciface_forward
#pragma weak _mlir_ciface_prefill
#pragma weak _mlir_ciface_decode
#pragma weak _mlir_ciface_encode
}

namespace kiln::rt {

EntryPoints linkedEntryPoints() {
  EntryPoints entry;
  entry.info = kiln_model;
  if (kiln_model.kind == KILN_MODEL_ENCODER_DECODER) {
    entry.encode = &_mlir_ciface_encode;
    entry.seq2seqForward =
        reinterpret_cast<kiln_seq2seq_forward_fn>(&_mlir_ciface_forward);
    entry.seq2seqPrefill =
        reinterpret_cast<kiln_seq2seq_step_fn>(&_mlir_ciface_prefill);
    entry.seq2seqDecode =
        reinterpret_cast<kiln_seq2seq_step_fn>(&_mlir_ciface_decode);
  } else {
    entry.forward = &_mlir_ciface_forward;
    entry.prefill = &_mlir_ciface_prefill;
    entry.decode = &_mlir_ciface_decode;
  }
  return entry;
}

} // namespace kiln::rt
