"""Bad configs and state_dicts raise ValueError with a clear message."""
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import reference  # noqa: E402
import kiln_export  # noqa: E402

LLAMA = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=1, num_attention_heads=4,
             num_key_value_heads=2, rms_norm_eps=1e-5, max_position_embeddings=16, vocab_size=40)
GPT2 = dict(n_embd=16, n_head=2, n_layer=1, n_positions=16, vocab_size=40, layer_norm_epsilon=1e-5)


def expect(fn, substring):
    try:
        fn()
    except ValueError as e:
        assert substring in str(e), "message %r lacks %r" % (str(e), substring)
        print("ok:", e)
        return
    raise AssertionError("no ValueError (expected %r)" % substring)


tmp = tempfile.mkdtemp()
out = os.path.join(tmp, "m.kiln")
llama = reference.randomize(reference.Llama(LLAMA), 1).state_dict()
gpt2 = reference.randomize(reference.GPT2(GPT2), 1).state_dict()

kiln_export.export_llama(out, llama, LLAMA)
kiln_export.export_gpt2(out, gpt2, GPT2)
assert open(out, "rb").read()[4:8] == b"KILN"

expect(lambda: kiln_export.export_llama(out, llama, {k: v for k, v in LLAMA.items()
                                                     if k != "hidden_size"}),
       "Llama config is missing 'hidden_size'")
expect(lambda: kiln_export.export_llama(out, llama, dict(LLAMA, num_key_value_heads=3)),
       "num_attention_heads 4 is not a multiple of num_key_value_heads 3")
expect(lambda: kiln_export.export_llama(out, llama, dict(LLAMA, rope_scaling={"type": "linear"})),
       "rope_scaling")
expect(lambda: kiln_export.export_llama(out, {k: v for k, v in llama.items()
                                             if "up_proj" not in k}, LLAMA),
       "Llama state_dict has no 'model.layers.0.mlp.up_proj.weight'")
bad = dict(llama)
bad["model.layers.0.self_attn.k_proj.weight"] = torch.zeros(8, 32)
expect(lambda: kiln_export.export_llama(out, bad, LLAMA),
       "tensor 'model.layers.0.self_attn.k_proj.weight' has shape (8, 32), expected (16, 32)")
nan = dict(llama)
nan["model.norm.weight"] = torch.full((32,), float("nan"))
expect(lambda: kiln_export.export_llama(out, nan, LLAMA), "contains NaN")
expect(lambda: kiln_export.export_gpt2(out, gpt2, dict(GPT2, n_head=3)),
       "n_embd 16 is not a multiple of n_head 3")
expect(lambda: kiln_export.export_gpt2(out, gpt2, dict(GPT2, activation_function="swish")),
       "activation_function 'swish' is not supported")
expect(lambda: kiln_export.export_gpt2(out, gpt2, dict(GPT2, eos_token_id=40)),
       "eos_token_id 40 is outside the vocabulary of 40")
w = kiln_export.ModelWriter(context_length=8, vocab_size=4)
expect(lambda: w.node("LinearOp", "l", ["tokens", "missing"], "y"),
       "node 'l' reads 'missing', which is neither a weight nor an earlier output")
expect(lambda: w.node("ConvOp", "c", ["tokens"], "y"), "unknown op 'ConvOp'")
w.weight("w", torch.zeros(2, 2))
expect(lambda: w.weight("w", torch.zeros(2, 2)), "weight 'w' is defined twice")
expect(lambda: w.write(out), "graph output 'logits' is not produced by any node")
print("all export error checks passed")
