#!/usr/bin/env python3
"""Writes a .kiln model file from a model written as JSON text.

The JSON mirrors the FlatBuffers schema (runtime/schema/kiln.fbs) the way
`flatc --json` prints it, with two conveniences for hand-written tests:
weights give their values as `"values": [floats]` or as
`"random": {"seed": S, "scale": A}` (uniform in [-A, A]) instead of raw
bytes, and `"ones": true` fills a weight with 1.0. The weights' bytes go
into the data section after the FlatBuffer (schema version 2), each at the
next multiple of 64; for malformed files a weight may give its own
`"offset"` and `"size"` fields, and the model its `"data_offset"`,
`"data_size"` and `"version"` (1 writes a version 1 file: each weight's
bytes inside the FlatBuffer, as Weight.data, and no data section).

Usage: json2kiln.py model.json -o model.kiln [--truncate N] [--flip OFFSET]
"""
import argparse
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA = os.path.join(HERE, "..", "..", "runtime", "schema", "kiln.fbs")


def load_generated(tmp):
    flatc = os.environ.get("KILN_FLATC", shutil.which("flatc") or "flatc")
    subprocess.check_call([flatc, "--python", "-o", tmp, SCHEMA])
    sys.path.insert(0, tmp)
    import kiln.fb as fb  # noqa: F401
    return __import__("kiln.fb", fromlist=["*"])


def camel(name):
    return "".join(p.capitalize() for p in name.split("_"))


def weight_bytes(w):
    n = 1
    for d in w["shape"]:
        n *= d
    if "values" in w:
        vals = w["values"]
    elif "random" in w:
        rng = random.Random(w["random"].get("seed", 0))
        a = w["random"].get("scale", 0.5)
        vals = [rng.uniform(-a, a) for _ in range(n)]
    elif w.get("ones"):
        vals = [1.0] * n
    elif "data" in w:
        return bytes(w["data"])
    else:
        vals = [0.0] * n
    if w.get("dtype") == "F16":  # values of an F16 weight: stored as F16
        return struct.pack("<%de" % len(vals), *vals)
    if w.get("dtype") == "BF16":
        return b"".join(struct.pack("<f", v)[2:] for v in vals)
    return struct.pack("<%df" % len(vals), *vals)


def build(m, fbmod):
    import flatbuffers
    from importlib import import_module

    def mod(name):
        return import_module("kiln.fb." + name)

    b = flatbuffers.Builder(1024)

    def strvec(strs, start):
        offs = [b.CreateString(s) for s in strs]
        start(b, len(offs))
        for o in reversed(offs):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    def tabvec(offs, start):
        start(b, len(offs))
        for o in reversed(offs):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    Weight, Node, Model, Metadata = mod("Weight"), mod("Node"), mod("Model"), mod("Metadata")
    DType = mod("DType").DType
    version = m.get("version", 2)
    weights = []
    layout, at = [], 0
    for w in m.get("weights", []):
        data = weight_bytes(w)
        at = (at + 63) // 64 * 64
        layout.append((at, data))
        at += len(data)
    data_size = at
    for w, (offset, data) in zip(m.get("weights", []), layout):
        name = b.CreateString(w["name"])
        Weight.StartShapeVector(b, len(w["shape"]))
        for d in reversed(w["shape"]):
            b.PrependInt64(d)
        shape = b.EndVector()
        if version == 1:  # Weight.data (field 3), 64-byte aligned
            b.StartVector(1, len(data), 64)
            b.head = b.head - len(data)
            b.Bytes[b.head:b.head + len(data)] = data
            dv = b.EndVector()
        Weight.Start(b)
        Weight.AddName(b, name)
        Weight.AddShape(b, shape)
        if version == 1:
            b.PrependUOffsetTRelativeSlot(3, dv, 0)
        else:
            Weight.AddOffset(b, w.get("offset", offset))
            Weight.AddSize(b, w.get("size", len(data)))
        if "dtype" in w:
            Weight.AddDtype(b, getattr(DType, w["dtype"]) if isinstance(w["dtype"], str)
                            else w["dtype"])
        weights.append(Weight.End(b))
    nodes = []
    enums = {"activation": "Activation", "mode": "AttentionMode", "style": "RopeStyle"}
    for n in m.get("nodes", []):
        opmod = mod(n["op_type"])
        name = b.CreateString(n["name"])
        ins = strvec(n["inputs"], Node.StartInputsVector)
        outs = strvec(n["outputs"], Node.StartOutputsVector)
        vectors = {}  # list attributes (floats), built before the table
        for k, v in n.get("op", {}).items():
            if isinstance(v, list):
                getattr(opmod, "Start" + camel(k) + "Vector")(b, len(v))
                for e in reversed(v):
                    b.PrependFloat32(e)
                vectors[k] = b.EndVector()
        opmod.Start(b)
        for k, v in n.get("op", {}).items():
            if k in vectors:
                v = vectors[k]
            elif k in enums:
                v = getattr(getattr(mod(enums[k]), enums[k]), v)
            getattr(opmod, "Add" + camel(k))(b, v)
        op = opmod.End(b)
        Node.Start(b)
        Node.AddName(b, name)
        Node.AddOpType(b, getattr(mod("Op").Op, n["op_type"]))
        Node.AddOp(b, op)
        Node.AddInputs(b, ins)
        Node.AddOutputs(b, outs)
        nodes.append(Node.End(b))
    wv = tabvec(weights, Model.StartWeightsVector)
    nv = tabvec(nodes, Model.StartNodesVector)
    iv = strvec(m.get("inputs", ["tokens"]), Model.StartInputsVector)
    ov = strvec(m.get("outputs", ["logits"]), Model.StartOutputsVector)
    md = m.get("metadata", {})
    mname = b.CreateString(md.get("name", "model"))
    ends = None
    if "end_token_ids" in md:
        Metadata.StartEndTokenIdsVector(b, len(md["end_token_ids"]))
        for i in reversed(md["end_token_ids"]):
            b.PrependInt32(i)
        ends = b.EndVector()
    Metadata.Start(b)
    Metadata.AddName(b, mname)
    if "architecture" in md:
        Metadata.AddArchitecture(b, getattr(mod("Architecture").Architecture, md["architecture"]))
    for k in ("context_length", "vocab_size", "bos_token_id", "eos_token_id", "pad_token_id", "add_bos",
              "source_length", "source_vocab_size"):
        if k in md:
            getattr(Metadata, "Add" + camel(k))(b, md[k])
    if ends is not None:
        Metadata.AddEndTokenIds(b, ends)
    meta = Metadata.End(b)
    Model.Start(b)
    Model.AddVersion(b, version)
    Model.AddMetadata(b, meta)
    Model.AddInputs(b, iv)
    Model.AddOutputs(b, ov)
    Model.AddNodes(b, nv)
    Model.AddWeights(b, wv)
    if version != 1:
        # A placeholder, patched below once the FlatBuffer's size is known.
        Model.AddDataOffset(b, m.get("data_offset", 4096) or 4096)
        Model.AddDataSize(b, m.get("data_size", data_size))
    root = Model.End(b)
    b.Finish(root, file_identifier=m.get("file_identifier", "KILN").encode())
    header = bytearray(b.Output())
    if version == 1:
        return bytes(header)
    data_offset = m.get("data_offset", (len(header) + 4095) // 4096 * 4096)
    root = struct.unpack_from("<I", header, 0)[0]
    vtable = root - struct.unpack_from("<i", header, root)[0]
    field = struct.unpack_from("<H", header, vtable + 4 + 2 * 7)[0]  # data_offset
    struct.pack_into("<Q", header, root + field, data_offset)
    # The data section (where a malformed data_offset says it is, unless
    # that lies inside the FlatBuffer).
    start = max(data_offset, len(header))
    out = header + bytes(start - len(header))
    for offset, data in layout:
        out += bytes(start + offset - len(out)) + data
    out += bytes(start + data_size - len(out))
    return bytes(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("json")
    ap.add_argument("-o", required=True)
    ap.add_argument("--truncate", type=int, help="keep only the first N bytes")
    ap.add_argument("--flip", type=int, action="append", default=[], help="flip the byte at OFFSET")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fbmod = load_generated(tmp)
        with open(args.json) as f:
            data = build(json.load(f), fbmod)
    if args.truncate is not None:
        data = data[: args.truncate]
    data = bytearray(data)
    for off in args.flip:
        data[off % len(data)] ^= 0xFF
    with open(args.o, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    main()
