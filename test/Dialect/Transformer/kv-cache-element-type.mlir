// RUN: kiln-opt %s -transformer-kv-cache='element-type=f16' | FileCheck %s
// RUN: kiln-opt %s -transformer-kv-cache='element-type=bf16' -convert-transformer-to-linalg | FileCheck %s --check-prefix=LINALG
// RUN: not kiln-opt %s -transformer-kv-cache='element-type=f8' 2>&1 | FileCheck %s --check-prefix=BAD

// Tests a half-precision KV cache: the cache type carries the element type;
// keys and values (f32) are appended as they are computed and read back in
// the cache's type, which the attention takes with f32 queries (in prefill
// too: its attention reads the cache). In linalg (bf16): the appended rows
// rounded by arith.truncf before the insert into the cache, and the
// attention kernel reading bf16 rows of head_dim values and widening them
// with arith.extf.
module attributes {transformer.context_length = 16 : i64} {
  func.func @forward(%ids: tensor<1x?xi32>) -> tensor<1x?x32xf32> {
    %wte = transformer.weight "wte" [0] : tensor<32x8xf32>
    %wq = transformer.weight "q" [1] : tensor<8x8xf32>
    %x = transformer.embedding %ids, %wte : (tensor<1x?xi32>, tensor<32x8xf32>) -> tensor<1x?x8xf32>
    %q = transformer.linear %x, %wq : (tensor<1x?x8xf32>, tensor<8x8xf32>) -> tensor<1x?x8xf32>
    %a = transformer.attention causal %q, %q, %q {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<1x?x8xf32>) -> tensor<1x?x8xf32>
    %logits = transformer.linear %a, %wte : (tensor<1x?x8xf32>, tensor<32x8xf32>) -> tensor<1x?x32xf32>
    return %logits : tensor<1x?x32xf32>
  }
}
// CHECK-LABEL: func.func @decode(
// CHECK-SAME: %[[C:arg[0-9]+]]: !transformer.kv_cache<layers = 1, batch = 1, kv_heads = 2, head_dim = 4, capacity = 16, element_type = f16>
// CHECK: %[[A:.*]] = transformer.kv_cache_append %[[C]][0], %{{.*}}, %{{.*}} at %{{.*}} : <{{.*}}element_type = f16>, tensor<1x1x8xf32>, tensor<1x1x8xf32>
// CHECK: %[[K:.*]], %[[V:.*]] = transformer.kv_cache_read %[[A]][0] {{.*}} -> tensor<1x?x8xf16>, tensor<1x?x8xf16>
// CHECK: transformer.attention causal %{{.*}}, %[[K]], %[[V]] offset %{{.*}} : (tensor<1x1x8xf32>, tensor<1x?x8xf16>, tensor<1x?x8xf16>, index) -> tensor<1x1x8xf32>
// CHECK-LABEL: func.func @prefill(
// CHECK: transformer.attention causal %{{.*}} : (tensor<1x?x8xf32>, tensor<1x?x8xf16>, tensor<1x?x8xf16>, index) -> tensor<1x?x8xf32>

// LINALG-LABEL: func.func @decode(
// LINALG-SAME: %[[C:arg[0-9]+]]: tensor<1x2x1x16x8xbf16>
// LINALG: linalg.generic {{.*}} ins(%{{.*}} : tensor<1x1x8xf32>) outs(%{{.*}} : tensor<1x1x8xbf16>)
// LINALG: arith.truncf %{{.*}} : f32 to bf16
// LINALG: tensor.insert_slice %{{.*}} into %[[C]][0, 0, 0, %{{.*}}, 0] [1, 1, 1, 1, 8] {{.*}} : tensor<1x1x8xbf16> into tensor<1x2x1x16x8xbf16>
// LINALG: arith.truncf %{{.*}} : f32 to bf16
// LINALG: tensor.insert_slice {{.*}}[0, 1, 0, %{{.*}}, 0]
// LINALG: scf.forall
// LINALG: %[[KR:.*]] = vector.transfer_read %{{.*}} : tensor<1x?x8xbf16>, vector<4xbf16>
// LINALG: arith.extf %[[KR]] : vector<4xbf16> to vector<4xf32>

// BAD: transformer-kv-cache: element-type must be f32, f16 or bf16, not 'f8'
