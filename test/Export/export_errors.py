"""Bad configs, state_dicts and graphs raise ValueError with a clear message
(naming the key, tensor, node or value), and a failed write leaves no file."""
import os
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import reference  # noqa: E402
import kiln_export  # noqa: E402

torch.set_num_threads(1)

LLAMA = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=1, num_attention_heads=4,
             num_key_value_heads=2, rms_norm_eps=1e-5, max_position_embeddings=16, vocab_size=40)
GPT2 = dict(n_embd=16, n_head=2, n_layer=1, n_positions=16, vocab_size=40, layer_norm_epsilon=1e-5)
checks = 0


def expect(fn, substring):
    global checks
    try:
        fn()
    except ValueError as e:
        assert substring in str(e), "message %r lacks %r" % (str(e), substring)
        print("ok:", e)
        checks += 1
        return
    raise AssertionError("no ValueError (expected %r)" % substring)


def without(d, key):
    return {k: v for k, v in d.items() if k != key}


def replaced(d, key, value):
    d = dict(d)
    d[key] = value
    return d


tmp = tempfile.mkdtemp()
out = os.path.join(tmp, "m.kiln")
llama = reference.randomize(reference.Llama(LLAMA), 1).state_dict()
gpt2 = reference.randomize(reference.GPT2(GPT2), 1).state_dict()

# The good cases work, from torch tensors and from numpy arrays.
kiln_export.export_llama(out, llama, LLAMA)
kiln_export.export_gpt2(out, gpt2, GPT2)
kiln_export.export_gpt2(out, {k: v.numpy() for k, v in gpt2.items()}, GPT2)
assert open(out, "rb").read()[4:8] == b"KILN"

# Llama configs.
expect(lambda: kiln_export.export_llama(out, llama, without(LLAMA, "hidden_size")),
       "Llama config is missing 'hidden_size'")
expect(lambda: kiln_export.export_llama(out, llama, without(LLAMA, "max_position_embeddings")),
       "Llama config is missing 'max_position_embeddings'")
expect(lambda: kiln_export.export_llama(out, llama, dict(LLAMA, num_key_value_heads=3)),
       "num_attention_heads 4 is not a multiple of num_key_value_heads 3")
expect(lambda: kiln_export.export_llama(out, llama, dict(LLAMA, hidden_size=30)),
       "hidden_size 30 is not a multiple of num_attention_heads 4")
expect(lambda: kiln_export.export_llama(out, llama, dict(LLAMA, num_attention_heads=2.5)),
       "num_attention_heads must be an integer >= 1, got 2.5")
expect(lambda: kiln_export.export_llama(out, llama, dict(LLAMA, rope_theta=-1.0)),
       "rope_theta must be a non-negative number")
expect(lambda: kiln_export.export_llama(out, llama, dict(LLAMA, rope_scaling=dict(
    rope_type="dynamic", factor=2.0))), "RoPE scaling 'dynamic' is not supported")
expect(lambda: kiln_export.export_llama(out, llama, dict(LLAMA, rope_scaling=dict(
    rope_type="llama3", factor=8.0))), "llama3 RoPE scaling needs original_max_position")
expect(lambda: kiln_export.export_llama(out, llama, dict(LLAMA, rope_scaling=dict(
    rope_type="linear"))), "RoPE scaling 'linear' needs a positive factor")
expect(lambda: kiln_export.export_llama(out, llama, dict(LLAMA, hidden_act="gelu")),
       "hidden_act 'gelu' is not supported")
expect(lambda: kiln_export.export_llama(out, llama, dict(LLAMA, attention_bias=True)),
       "attention_bias/mlp_bias are not supported")
expect(lambda: kiln_export.export_llama(out, llama, dict(LLAMA, bos_token_id=40)),
       "bos_token_id 40 is outside the vocabulary of 40")
expect(lambda: kiln_export.export_llama(out, llama, "config.json"),
       "Llama config must be a dict")

# Llama state_dicts.
expect(lambda: kiln_export.export_llama(out, without(llama, "model.layers.0.mlp.up_proj.weight"),
                                        LLAMA),
       "Llama state_dict has no 'model.layers.0.mlp.up_proj.weight'")
k_proj = "model.layers.0.self_attn.k_proj.weight"
expect(lambda: kiln_export.export_llama(out, replaced(llama, k_proj, torch.zeros(8, 32)), LLAMA),
       "tensor 'model.layers.0.self_attn.k_proj.weight' has shape (8, 32), expected (16, 32)")
expect(lambda: kiln_export.export_llama(out, replaced(llama, "model.norm.weight",
                                                      torch.full((32,), float("nan"))), LLAMA),
       "weight 'model.norm.weight' contains NaN")
expect(lambda: kiln_export.export_llama(out, without(llama, "lm_head.weight"),
                                        dict(LLAMA, tie_word_embeddings=False)),
       "Llama state_dict has no 'lm_head.weight'")
expect(lambda: kiln_export.export_llama(out, replaced(llama, "model.norm.weight",
                                                      torch.zeros(32, dtype=torch.long)), LLAMA),
       "tensor 'model.norm.weight' has dtype torch.int64")
# A state_dict with more layers than the config: refuse rather than drop them.
two = reference.randomize(reference.Llama(dict(LLAMA, num_hidden_layers=2)), 1).state_dict()
expect(lambda: kiln_export.export_llama(out, two, LLAMA),
       "Llama state_dict has 9 tensor(s) the config does not account for")
# Tied: lm_head.weight is ignored; buffers such as rotary_emb.inv_freq too.
extra = dict(llama)
extra["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(4)
kiln_export.export_llama(out, extra, dict(LLAMA, tie_word_embeddings=True))
m = kiln_export.load_model(out)
assert "lm_head.weight" not in m.weights
assert m.nodes[-1].inputs[1] == "model.embed_tokens.weight"

# GPT-2.
expect(lambda: kiln_export.export_gpt2(out, gpt2, without(GPT2, "n_positions")),
       "GPT-2 config is missing 'n_positions'")
expect(lambda: kiln_export.export_gpt2(out, gpt2, dict(GPT2, n_head=3)),
       "n_embd 16 is not a multiple of n_head 3")
expect(lambda: kiln_export.export_gpt2(out, gpt2, dict(GPT2, activation_function="quick_gelu")),
       "activation_function 'quick_gelu' is not supported")
expect(lambda: kiln_export.export_gpt2(out, gpt2, dict(GPT2, eos_token_id=40)),
       "eos_token_id 40 is outside the vocabulary of 40")
expect(lambda: kiln_export.export_gpt2(out, gpt2, dict(GPT2, n_positions=32)),
       "GPT-2 tensor 'transformer.wpe.weight' has shape (16, 16), expected (32, 16)")
expect(lambda: kiln_export.export_gpt2(out, replaced(gpt2, "transformer.h.0.attn.c_attn.weight",
                                                     torch.zeros(48, 16)), GPT2),
       "tensor 'transformer.h.0.attn.c_attn.weight' has shape (48, 16), expected (16, 48)")
expect(lambda: kiln_export.export_gpt2(out, without(gpt2, "transformer.ln_f.bias"), GPT2),
       "GPT-2 state_dict has no 'transformer.ln_f.bias'")
expect(lambda: kiln_export.export_gpt2(out, gpt2, dict(GPT2, add_cross_attention=True)),
       "add_cross_attention is not supported")
# HF's causal-mask buffers are not weights.
buffers = dict(gpt2)
buffers["transformer.h.0.attn.bias"] = torch.ones(1, 1, 16, 16)
buffers["transformer.h.0.attn.masked_bias"] = torch.tensor(-1e4)
kiln_export.export_gpt2(out, buffers, GPT2)
# The LM head shares the embedding's weight entry; nothing is stored twice.
m = kiln_export.load_model(out)
assert m.nodes[0].inputs[1] == m.nodes[-1].inputs[1] == "transformer.wte.weight"
assert "lm_head.weight" not in m.weights

# The writer, op by op.
w = kiln_export.ModelWriter(context_length=8, vocab_size=4)
expect(lambda: w.node("LinearOp", "l", ["tokens", "missing"], "y"),
       "node 'l' (LinearOp) reads 'missing', which is neither a weight nor an earlier output")
expect(lambda: w.node("ConvOp", "c", ["tokens"], "y"), "unknown op 'ConvOp'")
w.weight("emb", np.ones((4, 8)))
expect(lambda: w.weight("emb", torch.zeros(2, 2)), "weight 'emb' is defined twice")
expect(lambda: w.weight("scalar", np.float32(1)), "weight 'scalar' has shape ()")
expect(lambda: w.weight("big", np.zeros((1, 1, 1, 1, 1))), "has rank 5")
x = w.node("EmbeddingOp", "embed", ["tokens", "emb"], "x")
expect(lambda: w.node("EmbeddingOp", "embed", ["tokens", "emb"], "x2"),
       "node name 'embed' is used twice")
expect(lambda: w.node("AddOp", "add", [x, x], "x"),
       "node 'add' defines 'x', which is already defined")
expect(lambda: w.node("EmbeddingOp", "e2", [x, "emb"], "x3"),
       "input #0 'x' must be the token ids, but it is an activation with 8 features")
expect(lambda: w.node("LinearOp", "l", ["emb", "emb", ""], "y"),
       "input #0 'emb' must be an activation [batch, seq, features], but it is a weight")
expect(lambda: w.node("LinearOp", "l", [x, x, ""], "y"),
       "input #1 'x' (weight [out, in]) must be a weight, but it is an activation")
w.weight("w5x7", np.ones((5, 7)))
expect(lambda: w.node("LinearOp", "l", [x, "w5x7", ""], "y"),
       "node 'l' (LinearOp): weight [out, in] 'w5x7' has shape [5, 7]; expected [?, 8]")
w.weight("g7", np.ones(7))
expect(lambda: w.node("RmsNormOp", "n", [x, "g7"], "y"),
       "node 'n' (RmsNormOp): gamma 'g7' has shape [7]; expected [8]")
expect(lambda: w.node("LayerNormOp", "n", [x, "g7"], "y"), "has 2 inputs; expected 3")
expect(lambda: w.node("RopeOp", "r", [x], "y"), "node 'r' (RopeOp) needs the attribute 'head_dim'")
expect(lambda: w.node("RopeOp", "r", [x], "y", head_dim=3), "head_dim 3 must be even")
expect(lambda: w.node("RopeOp", "r", [x], "y", head_dim=6),
       "8 features are not a whole number of heads of head_dim 6")
expect(lambda: w.node("RopeOp", "r", [x], "y", head_dim=4, style="Sideways"),
       "style 'Sideways' is not one of RotateHalf, Interleaved")
expect(lambda: w.node("RopeOp", "r", [x], "y", head_dim=4, angle=1.0),
       "node 'r' (RopeOp) has no attribute 'angle'")
expect(lambda: w.node("RopeOp", "r", [x], "y", head_dim=4, freq_factors=[1.0, 2.0, 4.0]),
       "freq_factors has 3 values; expected head_dim / 2 = 2")
expect(lambda: w.node("RopeOp", "r", [x], "y", head_dim=4, freq_factors=[1.0, 0.0]),
       "freq_factors must be positive")
expect(lambda: w.node("RopeOp", "r", [x], "y", head_dim=4, freq_factors="fast"),
       "freq_factors must be a list of numbers")
expect(lambda: w.node("RopeOp", "r", [x], "y", head_dim=4, attention_factor=0.0),
       "attention_factor must be positive")
expect(lambda: w.node("AttentionOp", "a", [x, x, x], "y", mode="Bidirectional", num_heads=1,
                      num_kv_heads=1, head_dim=4, window=2),
       "window 2 must be positive and only in Causal mode")
expect(lambda: w.node("AttentionOp", "a", [x, x, x], "y", num_heads=4, num_kv_heads=3, head_dim=2),
       "num_heads 4 is not a multiple of num_kv_heads 3")
expect(lambda: w.node("AttentionOp", "a", [x, x, x], "y", num_heads=4, num_kv_heads=2, head_dim=2),
       "k 'x' has 8 features; expected num_kv_heads * head_dim = 4")
expect(lambda: w.node("FeedForwardOp", "f", [x, "w5x7", "", "w5x7", ""], "y"),
       "node 'f' (FeedForwardOp) needs the attribute 'activation'")
expect(lambda: w.node("FeedForwardOp", "f", [x, "w5x7", "w5x7", "w5x7"], "y",
                      activation="SwiGLU"),
       "w_gate [inner, in] 'w5x7' has shape [5, 7]; expected [?, 8]")
expect(lambda: w.write(out), "graph output 'logits' is not produced by any node")
w.node("LinearOp", "head8", [x, "emb", ""], "h")  # [4, 8] weight: 4 logits
expect(lambda: w.write(out, output="x"), "graph output 'x' has 8 features; the logits need "
                                         "vocab_size = 4")
w.weight("pos", np.ones((6, 8)))
expect(lambda: w.node("PositionEmbeddingOp", "p", [x, "pos"], "y"),
       "the table 'pos' has 6 rows, fewer than the context length 8")
expect(lambda: kiln_export.ModelWriter(context_length=0, vocab_size=4),
       "context_length must be a positive 32-bit integer, got 0")
expect(lambda: kiln_export.ModelWriter(context_length=8, vocab_size=4, architecture="GPT5"),
       "architecture 'GPT5' is not one of")
expect(lambda: kiln_export.ModelWriter(context_length=8, vocab_size=4, add_bos=True),
       "add_bos needs a bos_token_id")
expect(lambda: w.set_tokenizer("GPT2BPE", tokens=[b"a", b"b"]),
       "a GPT2BPE tokenizer needs one piece per vocabulary entry: 2 pieces for a vocabulary of 4")
expect(lambda: w.set_tokenizer("Wordpiece"), "tokenizer kind 'Wordpiece' is not one of")
expect(lambda: w.set_tokenizer("GPT2BPE", pre_tokenizer="deepseek"),
       "pre_tokenizer 'deepseek' is not one of GPT2, Llama3, Qwen2")
expect(lambda: w.set_tokenizer("Bytes", chat_template=3), "chat_template must be a string")
expect(lambda: w.set_tokenizer("sentencepiece", tokens=["a", "b", "c", "d"], scores=[0.0]),
       "the tokenizer has 1 scores for 4 tokens")

# A failed write leaves neither the target nor a temporary file behind.
os.unlink(out)
expect(lambda: w.write(out, output="nothing"), "graph output 'nothing' is not produced")
assert os.listdir(tmp) == [], os.listdir(tmp)

# Reading rejects what is not a model file, with the reason.
bad = os.path.join(tmp, "bad.kiln")
with open(bad, "wb") as f:
    f.write(b"\0" * 64)
expect(lambda: kiln_export.load_model(bad),
       "is not a Kiln model file (missing the 'KILN' identifier)")
expect(lambda: kiln_export.reference_eval(w.to_bytes(output="h"), [0, 4]),
       "token id 4 is outside the vocabulary of 4")
expect(lambda: kiln_export.reference_eval(w.to_bytes(output="h"), list(range(4)) * 3),
       "12 tokens exceed the context length 8")
print("all %d export error checks passed" % checks)
