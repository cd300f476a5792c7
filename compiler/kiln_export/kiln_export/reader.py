"""Reads .kiln files back (weights and metadata), e.g. to load a compiled
model's weights into a PyTorch module for comparison."""
import numpy as np

from kiln.fb import DType, Model


def read_model(path):
    """Returns (metadata dict, {weight name: float32 numpy array})."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8 or data[4:8] != b"KILN":
        raise ValueError("%s is not a Kiln model file" % path)
    m = Model.Model.GetRootAs(data, 0)
    meta = m.Metadata()
    info = {
        "name": (meta.Name() or b"").decode(),
        "context_length": meta.ContextLength(),
        "vocab_size": meta.VocabSize(),
        "bos_token_id": meta.BosTokenId(),
        "eos_token_id": meta.EosTokenId(),
        "version": m.Version(),
    }
    weights = {}
    for i in range(m.WeightsLength()):
        w = m.Weights(i)
        if w.Dtype() != DType.DType.F32:
            raise ValueError("weight %r: only F32 is read" % w.Name().decode())
        shape = [w.Shape(j) for j in range(w.ShapeLength())]
        weights[w.Name().decode()] = w.DataAsNumpy().view("<f4").reshape(shape).copy()
    return info, weights
