#include "bla/train/data_order.h"

#include "bla/util/seed.h"

#include <algorithm>
#include <numeric>
#include <random>

namespace bla::train {

const std::vector<int64_t>& DataOrder::permutation(int64_t epoch) {
  if (epoch != cached_epoch_) {
    cached_.resize(static_cast<size_t>(num_examples_));
    std::iota(cached_.begin(), cached_.end(), 0);
    std::mt19937_64 rng(util::derive_seed(seed_, util::kDataOrder, static_cast<uint64_t>(epoch)));
    std::shuffle(cached_.begin(), cached_.end(), rng);
    cached_epoch_ = epoch;
  }
  return cached_;
}

std::vector<int64_t> DataOrder::next(int64_t count) {
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i, ++position_) {
    out.push_back(permutation(position_ / num_examples_)[static_cast<size_t>(position_ % num_examples_)]);
  }
  return out;
}

}  // namespace bla::train
