// The `bla` operator namespace: every schema in one place. Kernels are
// registered per op family (bla_ops.cpp, attention_ops.cpp, ...) under
// CompositeImplicitAutograd: they are built from differentiable ATen ops (and
// autograd Functions around the CUDA kernels), so autograd differentiates
// them as they run, on every device.
//
// Tensors are (batch, seq, heads, dim) as in src/bla/ops/; a decode step takes
// one token, (batch, heads, dim), and returns its output followed by the new
// state tensors (the inputs are left untouched). Options follow the C++
// option structs, with their defaults.
#include <torch/library.h>

TORCH_LIBRARY(bla, m) {
  // BLA (src/bla/ops/bla/bla.h). keys/values: (B, H, slots, D); position: tokens
  // already consumed. Undefined keys/values in _with_state mean empty slots.
  m.def("blurry_window_attention(Tensor q, Tensor k, Tensor v, int window, int slots, int chunk=64, "
        "float scale=0.0) -> Tensor");
  m.def("blurry_window_attention_chunked(Tensor q, Tensor k, Tensor v, int window, int slots, int chunk=64, "
        "float scale=0.0) -> Tensor");
  m.def("blurry_window_attention_reference(Tensor q, Tensor k, Tensor v, int window, int slots, int chunk=64, "
        "float scale=0.0) -> Tensor");
  m.def("blurry_window_attention_with_state(Tensor q, Tensor k, Tensor v, Tensor? keys, Tensor? values, "
        "int position, int window, int slots, int chunk=64, float scale=0.0) -> (Tensor, Tensor, Tensor)");
  m.def("bla_decode_step(Tensor q, Tensor k, Tensor v, Tensor keys, Tensor values, int position, int window, "
        "int slots, int chunk=64, float scale=0.0) -> (Tensor, Tensor, Tensor)");

  // Softmax attention, sliding-window when window > 0, with an optional
  // (B, T, H) logit bias bias[t] - bias[s] (src/bla/ops/attention/attention.h).
  m.def("sliding_window_attention(Tensor q, Tensor k, Tensor v, int window=0, float scale=0.0, "
        "Tensor? bias=None) -> Tensor");
  m.def("sliding_window_attention_reference(Tensor q, Tensor k, Tensor v, int window=0, float scale=0.0, "
        "Tensor? bias=None) -> Tensor");

  // GLA (src/bla/ops/gla/gla.h). state: (B, H, Dk, Dv).
  m.def("gated_linear_attention(Tensor q, Tensor k, Tensor v, Tensor g, int chunk=64, float scale=0.0, "
        "int subchunk=16) -> Tensor");
  m.def("gated_linear_attention_reference(Tensor q, Tensor k, Tensor v, Tensor g, float scale=0.0) -> Tensor");
  m.def("gated_linear_attention_with_state(Tensor q, Tensor k, Tensor v, Tensor g, Tensor state, int chunk=64, "
        "float scale=0.0, int subchunk=16) -> (Tensor, Tensor)");
  m.def("gla_decode_step(Tensor q, Tensor k, Tensor v, Tensor g, Tensor state, float scale=0.0) -> (Tensor, Tensor)");

  // GSA (src/bla/ops/gsa/gsa.h). keys: (B, H, m, Dk), values: (B, H, m, Dv).
  m.def("gated_slot_attention(Tensor q, Tensor k, Tensor v, Tensor f, int chunk=64, float scale=1.0, "
        "int subchunk=16) -> Tensor");
  m.def("gated_slot_attention_reference(Tensor q, Tensor k, Tensor v, Tensor f, float scale=1.0) -> Tensor");
  m.def("gated_slot_attention_with_state(Tensor q, Tensor k, Tensor v, Tensor f, Tensor keys, Tensor values, "
        "int chunk=64, float scale=1.0, int subchunk=16) -> (Tensor, Tensor, Tensor)");
  m.def("gsa_decode_step(Tensor q, Tensor k, Tensor v, Tensor f, Tensor keys, Tensor values, float scale=1.0) "
        "-> (Tensor, Tensor, Tensor)");

  // SSD, the Mamba2-like recurrence (src/bla/ops/mamba2/mamba2.h). state: (B, H, N, P).
  m.def("selective_state_space(Tensor x, Tensor dt, Tensor A, Tensor B, Tensor C, Tensor? D=None, int chunk=64) "
        "-> Tensor");
  m.def("selective_state_space_reference(Tensor x, Tensor dt, Tensor A, Tensor B, Tensor C, Tensor? D=None) "
        "-> Tensor");
  m.def("selective_state_space_with_state(Tensor x, Tensor dt, Tensor A, Tensor B, Tensor C, Tensor? D, "
        "Tensor state, int chunk=64) -> (Tensor, Tensor)");
  m.def("ssd_decode_step(Tensor x, Tensor dt, Tensor A, Tensor B, Tensor C, Tensor? D, Tensor state) "
        "-> (Tensor, Tensor)");

  // GatedFWA's core (src/bla/ops/gatedfwa/gatedfwa.h). Rings: keys (B, W, H, Dk),
  // values (B, W, H, Dv), gate_sums (B, W, H); slot t % W holds token t.
  m.def("gated_window_attention(Tensor q, Tensor k, Tensor v, Tensor log_gate, int window, float scale=0.0, "
        "int block=64) -> Tensor");
  m.def("gated_window_attention_reference(Tensor q, Tensor k, Tensor v, Tensor log_gate, int window, "
        "float scale=0.0) -> Tensor");
  m.def("gated_window_decode_step(Tensor q, Tensor k, Tensor v, Tensor log_gate, Tensor keys, Tensor values, "
        "Tensor gate_sums, int position, int window, float scale=0.0) -> (Tensor, Tensor, Tensor, Tensor)");
}
