// RUN: kiln-opt %s -kiln-target='cpu=haswell' | FileCheck %s --check-prefix=HASWELL
// RUN: kiln-opt %s -kiln-target='cpu=skylake-avx512 vector-bits=256' | FileCheck %s --check-prefix=NARROW
// RUN: kiln-opt %s -kiln-target='cpu=sapphirerapids' | FileCheck %s --check-prefix=SPR
// RUN: kiln-opt %s -kiln-target | FileCheck %s --check-prefix=HOST

// Tests that a named CPU's description comes from LLVM's model of it: AVX2
// (256-bit vectors), FMA and F16C on Haswell, no AVX-512 features.
// HASWELL: module attributes {kiln.target = {avx = true, avx512_bf16 = false, avx512_vnni = false, cpu = "haswell", f16c = true, fma = true, host = false, l1d_bytes = 32768 : i64, l2_bytes = 1048576 : i64, l3_bytes = 33554432 : i64, triple = "{{.*}}", vector_bits = 256 : i64}}

// Tests that vector-bits narrows the kernels' width below the CPU's widest.
// NARROW: cpu = "skylake-avx512"
// NARROW-SAME: vector_bits = 256 : i64

// Tests the AVX-512 features the kernels may choose by.
// SPR: avx512_bf16 = true, avx512_vnni = true, cpu = "sapphirerapids"
// SPR-SAME: vector_bits = 512 : i64

// Tests that the default describes this machine.
// HOST: host = true

module {
}
