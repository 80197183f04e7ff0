// What training a config will need, estimated before anything is allocated,
// so that a size that cannot fit is a config error naming the keys to lower,
// not an allocation failure minutes later (or a machine swapping to a halt).
// The estimate counts parameters, their gradients and AdamW's two moments
// exactly enough (16 bytes a parameter, from the shapes the config implies)
// and activations coarsely (a lower bound: a few d_model-wide float32
// tensors per token and layer); it refuses only what surely cannot fit.
#pragma once

#include "bla/config/config.h"

#include <c10/core/Device.h>

#include <cstdint>
#include <string>

namespace bla::train {

struct MemoryEstimate {
  double parameters = 0;  // number of parameters
  double state_bytes = 0;       // parameters, gradients, AdamW moments
  double activation_bytes = 0;  // a lower bound for one micro-batch's saved activations
  double total_bytes() const { return state_bytes + activation_bytes; }
};

MemoryEstimate estimate_training_memory(const config::Config& config, int64_t vocab, int64_t seq_len);

// A run that cannot fit the memory it may use: a config error with its own
// exit code (6), so that bla-sweep can split an ensemble that does not fit.
class DoesNotFitError : public config::ConfigError {
 public:
  using config::ConfigError::ConfigError;
};

// Bytes the device offers: a CUDA device's memory, or the machine's RAM for the CPU.
double device_memory_bytes(const c10::Device& device);
// Bytes `config` may plan for on `device`: run.memory_limit_gb when set, else the device's.
double memory_limit_bytes(const config::Config& config, const c10::Device& device);
// What offers those bytes, for messages: "run.memory_limit_gb" or the device, e.g. "cuda:0".
std::string memory_limit_name(const config::Config& config, const c10::Device& device);

// Throws DoesNotFitError when `estimate` exceeds `available` bytes.
void check_memory_fits(const MemoryEstimate& estimate, double available, const std::string& where);

}  // namespace bla::train
