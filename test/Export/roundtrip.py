"""The writer and reader of kiln_export agree, files are laid out as the
schema requires, and reference_eval implements each op as documented:
  1. round trip of metadata, tokenizer, attributes and weight bytes; every
     weight 64-byte aligned; exports are byte-for-byte reproducible;
  2. the ops the GPT-2/Llama exports do not use (interleaved RoPE, exact
     GELU, GEGLU, ReLU, SiLU, bidirectional attention, explicit scale, F16
     and BF16 weights) against formulations written independently here with
     PyTorch (RoPE as complex rotation, GELU from torch);
  3. reference_eval is sensitive: a wrong RoPE style, a wrong attention scale
     or a changed weight byte moves the logits far outside the tolerance the
     end-to-end test uses.
"""
import cmath
import math
import os
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import reference  # noqa: E402
import kiln_export  # noqa: E402

torch.set_num_threads(1)
tmp = tempfile.mkdtemp()
rng = np.random.default_rng(7)


def rel(a, b):
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max()
                 / np.abs(np.asarray(b)).max())


# -- 1. round trip -------------------------------------------------------------
V, D, C = 12, 8, 16
w = kiln_export.ModelWriter(architecture="Custom", name="roundtrip", context_length=C,
                            vocab_size=V, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                            add_bos=True)
emb = rng.standard_normal((V, D)).astype(np.float32)
w.weight("emb", emb)
w.weight("odd", rng.standard_normal(3).astype(np.float32))  # 12 bytes: next one must realign
w.weight("g", np.ones(D))
x = w.node("EmbeddingOp", "embed", ["tokens", "emb"], "x")
x = w.node("RmsNormOp", "norm", [x, "g"], "n", epsilon=1e-3)
x = w.node("RopeOp", "rope", [x], "r", head_dim=4, theta=123.0, style="Interleaved",
           freq_factors=[1.0, 2.5], attention_factor=1.25)
x = w.node("AttentionOp", "attn", [x, x, x], "a", mode="Bidirectional", num_heads=2,
           num_kv_heads=2, head_dim=4, scale=0.25)
w.node("LinearOp", "head", [x, "emb", ""], "logits")
pieces = [b"<unk>", b"<s>", b"</s>"] + [bytes([97 + i]) for i in range(V - 3)]
w.set_tokenizer("SentencePieceBPE", tokens=pieces, scores=[-float(i) for i in range(V)],
                merges=["a b", "ab c"], token_types=[2, 3, 3] + [1] * (V - 3),
                pre_tokenizer="Qwen2", ignore_merges=True,
                chat_template="{% for m in messages %}{{ m.content }}{% endfor %}")
path = os.path.join(tmp, "rt.kiln")
w.write(path)
data = open(path, "rb").read()
assert data[4:8] == b"KILN"
m = kiln_export.load_model(path)
assert m.version == 2
assert m.data_offset % 4096 == 0 and m.data_offset + m.data_size == len(data) == m.size
assert m.metadata == dict(architecture="Custom", name="roundtrip", context_length=C,
                          vocab_size=V, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                          add_bos=True, source_length=0, source_vocab_size=0), m.metadata
assert m.tokenizer["kind"] == "SentencePieceBPE" and m.tokenizer["tokens"] == pieces
assert m.tokenizer["scores"] == [-float(i) for i in range(V)]
assert m.tokenizer["merges"] == ["a b", "ab c"]
assert m.tokenizer["token_types"] == [2, 3, 3] + [1] * (V - 3)
assert m.tokenizer["pre_tokenizer"] == "Qwen2" and m.tokenizer["ignore_merges"] is True
assert m.tokenizer["chat_template"] == "{% for m in messages %}{{ m.content }}{% endfor %}"
assert m.inputs == ["tokens"] and m.outputs == ["logits"]
assert [n.op for n in m.nodes] == ["EmbeddingOp", "RmsNormOp", "RopeOp", "AttentionOp",
                                   "LinearOp"]
assert math.isclose(m.nodes[1].attrs["epsilon"], 1e-3, rel_tol=1e-6)
assert m.nodes[2].attrs == {"head_dim": 4, "theta": 123.0, "style": "Interleaved",
                            "freq_factors": [1.0, 2.5], "attention_factor": 1.25}
assert m.nodes[3].attrs == dict(mode="Bidirectional", num_heads=2, num_kv_heads=2, head_dim=4,
                                scale=0.25, window=0)
assert m.nodes[4].inputs == ["a", "emb", ""]
assert list(m.weights) == ["emb", "odd", "g"]
def data_at(p, off, n):
    with open(p, "rb") as f:
        f.seek(off)
        return f.read(n)


for name, off in m.weight_offsets.items():
    assert off % 64 == 0, (name, off)
    a = m.weights[name]
    assert data[off:off + a.nbytes] == a.astype("<f4").tobytes()
assert np.array_equal(m.weights["emb"], emb)
# Defaults: a writer that gives no attribute gets the schema's defaults back.
d = kiln_export.ModelWriter(context_length=4, vocab_size=4)
d.weight("e", np.eye(4))
d.weight("g", np.ones(4))
d.weight("b", np.zeros(4))
y = d.node("EmbeddingOp", "embed", ["tokens", "e"], "x")
y = d.node("LayerNormOp", "ln", [y, "g", "b"], "ln")
y = d.node("RmsNormOp", "rms", [y, "g"], "rms")
y = d.node("RopeOp", "rope", [y], "rope", head_dim=4)
y = d.node("AttentionOp", "attn", [y, y, y], "attn", num_heads=1, num_kv_heads=1, head_dim=4)
d.node("LinearOp", "head", [y, "e"], "logits")  # two inputs: no bias
md = kiln_export.load_model(d.to_bytes())
assert md.tokenizer["kind"] == "Bytes" and md.tokenizer["tokens"] == []
assert md.tokenizer["pre_tokenizer"] == "GPT2" and md.tokenizer["chat_template"] is None
assert md.metadata["architecture"] == "Custom" and md.metadata["add_bos"] is False
assert math.isclose(md.nodes[1].attrs["epsilon"], 1e-5, rel_tol=1e-6)
assert math.isclose(md.nodes[2].attrs["epsilon"], 1e-6, rel_tol=1e-6)
assert md.nodes[3].attrs == {"head_dim": 4, "theta": 10000.0, "style": "RotateHalf",
                             "freq_factors": None, "attention_factor": 1.0}
assert md.nodes[4].attrs == dict(mode="Causal", num_heads=1, num_kv_heads=1, head_dim=4,
                                 scale=0.0, window=0)
assert md.nodes[2].attrs["group_size"] == 0
print("round trip ok: metadata, tokenizer, attributes, defaults, weights 64-byte aligned")

# Reproducible: the same checkpoint gives the same bytes.
cfg = dict(hidden_size=32, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4,
           num_key_value_heads=2, max_position_embeddings=32, vocab_size=64, rope_theta=5e5,
           bos_token_id=1, eos_token_id=[2, 3])
model = reference.randomize(reference.Llama(cfg), 3).double().eval()
sd = {k: v.float() for k, v in model.state_dict().items()}
a_path, b_path = os.path.join(tmp, "a.kiln"), os.path.join(tmp, "b.kiln")
kiln_export.export_llama(a_path, sd, cfg)
kiln_export.export_llama(b_path, {k: v.numpy() for k, v in sd.items()}, cfg)
assert open(a_path, "rb").read() == open(b_path, "rb").read()
ml = kiln_export.load_model(a_path)
assert ml.metadata["eos_token_id"] == 2 and ml.metadata["add_bos"] is True
assert ml.metadata["architecture"] == "Llama" and ml.metadata["context_length"] == 32
assert [n.op for n in ml.nodes[:9]] == ["EmbeddingOp", "RmsNormOp", "LinearOp", "LinearOp",
                                        "LinearOp", "RopeOp", "RopeOp", "AttentionOp",
                                        "LinearOp"]
print("exports are reproducible (torch and numpy state_dicts give identical bytes)")


# -- 2. op semantics against independent formulations ---------------------------
def rope_complex(x, heads, head_dim, theta, interleaved):
    """Rotation of complex pairs: z_i * exp(1j * pos * theta^(-2i/head_dim))."""
    s = x.shape[0]
    out = np.empty_like(x)
    half = head_dim // 2
    for p in range(s):
        for h in range(heads):
            v = x[p, h * head_dim:(h + 1) * head_dim]
            r = np.empty_like(v)
            for i in range(half):
                a, b = (2 * i, 2 * i + 1) if interleaved else (i, i + half)
                z = complex(v[a], v[b]) * cmath.exp(1j * p * theta ** (-2.0 * i / head_dim))
                r[a], r[b] = z.real, z.imag
            out[p, h * head_dim:(h + 1) * head_dim] = r
    return out


def attention_torch(q, k, v, heads, kv_heads, scale, causal):
    s, hd = q.shape[0], q.shape[1] // heads
    q = q.view(s, heads, hd).transpose(0, 1)
    k = k.view(s, kv_heads, hd).transpose(0, 1).repeat_interleave(heads // kv_heads, 0)
    v = v.view(s, kv_heads, hd).transpose(0, 1).repeat_interleave(heads // kv_heads, 0)
    sc = (q @ k.transpose(1, 2)) * scale
    if causal:
        sc = sc.masked_fill(torch.triu(torch.ones(s, s, dtype=torch.bool), 1), float("-inf"))
    return (sc.softmax(-1) @ v).transpose(0, 1).reshape(s, heads * hd)


V, D, S, INNER = 50, 24, 9, 40
worst = {}
for act in ("ReLU", "GELU", "GELUTanh", "SiLU", "SwiGLU", "GEGLU"):
    for style in ("Interleaved", "RotateHalf"):
        w = kiln_export.ModelWriter(context_length=16, vocab_size=V)
        W = {}

        def weight(name, *shape, scale=0.3):
            W[name] = (rng.standard_normal(shape) * scale).astype(np.float32)
            return w.weight("w." + name, W[name])

        weight("emb", V, D, scale=1.0)
        weight("pos", 16, D)
        weight("q", D, D), weight("k", D // 3, D), weight("v", D // 3, D)  # 6 heads, 2 kv
        weight("o", D, D), weight("o_b", D)
        if act in ("SwiGLU", "GEGLU"):
            ff = [weight("gate", INNER, D), weight("up", INNER, D), weight("down", D, INNER)]
        else:
            ff = [weight("up", INNER, D), weight("up_b", INNER), weight("down", D, INNER), ""]
        x = w.node("EmbeddingOp", "embed", ["tokens", "w.emb"], "x0")
        x = w.node("PositionEmbeddingOp", "pos", [x, "w.pos"], "x1")
        q = w.node("LinearOp", "q", [x, "w.q", ""], "q")
        k = w.node("LinearOp", "k", [x, "w.k", ""], "k")
        v = w.node("LinearOp", "v", [x, "w.v", ""], "v")
        q = w.node("RopeOp", "rq", [q], "rq", head_dim=4, theta=77.0, style=style)
        k = w.node("RopeOp", "rk", [k], "rk", head_dim=4, theta=77.0, style=style)
        a = w.node("AttentionOp", "attn", [q, k, v], "a", mode="Bidirectional", num_heads=6,
                   num_kv_heads=2, head_dim=4, scale=0.375)
        a = w.node("AttentionOp", "attn2", [a, k, v], "a2", num_heads=6, num_kv_heads=2,
                   head_dim=4)  # causal, default scale
        x = w.node("AddOp", "res", [x, w.node("LinearOp", "o", [a, "w.o", "w.o_b"], "o")], "x2")
        x = w.node("FeedForwardOp", "ff", [x] + ff, "ff", activation=act)
        w.node("LinearOp", "head", [x, "w.emb", ""], "logits")
        ids = rng.integers(0, V, size=S)
        got = kiln_export.reference_eval(w.to_bytes(), ids)

        T = {n: torch.tensor(a, dtype=torch.float64) for n, a in W.items()}
        x = T["emb"][torch.tensor(ids)] + T["pos"][:S]
        inter = style == "Interleaved"
        q = torch.tensor(rope_complex((x @ T["q"].T).numpy(), 6, 4, 77.0, inter))
        k = torch.tensor(rope_complex((x @ T["k"].T).numpy(), 2, 4, 77.0, inter))
        v = x @ T["v"].T
        a = attention_torch(q, k, v, 6, 2, 0.375, causal=False)
        a = attention_torch(a, k, v, 6, 2, 1 / math.sqrt(4), causal=True)
        x = x + a @ T["o"].T + T["o_b"]
        F = torch.nn.functional
        fn = {"ReLU": F.relu, "GELU": F.gelu, "GELUTanh": lambda t: F.gelu(t, approximate="tanh"),
              "SiLU": F.silu, "SwiGLU": F.silu, "GEGLU": F.gelu}[act]
        if act in ("SwiGLU", "GEGLU"):
            x = (fn(x @ T["gate"].T) * (x @ T["up"].T)) @ T["down"].T
        else:
            x = fn(x @ T["up"].T + T["up_b"]) @ T["down"].T
        ref = (x @ T["emb"].T).numpy()
        err = rel(got, ref)
        worst[act, style] = err
        assert err < 1e-12, (act, style, err)
print("op semantics ok (RoPE both styles, 6 activations, bidirectional/causal attention with "
      "GQA, explicit scale, position embedding): worst %.1e" % max(worst.values()))

# Weights given as raw bytes + dtype (F16, BF16, quantized blocks) are stored
# byte for byte and read back as the values they hold.
from kiln_export import dtypes  # noqa: E402
m = kiln_export.load_model(path)
w16 = m.weights["emb"]
q = kiln_export.ModelWriter(context_length=4, vocab_size=V)
f16 = w16.astype("<f2")
bf16 = (w16.view(np.uint32) >> 16).astype("<u2")
q.raw_weight("f16", f16.tobytes(), "F16", w16.shape)
q.raw_weight("bf16", bf16.tobytes(), "BF16", w16.shape)
blocks = {}
for dt in dtypes.QUANTIZED:
    elems, nbytes = dtypes.BLOCKS[dt]
    raw = bytearray(rng.integers(0, 256, size=2 * nbytes, dtype=np.uint8).tobytes())
    for b in range(2):  # finite fp16 scales (exponent below all-ones)
        for at in ((208,) if dt == "Q6_K" else (0, 2) if dt in ("Q4_1", "Q5_1", "Q4_K", "Q5_K")
                   else (0,)):
            raw[b * nbytes + at + 1] &= 0x7B
    blocks[dt] = bytes(raw)
    q.raw_weight(dt.lower(), blocks[dt], dt, [1, 2 * elems])
q.weight("tab", np.ones((V, 4)))
q.node("LinearOp", "head", [q.node("EmbeddingOp", "e", ["tokens", "tab"], "x"), "tab", ""],
       "logits")
qpath = os.path.join(tmp, "raw.kiln")
q.write(qpath)
r = kiln_export.load_model(qpath)
assert np.array_equal(r.weights["f16"], f16.astype(np.float32))
assert np.array_equal(r.weights["bf16"], (bf16.astype(np.uint32) << 16).view(np.float32))
assert bytes(r.weight_bytes["f16"]) == f16.tobytes()
for dt, raw in blocks.items():
    name = dt.lower()
    assert r.weight_dtypes[name] == dt
    assert bytes(r.weight_bytes[name]) == raw, dt
    assert r.weights[name].shape == (1, 2 * dtypes.BLOCKS[dt][0])
    assert r.weight_offsets[name] % 64 == 0
    assert data_at(qpath, r.weight_offsets[name], len(raw)) == raw
try:
    q.raw_weight("bad", blocks["Q4_0"][:18], "Q4_0", [1, 16])
    raise AssertionError("a Q4_0 row of 16 was accepted")
except ValueError as e:
    assert "is not a multiple of the 32-element block" in str(e), e
print("F16, BF16 and quantized weights round trip byte for byte")


# -- 3. sensitivity --------------------------------------------------------------
ids = list(rng.integers(0, 64, size=20))
with torch.no_grad():
    ref = model(torch.tensor(ids)).numpy()
base = rel(kiln_export.reference_eval(a_path, ids), ref)
assert base < 1e-9, base
mutations = {}
m = kiln_export.load_model(a_path)
for n in m.nodes:
    if n.op == "RopeOp":
        n.attrs["style"] = "Interleaved"
mutations["RoPE style"] = rel(kiln_export.evaluate(m, ids), ref)
m = kiln_export.load_model(a_path)
for n in m.nodes:
    if n.op == "AttentionOp":
        n.attrs["scale"] = 1.0
mutations["attention scale"] = rel(kiln_export.evaluate(m, ids), ref)
m = kiln_export.load_model(a_path)
for n in m.nodes:
    if n.op == "AttentionOp":
        n.attrs["mode"] = "Bidirectional"
mutations["causal mask"] = rel(kiln_export.evaluate(m, ids[:-1])[:-1], ref[:-2])
data = bytearray(open(a_path, "rb").read())
off = m.weight_offsets["model.layers.1.self_attn.k_proj.weight"]
data[off + 3] ^= 0x40  # one bit of one weight's exponent
mutations["one weight bit"] = rel(kiln_export.reference_eval(bytes(data), ids), ref)
for what, err in mutations.items():
    assert err > 1e-4, (what, err)
print("reference_eval vs torch %.1e; with a wrong %s" % (base, ", ".join(
    "%s %.1e" % kv for kv in mutations.items())))
print("all round-trip checks passed")
