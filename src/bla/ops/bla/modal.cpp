// The real modal basis of BLA's slot transition (modal.h).
#include "bla/ops/bla/modal.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <vector>

#include "bla/ops/bla/bla.h"
#include "bla/ops/checks.h"

namespace bla::ops {

namespace {

constexpr double kMaxCondition = 1e4;
constexpr double kMaxReconstructionError = 1e-9;

struct Attempt {
  BlaModalOperators modal;
  std::string why;  // empty when usable
};

Attempt build(int64_t window, int64_t slots, int64_t chunk) {
  Attempt attempt;
  BlaOptions{window, slots, chunk}.validate();
  if (slots == window) {
    attempt.why = "slots == window is sliding-window attention; its transition has no eigenbasis (use SWA)";
    return attempt;
  }
  const BlaOperators ops = make_bla_operators(window, slots, chunk);
  const int64_t n = slots;
  auto [values, vectors] = at::linalg_eig(ops.A);  // complex128
  const at::Tensor real = at::real(values), imag = at::imag(values);
  const at::Tensor vec_re = at::real(vectors).contiguous(), vec_im = at::imag(vectors).contiguous();

  // Real modes: one column per real eigenvalue, two (Re v, Im v) per
  // conjugate pair, taken at the member with positive imaginary part.
  std::vector<at::Tensor> columns;
  std::vector<int64_t> partner;
  const auto re = real.accessor<double, 1>();
  const auto im = imag.accessor<double, 1>();
  for (int64_t m = 0; m < n; ++m) {
    const double scale_of = std::max(1.0, std::hypot(re[m], im[m]));
    if (std::abs(im[m]) <= 1e-12 * scale_of) {
      partner.push_back(static_cast<int64_t>(columns.size()));
      columns.push_back(vec_re.select(1, m));
    } else if (im[m] > 0) {
      const auto first = static_cast<int64_t>(columns.size());
      partner.push_back(first + 1);
      partner.push_back(first);
      columns.push_back(vec_re.select(1, m));
      columns.push_back(vec_im.select(1, m));
    }
  }
  if (static_cast<int64_t>(columns.size()) != n) {
    std::ostringstream os;
    os << "the eigenvalues of A (W=" << window << ", N=" << slots << ") do not form conjugate pairs";
    attempt.why = os.str();
    return attempt;
  }
  BlaModalOperators& modal = attempt.modal;
  modal.window = window;
  modal.slots = slots;
  modal.chunk = chunk;
  modal.basis = at::stack(columns, 1).contiguous();
  modal.basis_condition = at::linalg_cond(modal.basis).item<double>();
  if (!std::isfinite(modal.basis_condition) || modal.basis_condition > kMaxCondition) {
    std::ostringstream os;
    os << "the modal basis of A (W=" << window << ", N=" << slots << ") is ill-conditioned (cond "
       << modal.basis_condition << " > " << kMaxCondition << ")";
    attempt.why = os.str();
    return attempt;
  }
  modal.basis_inverse = at::linalg_inv(modal.basis).contiguous();
  modal.partner = at::tensor(partner, at::TensorOptions().dtype(at::kLong));

  // B^n = R^-1 A^n R, kept only on each mode's block; what is dropped must be
  // roundoff, checked by rebuilding A^n from the kept entries.
  const at::Tensor rows = at::arange(n, modal.partner.options());
  const at::Tensor is_pair = modal.partner.ne(rows).to(at::kDouble);
  modal.alpha = at::empty({chunk, n}, at::TensorOptions().dtype(at::kDouble));
  modal.beta = at::empty_like(modal.alpha);
  modal.beta_t = at::empty_like(modal.alpha);
  double worst = 0.0;
  for (int64_t i = 0; i < chunk; ++i) {
    const at::Tensor power = ops.powers.select(0, i + 1);  // A^(i+1)
    const at::Tensor block = at::matmul(modal.basis_inverse, at::matmul(power, modal.basis));
    const at::Tensor diagonal = block.diagonal();
    const at::Tensor to_partner = block.index({rows, modal.partner}) * is_pair;  // Bn[m, p(m)]
    const at::Tensor from_partner = block.index({modal.partner, rows}) * is_pair;  // Bn[p(m), m]
    modal.alpha.select(0, i).copy_(diagonal);
    modal.beta.select(0, i).copy_(to_partner);
    modal.beta_t.select(0, i).copy_(from_partner);
    at::Tensor kept = at::diag(diagonal);
    kept.index_put_({rows, modal.partner}, kept.index({rows, modal.partner}) + to_partner);
    const at::Tensor rebuilt = at::matmul(modal.basis, at::matmul(kept, modal.basis_inverse));
    const double scale_of = std::max(1.0, power.abs().max().item<double>());
    worst = std::max(worst, (rebuilt - power).abs().max().item<double>() / scale_of);
  }
  if (!(worst <= kMaxReconstructionError)) {
    std::ostringstream os;
    os << "the modal basis of A (W=" << window << ", N=" << slots << ") reproduces A^n only to " << worst;
    attempt.why = os.str();
  }
  return attempt;
}

}  // namespace

bool bla_modal_supported(int64_t window, int64_t slots, int64_t chunk, std::string* why) {
  Attempt attempt = build(window, slots, chunk);
  if (why != nullptr) *why = attempt.why;
  return attempt.why.empty();
}

BlaModalOperators make_bla_modal_operators(int64_t window, int64_t slots, int64_t chunk) {
  Attempt attempt = build(window, slots, chunk);
  if (!attempt.why.empty()) fail("modal form: " + attempt.why);
  return attempt.modal;
}

}  // namespace bla::ops
