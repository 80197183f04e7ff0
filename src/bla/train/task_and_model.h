// What training and restoring both build from a config: the device, the
// model's vocabulary (after the task) and the model, and the summary of the
// model's decoding state that the run reports. The model is built before the config's
// deferred sections are finished, since building it is what reads the
// mixers' keys; finishing then rejects every key nobody read.
#pragma once

#include "bla/config/config.h"
#include "bla/model/lm.h"
#include "bla/tasks/task.h"

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <cstdint>
#include <string>

namespace bla::train {

// model.vocab_size, else the task's; one smaller than the task's is a config error.
int64_t model_vocabulary(const config::Config& config, const tasks::Task& task);

// The model of `config` for `vocab` ids and sequences of `seq_len`; then every
// key of the mixer sections, and of the data section when `data_read` (the
// task was built from it), must have been read.
model::LanguageModel build_model(const config::Config& config, int64_t vocab, int64_t seq_len, bool data_read = true);

// The device a run.device value names: "auto" is CUDA when LibTorch sees one.
torch::Device resolve_device(const std::string& name);

// Per layer: mixer description and state size after `context` tokens (the
// run summary's "state" entry).
nlohmann::json state_summary(const model::LanguageModelImpl& model, int64_t context);

}  // namespace bla::train
