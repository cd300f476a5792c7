"""Writes a small GGUF file (gpt2, random weights, F16 matrices) for the
kiln-convert CLI tests.
    make_gguf.py FILE"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "e2e"))
import gguf_writer  # noqa: E402
import reference  # noqa: E402

cfg = dict(n_embd=32, n_head=4, n_layer=2, n_positions=64, vocab_size=300,
           layer_norm_epsilon=1e-5)
model = reference.randomize(reference.GPT2(cfg), 0)
gguf_writer.write_gpt2_gguf(sys.argv[1], model.state_dict(), cfg, dtype="F16", name="tiny-gpt2")
