"""Writes the inputs of end-tokens.test: a GGUF (gpt2, random weights)
whose vocabulary ends in <|endoftext|> (eos), <|im_end|> (a normal token by
its type), <custom_eot> (tokenizer.ggml.eot_token_id), <|fim_prefix|> and
<|fim_pad|> (normal tokens by their types), and a Hugging Face
Llama directory whose config.json lists eos_token_id [2, 5] and whose
generation_config.json lists [2, 7].
    make_end_tokens.py DIR"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "e2e"))
import gguf_writer  # noqa: E402
import hf_checkpoint  # noqa: E402
import reference  # noqa: E402

out = sys.argv[1]
os.makedirs(out, exist_ok=True)

tok = gguf_writer.minimal_gpt2_vocab(298)  # <|endoftext|> is 297
tok["tokens"] += ["<|im_end|>", "<custom_eot>", "<|fim_prefix|>", "<|fim_pad|>"]
tok["token_types"] += [gguf_writer.TOKEN_NORMAL, gguf_writer.TOKEN_CONTROL,
                       gguf_writer.TOKEN_NORMAL, gguf_writer.TOKEN_NORMAL]
tok["eot"] = 299
cfg = dict(n_embd=16, n_head=2, n_layer=1, n_positions=32, vocab_size=302,
           layer_norm_epsilon=1e-5)
model = reference.randomize(reference.GPT2(cfg), 0)
gguf_writer.write_gpt2_gguf(os.path.join(out, "ends.gguf"), model.state_dict(), cfg,
                            tokenizer=tok)

cfg = dict(architectures=["LlamaForCausalLM"], hidden_size=16, intermediate_size=32,
           num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
           max_position_embeddings=64, vocab_size=300, bos_token_id=1, eos_token_id=[2, 5])
model = reference.randomize(reference.Llama(cfg), 0)
tokens, merges = hf_checkpoint.train_spm_bpe("the quick brown fox jumps over the lazy dog", 300)
hf = os.path.join(out, "hf")
hf_checkpoint.write_hf_dir(hf, cfg, model.state_dict(),
                           hf_checkpoint.llama_tokenizer_json(tokens, merges))
with open(os.path.join(hf, "generation_config.json"), "w") as f:
    json.dump({"bos_token_id": 1, "eos_token_id": [2, 7]}, f)
