// What training and restoring both build from a config, after its task: the
// model's vocabulary and the model. The model is built before the config's
// deferred sections are finished, since building it is what reads the
// mixers' keys; finishing then rejects every key nobody read.
#pragma once

#include "bla/config/config.h"
#include "bla/model/lm.h"
#include "bla/tasks/task.h"

#include <cstdint>

namespace bla::train {

// model.vocab_size, else the task's; one smaller than the task's is a config error.
int64_t model_vocabulary(const config::Config& config, const tasks::Task& task);

// The model of `config` for `vocab` ids and sequences of `seq_len`; then every
// key of the mixer sections, and of the data section when `data_read` (the
// task was built from it), must have been read.
model::LanguageModel build_model(const config::Config& config, int64_t vocab, int64_t seq_len, bool data_read = true);

}  // namespace bla::train
