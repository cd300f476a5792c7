// RUN: not kiln-opt %s -kiln-target='cpu=no-such-cpu' 2>&1 | FileCheck %s --check-prefix=CPU
// RUN: not kiln-opt %s -kiln-target='cpu=haswell vector-bits=512' 2>&1 | FileCheck %s --check-prefix=WIDE
// RUN: not kiln-opt %s -kiln-target='vector-bits=96' 2>&1 | FileCheck %s --check-prefix=ODD

// Tests that an unknown CPU, a width the CPU lacks and a width that is not
// 128, 256 or 512 are refused, naming what is wrong.
// CPU: error: kiln-target: unknown CPU 'no-such-cpu' for {{.*}} (try `llc -mcpu=help`)
// WIDE: error: kiln-target: CPU 'haswell' has 256-bit vectors at most, not 512
// ODD: error: kiln-target: vector width 96 bits: expected 128, 256 or 512
module {
}
