"""Rewrites a version 1 .kiln file (weights inside the FlatBuffer) as
version 2 (weights in a page-aligned data section after it), which current
readers need. The graph, metadata, tokenizer and every weight's bytes are
kept exactly, so the upgraded model computes the same outputs.

    PYTHONPATH=<kiln>/compiler/kiln_export python3 -m kiln_export.upgrade OLD.kiln NEW.kiln

A version 2 file is refused ("already version 2"); NEW may be OLD itself
(written atomically).
"""
import argparse
import sys

import flatbuffers

from . import reader
from ._fb import Model
from .writer import ModelWriter

# Weight.data, the field version 1 kept each weight's bytes in (field 3,
# deprecated since version 2: the generated code has no accessor for it).
_V1_DATA_VT = 4 + 2 * 3


def _v1_bytes(w):
    o = flatbuffers.number_types.UOffsetTFlags.py_type(w._tab.Offset(_V1_DATA_VT))
    if o == 0:
        return b""
    start = w._tab.Vector(o)
    return bytes(w._tab.Bytes[start:start + w._tab.VectorLen(o)])


def upgrade_bytes(data, where="model file"):
    """The version 2 file of the version 1 file `data` (bytes)."""
    if len(data) < 8 or not Model.Model.ModelBufferHasIdentifier(data, 0):
        raise ValueError("%s is not a Kiln model file (missing the 'KILN' identifier)" % where)
    m = Model.Model.GetRootAs(data, 0)
    if m.Version() != 1:
        raise ValueError("%s has schema version %d; only version 1 files need upgrading"
                         % (where, m.Version()))
    t = reader.parse_tables(m, where)
    md = t["metadata"]
    if len(t["inputs"]) not in (1, 2) or len(t["outputs"]) != 1:
        raise ValueError("%s: the graph must have one or two inputs and one output" % where)
    source = t["inputs"][0] if len(t["inputs"]) == 2 else None
    w = ModelWriter(architecture=md["architecture"], name=md["name"],
                    context_length=md["context_length"], vocab_size=md["vocab_size"],
                    bos_token_id=md["bos_token_id"], eos_token_id=md["eos_token_id"],
                    pad_token_id=md["pad_token_id"], add_bos=md["add_bos"],
                    input_name=t["inputs"][-1], source_name=source,
                    source_length=md["source_length"],
                    source_vocab_size=md["source_vocab_size"])
    for i in range(m.WeightsLength()):
        wt = m.Weights(i)
        name = reader._str(wt.Name())
        dtype = reader.DTYPE_NAMES.get(wt.Dtype(), "unknown dtype %d" % wt.Dtype())
        shape = [int(wt.Shape(j)) for j in range(wt.ShapeLength())]
        w.raw_weight(name, _v1_bytes(wt), dtype, shape)
    for n in t["nodes"]:
        w.node(n.op, n.name, n.inputs, n.outputs, **n.attrs)
    if t["tokenizer"] is not None:
        w.set_tokenizer(**t["tokenizer"])
    return w, t["outputs"][0]


def upgrade(old_path, new_path):
    with open(old_path, "rb") as f:
        data = f.read()
    w, output = upgrade_bytes(data, old_path)
    w.write(new_path, output=output)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m kiln_export.upgrade",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("old", help="a version 1 .kiln file")
    ap.add_argument("new", help="the version 2 file to write")
    args = ap.parse_args(argv)
    try:
        upgrade(args.old, args.new)
    except (OSError, ValueError) as e:
        sys.exit("kiln_export.upgrade: error: %s" % e)
    print("wrote %s (schema version 2)" % args.new)


if __name__ == "__main__":
    main()
