"""Exporters for Hugging Face-layout GPT-2 and Llama checkpoints."""
import numpy as np

from .writer import ModelWriter, _to_numpy


def _require(config, keys, family):
    missing = [k for k in keys if k not in config]
    if missing:
        raise ValueError("%s config is missing %s" % (family, ", ".join(repr(k) for k in missing)))


class _Params:
    """Looks up state_dict entries by name with clear errors."""

    def __init__(self, state_dict, family):
        self.sd = state_dict
        self.family = family

    def has(self, name):
        return name in self.sd

    def get(self, name, shape=None):
        if name not in self.sd:
            raise ValueError("%s state_dict has no %r" % (self.family, name))
        a = _to_numpy(self.sd[name])
        if shape is not None and tuple(a.shape) != tuple(shape):
            raise ValueError("%s tensor %r has shape %s, expected %s"
                             % (self.family, name, tuple(a.shape), tuple(shape)))
        return a


def export_gpt2(path, state_dict, config, *, tokenizer=None, name="gpt2"):
    """Writes a GPT2LMHeadModel checkpoint as a .kiln file.

    Conv1D weights ([in, out]) are transposed to the [out, in] layout of
    `transformer.linear`; c_attn is split into q, k and v. The LM head reads
    the token embedding (GPT-2 ties them).
    """
    _require(config, ["n_embd", "n_head", "n_layer", "n_positions", "vocab_size"], "GPT-2")
    d, heads, layers = int(config["n_embd"]), int(config["n_head"]), int(config["n_layer"])
    npos, vocab = int(config["n_positions"]), int(config["vocab_size"])
    eps = float(config.get("layer_norm_epsilon", 1e-5))
    if d % heads:
        raise ValueError("GPT-2 config: n_embd %d is not a multiple of n_head %d" % (d, heads))
    inner = int(config.get("n_inner") or 4 * d)
    act = config.get("activation_function", "gelu_new")
    activation = {"gelu_new": "GELUTanh", "gelu_pytorch_tanh": "GELUTanh", "gelu": "GELU",
                  "relu": "ReLU", "silu": "SiLU"}.get(act)
    if activation is None:
        raise ValueError("GPT-2 config: activation_function %r is not supported "
                         "(supported: gelu_new, gelu_pytorch_tanh, gelu, relu, silu)" % act)
    p = _Params(state_dict, "GPT-2")
    w = ModelWriter(architecture="GPT2", name=name, context_length=npos, vocab_size=vocab,
                    bos_token_id=config.get("bos_token_id"), eos_token_id=config.get("eos_token_id"))
    wte = w.weight("transformer.wte.weight", p.get("transformer.wte.weight", (vocab, d)))
    wpe = w.weight("transformer.wpe.weight", p.get("transformer.wpe.weight", (npos, d)))
    x = w.node("EmbeddingOp", "wte", ["tokens", wte], "h.embed")
    x = w.node("PositionEmbeddingOp", "wpe", [x, wpe], "h.0.in")
    for i in range(layers):
        pre = "transformer.h.%d." % i
        name_of = lambda s: pre + s  # noqa: E731
        ln1 = [w.weight(name_of("ln_1.weight"), p.get(name_of("ln_1.weight"), (d,))),
               w.weight(name_of("ln_1.bias"), p.get(name_of("ln_1.bias"), (d,)))]
        n = w.node("LayerNormOp", "h.%d.ln_1" % i, [x] + ln1, "h.%d.ln_1" % i, epsilon=eps)
        c_attn = p.get(name_of("attn.c_attn.weight"), (d, 3 * d)).T
        c_attn_b = p.get(name_of("attn.c_attn.bias"), (3 * d,))
        qkv = []
        for j, part in enumerate("qkv"):
            wn = w.weight(name_of("attn.%s.weight" % part), c_attn[j * d:(j + 1) * d])
            bn = w.weight(name_of("attn.%s.bias" % part), c_attn_b[j * d:(j + 1) * d])
            qkv.append(w.node("LinearOp", "h.%d.attn.%s" % (i, part), [n, wn, bn],
                              "h.%d.attn.%s" % (i, part)))
        a = w.node("AttentionOp", "h.%d.attn" % i, qkv, "h.%d.attn" % i, mode="Causal",
                   num_heads=heads, num_kv_heads=heads, head_dim=d // heads, scale=0.0)
        pw = w.weight(name_of("attn.c_proj.weight"), p.get(name_of("attn.c_proj.weight"), (d, d)).T)
        pb = w.weight(name_of("attn.c_proj.bias"), p.get(name_of("attn.c_proj.bias"), (d,)))
        a = w.node("LinearOp", "h.%d.attn.c_proj" % i, [a, pw, pb], "h.%d.attn.out" % i)
        x = w.node("AddOp", "h.%d.residual_1" % i, [x, a], "h.%d.mid" % i)
        ln2 = [w.weight(name_of("ln_2.weight"), p.get(name_of("ln_2.weight"), (d,))),
               w.weight(name_of("ln_2.bias"), p.get(name_of("ln_2.bias"), (d,)))]
        n = w.node("LayerNormOp", "h.%d.ln_2" % i, [x] + ln2, "h.%d.ln_2" % i, epsilon=eps)
        fc = w.weight(name_of("mlp.c_fc.weight"), p.get(name_of("mlp.c_fc.weight"), (d, inner)).T)
        fcb = w.weight(name_of("mlp.c_fc.bias"), p.get(name_of("mlp.c_fc.bias"), (inner,)))
        pj = w.weight(name_of("mlp.c_proj.weight"), p.get(name_of("mlp.c_proj.weight"), (inner, d)).T)
        pjb = w.weight(name_of("mlp.c_proj.bias"), p.get(name_of("mlp.c_proj.bias"), (d,)))
        f = w.node("FeedForwardOp", "h.%d.mlp" % i, [n, fc, fcb, pj, pjb], "h.%d.mlp" % i,
                   activation=activation)
        x = w.node("AddOp", "h.%d.residual_2" % i, [x, f], "h.%d.in" % (i + 1))
    lnf = [w.weight("transformer.ln_f.weight", p.get("transformer.ln_f.weight", (d,))),
           w.weight("transformer.ln_f.bias", p.get("transformer.ln_f.bias", (d,)))]
    x = w.node("LayerNormOp", "ln_f", [x] + lnf, "ln_f", epsilon=eps)
    head = wte
    if p.has("lm_head.weight"):
        lm = p.get("lm_head.weight", (vocab, d))
        if not np.array_equal(lm, w.weights[wte]):
            head = w.weight("lm_head.weight", lm)
    w.node("LinearOp", "lm_head", [x, head, ""], "logits")
    w.write(path, tokenizer=tokenizer)


def export_llama(path, state_dict, config, *, tokenizer=None, name="llama"):
    """Writes a LlamaForCausalLM checkpoint as a .kiln file.

    Uses Hugging Face's rotate-half RoPE layout of q_proj/k_proj, GQA/MQA
    through num_key_value_heads, SwiGLU, and the embedding as LM head when
    tie_word_embeddings (or when lm_head.weight is absent).
    """
    _require(config, ["hidden_size", "intermediate_size", "num_hidden_layers",
                      "num_attention_heads", "vocab_size", "max_position_embeddings"], "Llama")
    d, inter = int(config["hidden_size"]), int(config["intermediate_size"])
    layers, heads = int(config["num_hidden_layers"]), int(config["num_attention_heads"])
    kv = int(config.get("num_key_value_heads") or heads)
    vocab, ctx = int(config["vocab_size"]), int(config["max_position_embeddings"])
    eps = float(config.get("rms_norm_eps", 1e-6))
    theta = float(config.get("rope_theta", 10000.0))
    head_dim = int(config.get("head_dim") or d // heads)
    if heads * head_dim != d and "head_dim" not in config:
        raise ValueError("Llama config: hidden_size %d is not a multiple of num_attention_heads %d"
                         % (d, heads))
    if heads % kv:
        raise ValueError("Llama config: num_attention_heads %d is not a multiple of "
                         "num_key_value_heads %d" % (heads, kv))
    if config.get("rope_scaling"):
        raise ValueError("Llama config: rope_scaling %r is not supported" % (config["rope_scaling"],))
    if config.get("hidden_act", "silu") != "silu":
        raise ValueError("Llama config: hidden_act %r is not supported (supported: silu)"
                         % config["hidden_act"])
    if config.get("attention_bias") or config.get("mlp_bias"):
        raise ValueError("Llama config: attention_bias/mlp_bias are not supported")
    p = _Params(state_dict, "Llama")
    bos = config.get("bos_token_id")
    w = ModelWriter(architecture="Llama", name=name, context_length=ctx, vocab_size=vocab,
                    bos_token_id=bos, eos_token_id=config.get("eos_token_id"),
                    add_bos=bos is not None)
    emb = w.weight("model.embed_tokens.weight", p.get("model.embed_tokens.weight", (vocab, d)))
    x = w.node("EmbeddingOp", "embed_tokens", ["tokens", emb], "layers.0.in")
    for i in range(layers):
        pre = "model.layers.%d." % i
        g = w.weight(pre + "input_layernorm.weight", p.get(pre + "input_layernorm.weight", (d,)))
        n = w.node("RmsNormOp", "layers.%d.input_layernorm" % i, [x, g],
                   "layers.%d.input_layernorm" % i, epsilon=eps)
        proj = {}
        for part, rows in (("q", heads * head_dim), ("k", kv * head_dim), ("v", kv * head_dim)):
            wn = w.weight(pre + "self_attn.%s_proj.weight" % part,
                          p.get(pre + "self_attn.%s_proj.weight" % part, (rows, d)))
            proj[part] = w.node("LinearOp", "layers.%d.self_attn.%s_proj" % (i, part), [n, wn, ""],
                                "layers.%d.self_attn.%s" % (i, part))
        for part in "qk":
            proj[part] = w.node("RopeOp", "layers.%d.self_attn.rope_%s" % (i, part), [proj[part]],
                                "layers.%d.self_attn.%s_rot" % (i, part), head_dim=head_dim,
                                theta=theta, style="RotateHalf")
        a = w.node("AttentionOp", "layers.%d.self_attn" % i, [proj["q"], proj["k"], proj["v"]],
                   "layers.%d.self_attn" % i, mode="Causal", num_heads=heads, num_kv_heads=kv,
                   head_dim=head_dim, scale=0.0)
        o = w.weight(pre + "self_attn.o_proj.weight",
                     p.get(pre + "self_attn.o_proj.weight", (d, heads * head_dim)))
        a = w.node("LinearOp", "layers.%d.self_attn.o_proj" % i, [a, o, ""], "layers.%d.attn_out" % i)
        x = w.node("AddOp", "layers.%d.residual_1" % i, [x, a], "layers.%d.mid" % i)
        g2 = w.weight(pre + "post_attention_layernorm.weight",
                      p.get(pre + "post_attention_layernorm.weight", (d,)))
        n = w.node("RmsNormOp", "layers.%d.post_attention_layernorm" % i, [x, g2],
                   "layers.%d.post_attention_layernorm" % i, epsilon=eps)
        gate = w.weight(pre + "mlp.gate_proj.weight", p.get(pre + "mlp.gate_proj.weight", (inter, d)))
        up = w.weight(pre + "mlp.up_proj.weight", p.get(pre + "mlp.up_proj.weight", (inter, d)))
        down = w.weight(pre + "mlp.down_proj.weight", p.get(pre + "mlp.down_proj.weight", (d, inter)))
        f = w.node("FeedForwardOp", "layers.%d.mlp" % i, [n, gate, up, down], "layers.%d.mlp" % i,
                   activation="SwiGLU")
        x = w.node("AddOp", "layers.%d.residual_2" % i, [x, f], "layers.%d.in" % (i + 1))
    g = w.weight("model.norm.weight", p.get("model.norm.weight", (d,)))
    x = w.node("RmsNormOp", "norm", [x, g], "norm", epsilon=eps)
    tied = bool(config.get("tie_word_embeddings", False)) or not p.has("lm_head.weight")
    head = emb if tied else w.weight("lm_head.weight", p.get("lm_head.weight", (vocab, d)))
    w.node("LinearOp", "lm_head", [x, head, ""], "logits")
    w.write(path, tokenizer=tokenizer)
