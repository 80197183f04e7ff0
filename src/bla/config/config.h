// The typed run configuration: sections run, model, data, train.
//
// load_config reads a YAML file, applies --set overrides, and checks every
// key of run/model/train. The data section and each layer's mixer parameters
// are read by the task and mixer factories (their keys depend on the type
// chosen); their Sections are kept here and finished once the factories ran.
#pragma once

#include "bla/config/section.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace bla::config {

struct RunConfig {
  std::string name = "run";
  std::string out_dir = "runs";
  uint64_t seed = 0;
  std::string device = "auto";  // auto | cpu | cuda | cuda:N
  int64_t threads = 0;          // CPU intra-op threads; 0 = LibTorch's default
  double dist_timeout_s = 300;  // distributed: rendezvous and collective time-out (docs/distributed.md)
  double memory_limit_gb = 0;   // memory the run may plan for (GiB); 0: the device's (a GPU's memory, else the RAM)
};

// One layer's mixer: its type and the section its parameters are read from.
struct MixerSpec {
  std::string type;
  std::shared_ptr<Section> params;
};

struct ModelConfig {
  int64_t vocab_size = 0;  // 0: the task's vocabulary
  int64_t d_model = 64;
  int64_t layers = 2;
  int64_t heads = 4;
  std::string mlp = "swiglu";  // swiglu | none
  double mlp_ratio = 4.0;      // hidden size = round(mlp_ratio * d_model * 2/3) for SwiGLU
  int64_t short_conv = 0;      // 0: none; K: a causal depthwise convolution of width K before every mixer
  double norm_eps = 1e-5;
  bool tie_embeddings = true;
  double init_std = 0.02;
  std::vector<MixerSpec> mixers;  // one per layer
};

struct TrainConfig {
  int64_t batch_size = 64;
  int64_t steps = 0;   // if 0, derived from epochs
  double epochs = 0;   // passes over the task's training set
  std::string optimizer = "adamw";
  double lr = 1e-3;
  double min_lr_ratio = 0.1;  // cosine ends at lr * min_lr_ratio
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  std::string schedule = "cosine";  // cosine | constant
  int64_t warmup_steps = 0;
  double grad_clip = 1.0;  // 0 disables
  int64_t grad_accum = 1;
  std::string precision = "auto";  // auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16
  int64_t log_every = 10;
  int64_t eval_every = 0;  // 0: only at the end
  int64_t eval_examples = 0;  // 0: the whole test set
  int64_t eval_batch_size = 0;  // 0: batch_size
  int64_t validation_every = 0;  // steps between evaluations on the validation split (0: none)
  std::string early_stop_metric;  // "": train the whole budget; else stop once this validation metric reaches early_stop_at
  double early_stop_at = 0;       // at least this (at most, for loss, tvd and perplexity)
  int64_t checkpoint_every = 0;  // 0: only at the end
  int64_t keep_checkpoints = 2;
  std::string on_nonfinite = "stop";  // stop | skip
  int64_t max_consecutive_skips = 10;  // skip: this many cancelled updates in a row stop the run
  double bucket_mb = 25;  // distributed: size of a gradient all-reduce bucket (docs/distributed.md)
  std::string cuda_graph = "auto";       // auto | on | off: capture the whole step in a CUDA graph
  std::string fused_optimizer = "auto";  // auto | off: PyTorch's fused multi-tensor AdamW on CUDA
  std::string fused_head = "auto";       // auto | on | off: LM head fused with cross-entropy, in row chunks
  int64_t prefetch = 2;                  // steps of batches built ahead on the feeder's threads (0: in the step)
  bool tensorboard = true;               // TensorBoard event file in the run directory
  int64_t profile_steps = 0;             // steps profiled into profile.txt (0: none)
  int64_t profile_start = 10;            // steps done before profiling starts
};

struct Config {
  RunConfig run;
  ModelConfig model;
  TrainConfig train;
  std::shared_ptr<Section> data;  // read by the task factory
  std::shared_ptr<ConfigSource> source;
  YAML::Node root;      // the tree as loaded, overrides applied
  YAML::Node resolved;  // every value read, defaults included

  // Checks that every key of the data and mixer sections was understood.
  void finish_deferred_sections() const;
  // The resolved config as YAML text (written to the run directory).
  std::string resolved_yaml() const;
};

// The declared keys of the top level and of the run, model and train
// sections (config_schema.cpp). The data section's keys are declared by each
// task, a mixer's by each mixer (their registries hold the schemas).
const Schema& top_schema();
const Schema& run_schema();
const Schema& model_schema();
const Schema& train_schema();

// "" when `device` is a run.device value for a machine with `cuda_devices`
// CUDA devices (auto, cpu, cuda, cuda:N with 0 <= N < cuda_devices), else
// what is wrong and what is accepted. Plain cuda is checked when the run
// starts (it needs a device only then; a config may be read on another machine).
std::string device_problem(const std::string& device, int64_t cuda_devices);

// Splits "a.b.c=value" into its path and value; throws ConfigError on bad syntax.
std::pair<std::string, std::string> parse_override(const std::string& assignment);

// Loads `path` and applies the overrides ("key.path=value" each, value in YAML syntax).
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// Same, from YAML text (`name` stands for the file in messages).
Config parse_config(const std::string& yaml_text, const std::string& name,
                    const std::vector<std::string>& overrides = {});

}  // namespace bla::config
