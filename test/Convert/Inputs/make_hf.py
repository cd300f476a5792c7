"""Writes a small Hugging Face Llama directory (random weights, a BPE
vocabulary trained on one sentence) for the kiln-convert CLI tests.
    make_hf.py DIR"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "e2e"))
import hf_checkpoint  # noqa: E402
import reference  # noqa: E402

cfg = dict(architectures=["LlamaForCausalLM"], hidden_size=16, intermediate_size=32,
           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
           max_position_embeddings=64, vocab_size=300, bos_token_id=1, eos_token_id=2)
model = reference.randomize(reference.Llama(cfg), 0)
tokens, merges = hf_checkpoint.train_spm_bpe("the quick brown fox jumps over the lazy dog", 300)
hf_checkpoint.write_hf_dir(sys.argv[1], cfg, model.state_dict(),
                           hf_checkpoint.llama_tokenizer_json(tokens, merges), dtype="BF16")
