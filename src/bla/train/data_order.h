// The order in which training examples are visited: a fresh permutation of
// the training set every epoch, a pure function of (seed, epoch). The data
// position (examples consumed so far) is the whole state.
#pragma once

#include <cstdint>
#include <vector>

namespace bla::train {

class DataOrder {
 public:
  DataOrder(int64_t num_examples, uint64_t seed) : num_examples_(num_examples), seed_(seed) {}
  // The next `count` example indices; advances the position.
  std::vector<int64_t> next(int64_t count);
  int64_t position() const { return position_; }
  void set_position(int64_t position) { position_ = position; }

 private:
  const std::vector<int64_t>& permutation(int64_t epoch);
  int64_t num_examples_;
  uint64_t seed_;
  int64_t position_ = 0;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> cached_;
};

}  // namespace bla::train
