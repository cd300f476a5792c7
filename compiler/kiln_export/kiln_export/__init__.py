"""kiln_export: write Kiln model files (.kiln) from PyTorch checkpoints.

    import kiln_export
    kiln_export.export_gpt2("gpt2.kiln", model.state_dict(), config)
    kiln_export.export_llama("llama.kiln", model.state_dict(), config)

`state_dict` uses Hugging Face's parameter names and layouts
(GPT2LMHeadModel, LlamaForCausalLM); `config` is a dict with the keys of the
matching Hugging Face config.json. Run with Debian's /usr/bin/python3 and
PYTHONPATH=<repo>/compiler/kiln_export.
"""
from .writer import ModelWriter, SCHEMA_VERSION
from .models import export_gpt2, export_llama
from .reader import read_model

__all__ = ["ModelWriter", "SCHEMA_VERSION", "export_gpt2", "export_llama", "read_model"]
