// The fixed operators of Blurry Window Attention (docs/bla.md, "The
// interpolation kernel", "One step of the slot memory", "Training: chunked
// two-pass form") and a process-wide cache of their casts to each compute
// dtype and device.
#include "bla/ops/bla/operators.h"

#include <torch/torch.h>

#include <cmath>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "bla/ops/bla/bla.h"

namespace bla::ops {

namespace {

constexpr double kPi = 3.14159265358979323846;

}  // namespace

double dirichlet_kernel(int64_t slots, double u) {
  // P_N(u) = (1/N) [1 + 2 sum_{m=1}^{M} cos(2 pi m u / N) + e_N(u)]; the
  // Nyquist term e_N(u) = cos(pi u) exists only for even N.
  const double n = static_cast<double>(slots);
  const int64_t highest = (slots % 2 == 1) ? (slots - 1) / 2 : slots / 2 - 1;
  double sum = 1.0;
  for (int64_t m = 1; m <= highest; ++m) sum += 2.0 * std::cos(2.0 * kPi * static_cast<double>(m) * u / n);
  if (slots % 2 == 0) sum += std::cos(kPi * u);
  return sum / n;
}

BlaOperators make_bla_operators(int64_t window, int64_t slots, int64_t chunk) {
  BlaOptions{window, slots, chunk}.validate();
  const int64_t n = slots;
  const double r = static_cast<double>(window) / static_cast<double>(slots);  // tokens per slot
  const double delta = 1.0 / r;                                                 // one token in slot units
  const auto f64 = at::TensorOptions().dtype(at::kDouble);

  BlaOperators ops;
  ops.window = window;
  ops.slots = slots;
  ops.chunk = chunk;

  ops.shift = at::empty({n, n}, f64);
  ops.forget_read = at::empty({n}, f64);
  ops.forget_write = at::empty({n}, f64);
  {
    auto shift = ops.shift.accessor<double, 2>();
    auto read = ops.forget_read.accessor<double, 1>();
    auto write = ops.forget_write.accessor<double, 1>();
    for (int64_t j = 0; j < n; ++j) {
      // Step 1 reads the blurred value at token age W-1 (slot position N - delta)
      // and writes it back as a band-limited impulse at that age, weight 1/r.
      read[j] = dirichlet_kernel(n, static_cast<double>(n - j) - delta);
      write[j] = dirichlet_kernel(n, static_cast<double>(j - n) + delta) / r;
      // Step 2: every slot one token older, a fractional shift by delta slots.
      for (int64_t l = 0; l < n; ++l) shift[j][l] = dirichlet_kernel(n, static_cast<double>(j - l) - delta);
    }
  }
  const at::Tensor forget = at::eye(n, f64) - at::outer(ops.forget_write, ops.forget_read);
  ops.A = at::matmul(ops.shift, forget);
  ops.b = at::zeros({n}, f64);
  ops.b[0] = 1.0 / r;  // step 3: the new token enters slot 0 with weight 1/r

  // A^tau for tau = 0..C and h(tau) = A^tau b for tau = 0..C-1.
  std::vector<at::Tensor> powers;
  powers.reserve(static_cast<size_t>(chunk) + 1);
  powers.push_back(at::eye(n, f64));
  for (int64_t tau = 1; tau <= chunk; ++tau) powers.push_back(at::matmul(ops.A, powers.back()));
  ops.powers = at::stack(powers, 0);
  ops.kernel = at::matmul(ops.powers.slice(0, 0, chunk), ops.b);  // (C, N)

  // H[i, s] = h(i - s) for s <= i: gather h by lag, zero above the diagonal.
  const at::Tensor position = at::arange(chunk, at::TensorOptions().dtype(at::kLong));
  const at::Tensor lag = position.unsqueeze(1) - position.unsqueeze(0);  // (C, C): i - s
  const at::Tensor causal = (lag >= 0).unsqueeze(-1).to(at::kDouble);
  ops.causal_kernel = ops.kernel.index({lag.clamp_min(0)}) * causal;  // (C, C, N)
  return ops;
}

BlaOperators bla_operators(int64_t window, int64_t slots, int64_t chunk, at::ScalarType dtype, at::Device device) {
  using Key = std::tuple<int64_t, int64_t, int64_t, int, int, int>;
  static std::mutex mutex;
  static std::map<Key, BlaOperators> cache;

  const Key key{window, slots, chunk, static_cast<int>(dtype), static_cast<int>(device.type()),
                static_cast<int>(device.index())};
  const Key base_key{window, slots, chunk, static_cast<int>(at::kDouble), static_cast<int>(at::kCPU), -1};

  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = cache.find(key); it != cache.end()) return it->second;

  auto base = cache.find(base_key);
  if (base == cache.end()) base = cache.emplace(base_key, make_bla_operators(window, slots, chunk)).first;
  if (key == base_key) return base->second;

  // The operators are built in float64 and cast once; they never need grad.
  const at::NoGradGuard no_grad;
  const auto to = [&](const at::Tensor& t) { return t.to(device, dtype).contiguous(); };
  const BlaOperators& b64 = base->second;
  BlaOperators cast;
  cast.window = window;
  cast.slots = slots;
  cast.chunk = chunk;
  cast.shift = to(b64.shift);
  cast.forget_read = to(b64.forget_read);
  cast.forget_write = to(b64.forget_write);
  cast.A = to(b64.A);
  cast.b = to(b64.b);
  cast.kernel = to(b64.kernel);
  cast.powers = to(b64.powers);
  cast.causal_kernel = to(b64.causal_kernel);
  return cache.emplace(key, std::move(cast)).first->second;
}

double spectral_radius(const at::Tensor& matrix) {
  if (matrix.dim() != 2 || matrix.size(0) != matrix.size(1)) {
    std::ostringstream os;
    os << "spectral_radius: expected a square matrix, got shape " << matrix.sizes();
    throw std::invalid_argument(os.str());
  }
  const at::Tensor eigenvalues = at::linalg_eigvals(matrix.detach().to(at::kCPU, at::kDouble));
  return eigenvalues.abs().max().item<double>();
}

}  // namespace bla::ops
