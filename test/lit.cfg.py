# -*- Python -*- lit configuration for Kiln.
import os

import lit.formats
from lit.llvm import llvm_config

config.name = "Kiln"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["lit.cfg.py", "lit.site.cfg.py", "Inputs", "lib", "CMakeLists.txt"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.kiln_obj_root, "test")

llvm_config.use_default_substitutions()
llvm_config.with_system_environment(["HOME", "PATH", "TMPDIR"])
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.kiln_tools_dir, append_path=True)
llvm_config.with_environment(
    "PYTHONPATH", os.path.join(config.kiln_src_root, "compiler", "kiln_export"), append_path=True
)
config.environment["KILN_FLATC"] = config.flatc
config.environment["FILECHECK_OPTS"] = "-enable-var-scope --allow-unused-prefixes=false"

config.substitutions.append(("%python", "/usr/bin/python3"))
config.substitutions.append(("%flatc", config.flatc))
config.substitutions.append(("%kiln_schema", os.path.join(config.kiln_src_root, "runtime", "schema", "kiln.fbs")))
config.substitutions.append(("%kiln_src", config.kiln_src_root))
config.substitutions.append(("%kiln_bin", config.kiln_tools_dir))
config.substitutions.append(("%kiln_obj", config.kiln_obj_root))
# llama.cpp built from source by scripts/llama-cpp.sh (scripts/test.sh runs it
# first); KILN_LLAMA_REF points elsewhere.
config.substitutions.append(("%llama_ref", os.environ.get(
    "KILN_LLAMA_REF", os.path.join(config.kiln_src_root, "build-llama.cpp", "build", "bin",
                                   "llama-ref"))))

llvm_config.add_tool_substitutions(
    ["kiln-opt", "kiln-compile", "kiln-convert", "kiln-runtime-unittests"], [config.kiln_tools_dir]
)
