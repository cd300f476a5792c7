// RUN: kiln-opt %s -convert-transformer-to-linalg -split-input-file | FileCheck %s

// Tests that layer_norm is three generics over the rows of x (loops batch,
// seq parallel, features reduced or parallel): the row sum, the row sum of
// squared deviations from the mean (sum / 8), then elementwise
// (x - mean) * rsqrt(var + eps) * gamma + beta with var = that sum / 8.
// CHECK-DAG: #[[$ID:.*]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-DAG: #[[$ROW:.*]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-DAG: #[[$FEAT:.*]] = affine_map<(d0, d1, d2) -> (d2)>
// CHECK-LABEL: func.func @layer_norm
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<1x?x8xf32>, %[[G:[a-z0-9]+]]: tensor<8xf32>, %[[B:[a-z0-9]+]]: tensor<8xf32>)
// CHECK: %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK: %[[SUM0:.*]] = linalg.fill ins(%[[ZERO]] : f32) outs(%{{.*}} : tensor<1x?xf32>)
// CHECK: %[[SUM:.*]] = linalg.generic {indexing_maps = [#[[$ID]], #[[$ROW]]], iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[X]] : tensor<1x?x8xf32>) outs(%[[SUM0]] : tensor<1x?xf32>)
// CHECK-NEXT: ^bb0(%[[XI:[a-z0-9_]+]]: f32, %[[ACC:[a-z0-9_]+]]: f32):
// CHECK-NEXT: %[[S:.*]] = arith.addf %[[ACC]], %[[XI]] fastmath<reassoc,contract> : f32
// CHECK-NEXT: linalg.yield %[[S]] : f32
// CHECK: %[[SQ0:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<1x?xf32>)
// CHECK: %[[SQ:.*]] = linalg.generic {indexing_maps = [#[[$ID]], #[[$ROW]], #[[$ROW]]], iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[X]], %[[SUM]] : tensor<1x?x8xf32>, tensor<1x?xf32>) outs(%[[SQ0]] : tensor<1x?xf32>)
// CHECK-NEXT: ^bb0(%[[XI:[a-z0-9_]+]]: f32, %[[SI:[a-z0-9_]+]]: f32, %[[ACC:[a-z0-9_]+]]: f32):
// CHECK-NEXT: %[[N:.*]] = arith.constant 8.000000e+00 : f32
// CHECK-NEXT: %[[MEAN:.*]] = arith.divf %[[SI]], %[[N]] : f32
// CHECK-NEXT: %[[DEV:.*]] = arith.subf %[[XI]], %[[MEAN]] : f32
// CHECK-NEXT: %[[DEV2:.*]] = arith.mulf %[[DEV]], %[[DEV]] fastmath<reassoc,contract> : f32
// CHECK-NEXT: %[[S:.*]] = arith.addf %[[ACC]], %[[DEV2]] fastmath<reassoc,contract> : f32
// CHECK-NEXT: linalg.yield %[[S]] : f32
// CHECK: %[[Y:.*]] = linalg.generic {indexing_maps = [#[[$ID]], #[[$ROW]], #[[$ROW]], #[[$FEAT]], #[[$FEAT]], #[[$ID]]], iterator_types = ["parallel", "parallel", "parallel"]} ins(%[[X]], %[[SUM]], %[[SQ]], %[[G]], %[[B]] : tensor<1x?x8xf32>, tensor<1x?xf32>, tensor<1x?xf32>, tensor<8xf32>, tensor<8xf32>) outs(%{{.*}} : tensor<1x?x8xf32>)
// CHECK-NEXT: ^bb0(%[[XI:[a-z0-9_]+]]: f32, %[[SI:[a-z0-9_]+]]: f32, %[[QI:[a-z0-9_]+]]: f32, %[[GI:[a-z0-9_]+]]: f32, %[[BI:[a-z0-9_]+]]: f32, %{{[a-z0-9_]+}}: f32):
// CHECK-NEXT: %[[N:.*]] = arith.constant 8.000000e+00 : f32
// CHECK-NEXT: %[[MEAN:.*]] = arith.divf %[[SI]], %[[N]] : f32
// CHECK-NEXT: %[[VAR:.*]] = arith.divf %[[QI]], %[[N]] : f32
// CHECK-NEXT: %[[EPS:.*]] = arith.constant 9.99999974E-6 : f32
// CHECK-NEXT: %[[VEPS:.*]] = arith.addf %[[VAR]], %[[EPS]] : f32
// CHECK-NEXT: %[[INV:.*]] = math.rsqrt %[[VEPS]] : f32
// CHECK-NEXT: %[[DEV:.*]] = arith.subf %[[XI]], %[[MEAN]] : f32
// CHECK-NEXT: %[[NORM:.*]] = arith.mulf %[[DEV]], %[[INV]] : f32
// CHECK-NEXT: %[[SCALED:.*]] = arith.mulf %[[NORM]], %[[GI]] : f32
// CHECK-NEXT: %[[OUT:.*]] = arith.addf %[[SCALED]], %[[BI]] : f32
// CHECK-NEXT: linalg.yield %[[OUT]] : f32
// CHECK: return %[[Y]]
func.func @layer_norm(%x: tensor<1x?x8xf32>, %g: tensor<8xf32>, %b: tensor<8xf32>) -> tensor<1x?x8xf32> {
  %y = transformer.layer_norm %x, %g, %b {epsilon = 1.0e-5 : f32} : (tensor<1x?x8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<1x?x8xf32>
  return %y : tensor<1x?x8xf32>
}

// -----

// Tests that rms_norm is the row sum of squares (features reduced) and then
// elementwise x * rsqrt(sum / 8 + eps) * gamma, with no mean subtracted.
// CHECK-DAG: #[[$ID:.*]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-DAG: #[[$ROW:.*]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-DAG: #[[$FEAT:.*]] = affine_map<(d0, d1, d2) -> (d2)>
// CHECK-LABEL: func.func @rms_norm
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<1x?x8xf32>, %[[G:[a-z0-9]+]]: tensor<8xf32>)
// CHECK: %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK: %[[SQ0:.*]] = linalg.fill ins(%[[ZERO]] : f32) outs(%{{.*}} : tensor<1x?xf32>)
// CHECK: %[[SQ:.*]] = linalg.generic {indexing_maps = [#[[$ID]], #[[$ROW]]], iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[X]] : tensor<1x?x8xf32>) outs(%[[SQ0]] : tensor<1x?xf32>)
// CHECK-NEXT: ^bb0(%[[XI:[a-z0-9_]+]]: f32, %[[ACC:[a-z0-9_]+]]: f32):
// CHECK-NEXT: %[[X2:.*]] = arith.mulf %[[XI]], %[[XI]] fastmath<reassoc,contract> : f32
// CHECK-NEXT: %[[S:.*]] = arith.addf %[[ACC]], %[[X2]] fastmath<reassoc,contract> : f32
// CHECK-NEXT: linalg.yield %[[S]] : f32
// CHECK: %[[Y:.*]] = linalg.generic {indexing_maps = [#[[$ID]], #[[$ROW]], #[[$FEAT]], #[[$ID]]], iterator_types = ["parallel", "parallel", "parallel"]} ins(%[[X]], %[[SQ]], %[[G]] : tensor<1x?x8xf32>, tensor<1x?xf32>, tensor<8xf32>) outs(%{{.*}} : tensor<1x?x8xf32>)
// CHECK-NEXT: ^bb0(%[[XI:[a-z0-9_]+]]: f32, %[[QI:[a-z0-9_]+]]: f32, %[[GI:[a-z0-9_]+]]: f32, %{{[a-z0-9_]+}}: f32):
// CHECK-NEXT: %[[N:.*]] = arith.constant 8.000000e+00 : f32
// CHECK-NEXT: %[[MS:.*]] = arith.divf %[[QI]], %[[N]] : f32
// CHECK-NEXT: %[[EPS:.*]] = arith.constant 9.99999997E-7 : f32
// CHECK-NEXT: %[[MSEPS:.*]] = arith.addf %[[MS]], %[[EPS]] : f32
// CHECK-NEXT: %[[INV:.*]] = math.rsqrt %[[MSEPS]] : f32
// CHECK-NEXT: %[[NORM:.*]] = arith.mulf %[[XI]], %[[INV]] : f32
// CHECK-NEXT: %[[OUT:.*]] = arith.mulf %[[NORM]], %[[GI]] : f32
// CHECK-NEXT: linalg.yield %[[OUT]] : f32
// CHECK: return %[[Y]]
func.func @rms_norm(%x: tensor<1x?x8xf32>, %g: tensor<8xf32>) -> tensor<1x?x8xf32> {
  %y = transformer.rms_norm %x, %g {epsilon = 1.0e-6 : f32} : (tensor<1x?x8xf32>, tensor<8xf32>) -> tensor<1x?x8xf32>
  return %y : tensor<1x?x8xf32>
}

// -----

// Tests that add is one elementwise generic (identity maps, all loops
// parallel) whose body adds the two elements.
// CHECK-DAG: #[[$ID:.*]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @add
// CHECK-SAME: (%[[A:[a-z0-9]+]]: tensor<1x?x8xf32>, %[[B:[a-z0-9]+]]: tensor<1x?x8xf32>)
// CHECK: %[[INIT:.*]] = tensor.empty(%{{.*}}) : tensor<1x?x8xf32>
// CHECK: %[[Y:.*]] = linalg.generic {indexing_maps = [#[[$ID]], #[[$ID]], #[[$ID]]], iterator_types = ["parallel", "parallel", "parallel"]} ins(%[[A]], %[[B]] : tensor<1x?x8xf32>, tensor<1x?x8xf32>) outs(%[[INIT]] : tensor<1x?x8xf32>)
// CHECK-NEXT: ^bb0(%[[AI:[a-z0-9_]+]]: f32, %[[BI:[a-z0-9_]+]]: f32, %{{[a-z0-9_]+}}: f32):
// CHECK-NEXT: %[[SUM:.*]] = arith.addf %[[AI]], %[[BI]] : f32
// CHECK-NEXT: linalg.yield %[[SUM]] : f32
// CHECK: return %[[Y]]
func.func @add(%a: tensor<1x?x8xf32>, %b: tensor<1x?x8xf32>) -> tensor<1x?x8xf32> {
  %y = transformer.add %a, %b : tensor<1x?x8xf32>
  return %y : tensor<1x?x8xf32>
}

// -----

// Tests that position_embedding adds to x[b, s, d] the table row of its
// position, s + offset, read with tensor.extract (a gather) in an
// elementwise generic over x.
// CHECK-DAG: #[[$ID:.*]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @position_embedding
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<1x?x8xf32>, %[[T:[a-z0-9]+]]: tensor<16x8xf32>, %[[POS:[a-z0-9]+]]: index)
// CHECK: %[[Y:.*]] = linalg.generic {indexing_maps = [#[[$ID]], #[[$ID]]], iterator_types = ["parallel", "parallel", "parallel"]} ins(%[[X]] : tensor<1x?x8xf32>) outs(%{{.*}} : tensor<1x?x8xf32>)
// CHECK-NEXT: ^bb0(%[[XI:[a-z0-9_]+]]: f32, %{{[a-z0-9_]+}}: f32):
// CHECK-NEXT: %[[S:.*]] = linalg.index 1 : index
// CHECK-NEXT: %[[D:.*]] = linalg.index 2 : index
// CHECK-NEXT: %[[ROW:.*]] = arith.addi %[[S]], %[[POS]] : index
// CHECK-NEXT: %[[PE:.*]] = tensor.extract %[[T]][%[[ROW]], %[[D]]] : tensor<16x8xf32>
// CHECK-NEXT: %[[SUM:.*]] = arith.addf %[[XI]], %[[PE]] : f32
// CHECK-NEXT: linalg.yield %[[SUM]] : f32
// CHECK: return %[[Y]]
func.func @position_embedding(%x: tensor<1x?x8xf32>, %t: tensor<16x8xf32>, %pos: index) -> tensor<1x?x8xf32> {
  %y = transformer.position_embedding %x, %t offset %pos : (tensor<1x?x8xf32>, tensor<16x8xf32>, index) -> tensor<1x?x8xf32>
  return %y : tensor<1x?x8xf32>
}

// -----

// Tests that without an offset position_embedding reads table row s + 0.
// CHECK-LABEL: func.func @position_embedding_no_offset
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<1x?x8xf32>, %[[T:[a-z0-9]+]]: tensor<16x8xf32>)
// CHECK: %[[C0:.*]] = arith.constant 0 : index
// CHECK: linalg.generic
// CHECK: %[[S:.*]] = linalg.index 1 : index
// CHECK-NEXT: %[[D:.*]] = linalg.index 2 : index
// CHECK-NEXT: %[[ROW:.*]] = arith.addi %[[S]], %[[C0]] : index
// CHECK-NEXT: tensor.extract %[[T]][%[[ROW]], %[[D]]] : tensor<16x8xf32>
func.func @position_embedding_no_offset(%x: tensor<1x?x8xf32>, %t: tensor<16x8xf32>) -> tensor<1x?x8xf32> {
  %y = transformer.position_embedding %x, %t : (tensor<1x?x8xf32>, tensor<16x8xf32>) -> tensor<1x?x8xf32>
  return %y : tensor<1x?x8xf32>
}

// -----

// Tests that a gated (SwiGLU) feed_forward is three contractions with weights
// in their [out, in] layout (loops batch, seq, out parallel, in reduced),
// zero-initialised: up and gate read x, and down reads the elementwise
// silu(gate) * up, silu(g) = g / (1 + exp(-g)).
// CHECK-DAG: #[[$XK:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
// CHECK-DAG: #[[$WK:.*]] = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
// CHECK-DAG: #[[$XN:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-DAG: #[[$ID:.*]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @feed_forward_swiglu
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<1x?x8xf32>, %[[WU:[a-z0-9]+]]: tensor<12x8xf32>, %[[WG:[a-z0-9]+]]: tensor<12x8xf32>, %[[WD:[a-z0-9]+]]: tensor<8x12xf32>)
// CHECK: %[[UP0:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<1x?x12xf32>)
// CHECK: %[[UP:.*]] = linalg.generic {indexing_maps = [#[[$XK]], #[[$WK]], #[[$XN]]], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%[[X]], %[[WU]] : tensor<1x?x8xf32>, tensor<12x8xf32>) outs(%[[UP0]] : tensor<1x?x12xf32>)
// CHECK-NEXT: ^bb0(%[[XI:[a-z0-9_]+]]: f32, %[[WI:[a-z0-9_]+]]: f32, %[[ACC:[a-z0-9_]+]]: f32):
// CHECK-NEXT: %[[P:.*]] = arith.mulf %[[XI]], %[[WI]] fastmath<reassoc,contract> : f32
// CHECK-NEXT: %[[S:.*]] = arith.addf %[[ACC]], %[[P]] fastmath<reassoc,contract> : f32
// CHECK-NEXT: linalg.yield %[[S]] : f32
// CHECK: %[[GATE0:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<1x?x12xf32>)
// CHECK: %[[GATE:.*]] = linalg.generic {indexing_maps = [#[[$XK]], #[[$WK]], #[[$XN]]], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%[[X]], %[[WG]] : tensor<1x?x8xf32>, tensor<12x8xf32>) outs(%[[GATE0]] : tensor<1x?x12xf32>)
// CHECK: %[[H:.*]] = linalg.generic {indexing_maps = [#[[$ID]], #[[$ID]], #[[$ID]]], iterator_types = ["parallel", "parallel", "parallel"]} ins(%[[GATE]], %[[UP]] : tensor<1x?x12xf32>, tensor<1x?x12xf32>) outs(%{{.*}} : tensor<1x?x12xf32>)
// CHECK-NEXT: ^bb0(%[[GI:[a-z0-9_]+]]: f32, %[[UI:[a-z0-9_]+]]: f32, %{{[a-z0-9_]+}}: f32):
// CHECK-NEXT: %[[NEG:.*]] = arith.negf %[[GI]] : f32
// CHECK-NEXT: %[[E:.*]] = math.exp %[[NEG]] : f32
// CHECK-NEXT: %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT: %[[DEN:.*]] = arith.addf %[[E]], %[[ONE]] : f32
// CHECK-NEXT: %[[SILU:.*]] = arith.divf %[[GI]], %[[DEN]] : f32
// CHECK-NEXT: %[[PROD:.*]] = arith.mulf %[[SILU]], %[[UI]] : f32
// CHECK-NEXT: linalg.yield %[[PROD]] : f32
// CHECK: %[[Y0:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<1x?x8xf32>)
// CHECK: %[[Y:.*]] = linalg.generic {indexing_maps = [#[[$XK]], #[[$WK]], #[[$XN]]], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%[[H]], %[[WD]] : tensor<1x?x12xf32>, tensor<8x12xf32>) outs(%[[Y0]] : tensor<1x?x8xf32>)
// CHECK: return %[[Y]]
func.func @feed_forward_swiglu(%x: tensor<1x?x8xf32>, %wu: tensor<12x8xf32>, %wg: tensor<12x8xf32>, %wd: tensor<8x12xf32>) -> tensor<1x?x8xf32> {
  %y = transformer.feed_forward swiglu %x, up %wu, gate %wg, down %wd : (tensor<1x?x8xf32>, tensor<12x8xf32>, tensor<12x8xf32>, tensor<8x12xf32>) -> tensor<1x?x8xf32>
  return %y : tensor<1x?x8xf32>
}

// -----

// Tests that an ungated feed_forward with biases accumulates each
// contraction into its bias broadcast over the rows, and applies GPT-2's
// tanh GELU elementwise in between:
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
// CHECK-DAG: #[[$FEAT:.*]] = affine_map<(d0, d1, d2) -> (d2)>
// CHECK-DAG: #[[$ID:.*]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-DAG: #[[$XK:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
// CHECK-DAG: #[[$WK:.*]] = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
// CHECK-DAG: #[[$XN:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @feed_forward_gelu_tanh
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<1x?x8xf32>, %[[WU:[a-z0-9]+]]: tensor<12x8xf32>, %[[BU:[a-z0-9]+]]: tensor<12xf32>, %[[WD:[a-z0-9]+]]: tensor<8x12xf32>, %[[BD:[a-z0-9]+]]: tensor<8xf32>)
// CHECK: %[[UP0:.*]] = linalg.generic {indexing_maps = [#[[$FEAT]], #[[$ID]]], iterator_types = ["parallel", "parallel", "parallel"]} ins(%[[BU]] : tensor<12xf32>) outs(%{{.*}} : tensor<1x?x12xf32>)
// CHECK-NEXT: ^bb0(%[[BI:[a-z0-9_]+]]: f32, %{{[a-z0-9_]+}}: f32):
// CHECK-NEXT: linalg.yield %[[BI]] : f32
// CHECK: %[[UP:.*]] = linalg.generic {indexing_maps = [#[[$XK]], #[[$WK]], #[[$XN]]], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%[[X]], %[[WU]] : tensor<1x?x8xf32>, tensor<12x8xf32>) outs(%[[UP0]] : tensor<1x?x12xf32>)
// CHECK: %[[H:.*]] = linalg.generic {indexing_maps = [#[[$ID]], #[[$ID]]], iterator_types = ["parallel", "parallel", "parallel"]} ins(%[[UP]] : tensor<1x?x12xf32>) outs(%{{.*}} : tensor<1x?x12xf32>)
// CHECK-NEXT: ^bb0(%[[UI:[a-z0-9_]+]]: f32, %{{[a-z0-9_]+}}: f32):
// CHECK-NEXT: %[[U2:.*]] = arith.mulf %[[UI]], %[[UI]] : f32
// CHECK-NEXT: %[[U3:.*]] = arith.mulf %[[U2]], %[[UI]] : f32
// CHECK-NEXT: %[[C:.*]] = arith.constant 4.471500e-02 : f32
// CHECK-NEXT: %[[CU3:.*]] = arith.mulf %[[U3]], %[[C]] : f32
// CHECK-NEXT: %[[INNER:.*]] = arith.addf %[[UI]], %[[CU3]] : f32
// CHECK-NEXT: %[[K:.*]] = arith.constant 0.797884583 : f32
// CHECK-NEXT: %[[ARG:.*]] = arith.mulf %[[INNER]], %[[K]] : f32
// CHECK-NEXT: %[[TH:.*]] = math.tanh %[[ARG]] : f32
// CHECK-NEXT: %[[HALF:.*]] = arith.constant 5.000000e-01 : f32
// CHECK-NEXT: %[[HU:.*]] = arith.mulf %[[UI]], %[[HALF]] : f32
// CHECK-NEXT: %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT: %[[TH1:.*]] = arith.addf %[[TH]], %[[ONE]] : f32
// CHECK-NEXT: %[[G:.*]] = arith.mulf %[[HU]], %[[TH1]] : f32
// CHECK-NEXT: linalg.yield %[[G]] : f32
// CHECK: %[[Y0:.*]] = linalg.generic {indexing_maps = [#[[$FEAT]], #[[$ID]]], iterator_types = ["parallel", "parallel", "parallel"]} ins(%[[BD]] : tensor<8xf32>) outs(%{{.*}} : tensor<1x?x8xf32>)
// CHECK: %[[Y:.*]] = linalg.generic {indexing_maps = [#[[$XK]], #[[$WK]], #[[$XN]]], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%[[H]], %[[WD]] : tensor<1x?x12xf32>, tensor<8x12xf32>) outs(%[[Y0]] : tensor<1x?x8xf32>)
// CHECK: return %[[Y]]
func.func @feed_forward_gelu_tanh(%x: tensor<1x?x8xf32>, %wu: tensor<12x8xf32>, %bu: tensor<12xf32>, %wd: tensor<8x12xf32>, %bd: tensor<8xf32>) -> tensor<1x?x8xf32> {
  %y = transformer.feed_forward gelu_tanh %x, up %wu bias %bu, down %wd bias %bd : (tensor<1x?x8xf32>, tensor<12x8xf32>, tensor<12xf32>, tensor<8x12xf32>, tensor<8xf32>) -> tensor<1x?x8xf32>
  return %y : tensor<1x?x8xf32>
}
