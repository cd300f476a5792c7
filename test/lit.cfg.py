# -*- Python -*- lit configuration for Kiln.
import os

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "Kiln"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["lit.cfg.py", "lit.site.cfg.py", "Inputs", "lib", "CMakeLists.txt", "npm", "fuzz"]
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
# first); KILN_LLAMA_REF and KILN_LLAMA_QUANTIZE point elsewhere.
config.substitutions.append(("%llama_ref", os.environ.get(
    "KILN_LLAMA_REF", os.path.join(config.kiln_src_root, "build-llama.cpp", "build", "bin",
                                   "llama-ref"))))
config.substitutions.append(("%llama_quantize", os.environ.get(
    "KILN_LLAMA_QUANTIZE", os.path.join(config.kiln_src_root, "build-llama.cpp", "build", "bin",
                                        "llama-quantize"))))

# scripts/fuzz.sh reruns the runtime tests with executables linked against
# the runtime built with AddressSanitizer + UndefinedBehaviorSanitizer.
san_runtime = os.environ.get("KILN_SAN_RUNTIME")
compile_args = []
if san_runtime:
    compile_args = ["--runtime-lib=" + san_runtime, "--linker=" + os.environ["KILN_SAN_LINKER"]]
    config.available_features.add("sanitized-runtime")
llvm_config.add_tool_substitutions(
    ["kiln-opt", ToolSubst("kiln-compile", extra_args=compile_args), "kiln-convert",
     "kiln-runtime-unittests"], [config.kiln_tools_dir]
)
