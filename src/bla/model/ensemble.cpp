#include "bla/model/ensemble.h"

#include "bla/mixers/common/members.h"

#include <torch/torch.h>

#include <stdexcept>
#include <string>

namespace bla::model {

namespace {

// The two models' parameters by name, checked to be the same set.
std::vector<std::pair<torch::Tensor, torch::Tensor>> matched(const torch::nn::Module& a, const torch::nn::Module& b) {
  auto mine = a.named_parameters();
  auto theirs = b.named_parameters();
  if (mine.size() != theirs.size()) {
    throw std::invalid_argument("ensemble: the models have " + std::to_string(mine.size()) + " and " +
                                std::to_string(theirs.size()) + " parameters; members must share one architecture");
  }
  std::vector<std::pair<torch::Tensor, torch::Tensor>> out;
  for (const auto& item : mine) {
    const auto* other = theirs.find(item.key());
    if (other == nullptr) throw std::invalid_argument("ensemble: parameter " + item.key() + " is missing in a member");
    out.emplace_back(item.value(), *other);
  }
  return out;
}

}  // namespace

int64_t members_of(const LanguageModelImpl& model) { return mixers::members_of(model.head_weight(), 2); }

void stack_members(LanguageModelImpl& ensemble, const std::vector<LanguageModel>& members) {
  if (members.empty()) throw std::invalid_argument("ensemble: no members");
  torch::NoGradGuard no_grad;
  auto named = ensemble.named_parameters();
  std::vector<torch::OrderedDict<std::string, torch::Tensor>> theirs;
  for (const auto& member : members) theirs.push_back(member->named_parameters());
  for (auto& item : named) {
    std::vector<torch::Tensor> slices;
    for (const auto& their : theirs) {
      const auto* p = their.find(item.key());
      if (p == nullptr || !p->sizes().equals(item.value().sizes())) {
        throw std::invalid_argument("ensemble: parameter " + item.key() + " differs in shape between members");
      }
      slices.push_back(p->detach().to(item.value().device()));
    }
    item.value().set_data(torch::stack(slices));
  }
}

void copy_member_out(const LanguageModelImpl& ensemble, int64_t member, LanguageModelImpl& solo) {
  torch::NoGradGuard no_grad;
  for (auto& [stacked, one] : matched(ensemble, solo)) one.copy_(stacked.select(0, member));
}

void copy_member_in(LanguageModelImpl& ensemble, int64_t member, const LanguageModelImpl& solo) {
  torch::NoGradGuard no_grad;
  for (auto& [stacked, one] : matched(ensemble, solo)) stacked.select(0, member).copy_(one);
}

}  // namespace bla::model
