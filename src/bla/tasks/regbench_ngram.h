// In-context n-gram predictors on RegBench: the reference lines of the
// mixers' curves (the RegBench paper compares its models with them). At a
// position whose target is a symbol, the order-n predictor counts which
// symbols followed the last n-1 tokens (separators included) earlier in the
// same sequence and predicts in proportion to those counts; with no such
// occurrence it backs off to n-2 tokens, and so on down to the symbols seen
// so far (order 1), and with none of those to uniform over the symbols.
// Scored like a model (RegbenchTask::metrics): accuracy of the most frequent
// symbol (the smallest id among ties), tvd and tvd_seq_icl of the counts'
// distribution against the automaton's.
#pragma once

#include "bla/tasks/regbench.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace bla::tasks {

// The order-n predictor's distribution over the `num_symbols` symbols for the
// token after tokens[0..t], from tokens[0..t] alone.
std::vector<double> ngram_distribution(const std::vector<int64_t>& tokens, int64_t t, int64_t n, int64_t num_symbols);

// The order-n predictor's metrics over the first `max_examples` examples of
// `split` (0: all): accuracy, tvd, tvd_seq_icl, symbol_positions.
std::map<std::string, double> ngram_metrics(const RegbenchGenerator& generator, Split split, int64_t n,
                                            int64_t max_examples = 0);

}  // namespace bla::tasks
