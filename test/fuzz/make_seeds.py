#!/usr/bin/env python3
"""Writes the seed corpora of the converter fuzz targets: small valid GGUF
files (corpus/gguf) and Hugging Face directories packed as fuzz_hf reads
them (corpus/hf: config.json, tokenizer.json, model.safetensors, each a
little-endian uint32 length and its bytes).

    /usr/bin/python3 test/fuzz/make_seeds.py
"""
import io
import json
import os
import struct
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import gguf_writer  # noqa: E402
import hf_checkpoint  # noqa: E402
import reference  # noqa: E402

LLAMA = dict(hidden_size=4, intermediate_size=8, num_hidden_layers=1, num_attention_heads=1,
             num_key_value_heads=1, max_position_embeddings=8, vocab_size=259,
             rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
GPT2 = dict(n_embd=4, n_head=1, n_layer=1, n_positions=8, vocab_size=257, n_inner=8)


def main():
    gdir, hdir = os.path.join(HERE, "corpus", "gguf"), os.path.join(HERE, "corpus", "hf")
    os.makedirs(gdir, exist_ok=True)
    os.makedirs(hdir, exist_ok=True)
    llama = reference.randomize(reference.Llama(LLAMA), 0).state_dict()
    gpt2 = reference.randomize(reference.GPT2(GPT2), 0).state_dict()
    gguf_writer.write_llama_gguf(os.path.join(gdir, "llama-f16.gguf"), llama, LLAMA, dtype="F16")
    gguf_writer.write_gpt2_gguf(os.path.join(gdir, "gpt2-f32.gguf"), gpt2, GPT2)
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg, sd, tok in (
                ("gpt2", dict(GPT2, architectures=["GPT2LMHeadModel"]), gpt2,
                 hf_checkpoint.gpt2_tokenizer_json(*hf_checkpoint.train_byte_bpe("the cat", 257),
                                                   256)),
                ("llama", dict(LLAMA, architectures=["LlamaForCausalLM"]), llama,
                 hf_checkpoint.llama_tokenizer_json(*hf_checkpoint.train_spm_bpe("the", 264)))):
            if name == "llama":
                cfg = dict(cfg, vocab_size=264)
                sd = reference.randomize(reference.Llama(cfg), 0).state_dict()
            d = os.path.join(tmp, name)
            hf_checkpoint.write_hf_dir(d, cfg, sd, tok, dtype="F16")
            out = io.BytesIO()
            for f in ("config.json", "tokenizer.json", "model.safetensors"):
                with open(os.path.join(d, f), "rb") as fh:
                    data = fh.read()
                out.write(struct.pack("<I", len(data)) + data)
            with open(os.path.join(hdir, name + ".bin"), "wb") as fh:
                fh.write(out.getvalue())
    for d in (gdir, hdir):
        for f in sorted(os.listdir(d)):
            print(os.path.join(d, f), os.path.getsize(os.path.join(d, f)))


if __name__ == "__main__":
    main()
