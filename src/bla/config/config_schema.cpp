// The declared keys of the run, model and train sections; their defaults are
// the members' initial values in config.h.
#include "bla/config/config.h"

#include <limits>

namespace bla::config {

namespace {
constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();
}  // namespace

const Schema& top_schema() {
  static const Schema schema("(top level)", "A config file is one YAML mapping with these sections.",
                             {value_key("run", "section", "", "name, output folder, seed, device"),
                              value_key("model", "section", "", "the network: width, depth, mixers"),
                              required(value_key("data", "section", "",
                                                 "the task and its data (`data.task` picks the keys)")),
                              value_key("train", "section", "", "optimisation, evaluation, checkpoints")});
  return schema;
}

const Schema& run_schema() {
  const RunConfig d;
  static const Schema schema(
      "run", "",
      {string_key("name", d.name, "run directory name under `run.out_dir` (no `/`)"),
       string_key("out_dir", d.out_dir, "where run directories go"),
       integer_key("seed", 0, 0, kMaxInt, "seeds parameters, data and data order"),
       string_key("device", d.device,
                  "`auto` (CUDA if present), `cpu`, `cuda`, `cuda:N` (checked against the devices present)"),
       integer_key("threads", d.threads, 0, 256, "CPU intra-op threads (0: LibTorch's default)"),
       real_key("dist_timeout_s", d.dist_timeout_s, 1, 86400,
                "distributed: rendezvous and collective time-out in seconds (docs/distributed.md)"),
       real_key("memory_limit_gb", d.memory_limit_gb, 0, 1 << 20,
                "memory a run may plan for in GiB (0: the device's); a run or ensemble estimated above it is "
                "refused (exit 6)")});
  return schema;
}

const Schema& model_schema() {
  const ModelConfig d;
  // Upper bounds far above any model this trainer is for, low enough that a
  // typo (an extra digit or two) is an error here rather than an allocation
  // that fails, or takes all memory, later.
  static const Schema schema(
      "model", "",
      {computed_default(integer_key("vocab_size", 0, 0, 1 << 20, "0: the task's vocabulary; else at least it"),
                        "0 (the task's)"),
       integer_key("d_model", d.d_model, 1, 1 << 14, "residual width"),
       integer_key("layers", d.layers, 1, 256, "blocks"),
       integer_key("heads", d.heads, 1, 1024, "default head count of every mixer; divides d_model"),
       choice_key("mlp", d.mlp, {"swiglu", "none"}, "the block's MLP: SwiGLU, or none (Zoology's MQAR block)"),
       real_key("mlp_ratio", d.mlp_ratio, 0.25, 64, "SwiGLU hidden = 2/3 * ratio * d_model, rounded up to 8"),
       integer_key("short_conv", d.short_conv, 0, 64,
                   "K > 0: a causal depthwise convolution of width K (with bias) on the normalised input of every "
                   "mixer, as in Zoology's MQAR models; its cache of K-1 inputs counts in the state"),
       choice_key("norm", "rmsnorm", {"rmsnorm"}, "pre-norm of every block"),
       real_key("norm_eps", d.norm_eps, 0, 1, "RMSNorm epsilon, of the blocks' norms and the mixers' output norms (GLA, GSA, Mamba2-like)"),
       boolean_key("tie_embeddings", d.tie_embeddings, "the LM head shares the embedding matrix"),
       real_key("init_std", d.init_std, 0, 1, "N(0, std) initialisation of projections"),
       required(value_key("mixer", "name or list", "",
                          "a mixer type (`bla`), or a list repeated over the layers (`[swa, bla, bla]`); an item may "
                          "be a mapping `{type: bla, slots: 16}` that overrides `model.mixers.<type>`")),
       value_key("mixers", "section", "", "per mixer type, a mapping of its keys (the `model.mixers.<type>` sections below)")});
  return schema;
}

const Schema& train_schema() {
  const TrainConfig d;
  static const Schema schema(
      "train", "",
      {integer_key("batch_size", d.batch_size, 1, 1 << 16, "global batch (examples)"),
       computed_default(integer_key("steps", 0, 0, kMaxInt, "optimizer steps; set this or `epochs`"), "0 (from epochs)"),
       real_key("epochs", 0, 0, 1e9, "passes over the task's training set; set this or `steps`"),
       choice_key("optimizer", d.optimizer, {"adamw"}, "AdamW; weight decay on matrices only"),
       real_key("lr", d.lr, 0, 10, "peak learning rate"),
       real_key("min_lr_ratio", d.min_lr_ratio, 0, 1, "the cosine schedule ends at lr * min_lr_ratio"),
       real_key("beta1", d.beta1, 0, 0.999999, "AdamW"),
       real_key("beta2", d.beta2, 0, 0.999999, "AdamW"),
       real_key("eps", d.eps, 0, 1, "AdamW"),
       real_key("weight_decay", d.weight_decay, 0, 10, "AdamW, on matrices"),
       choice_key("schedule", d.schedule, {"cosine", "constant"}, "learning-rate schedule after warm-up"),
       integer_key("warmup_steps", d.warmup_steps, 0, kMaxInt, "linear warm-up"),
       real_key("grad_clip", d.grad_clip, 0, 1e9, "global gradient-norm clip; 0 disables"),
       integer_key("grad_accum", d.grad_accum, 1, 1 << 16, "micro-batches per step (divides batch_size)"),
       choice_key("precision", d.precision, {"auto", "fp32", "bf16"},
                  "`auto`: bf16 autocast on CUDA, fp32 on the CPU"),
       integer_key("log_every", d.log_every, 1, kMaxInt, "steps between a progress line and a metrics.jsonl record"),
       integer_key("eval_every", d.eval_every, 0, kMaxInt, "steps between test-set evaluations (0: only at the end)"),
       integer_key("eval_examples", d.eval_examples, 0, kMaxInt, "examples per evaluation (0: the whole test set)"),
       integer_key("eval_batch_size", d.eval_batch_size, 0, 1 << 16, "0: batch_size"),
       integer_key("validation_every", d.validation_every, 0, kMaxInt,
                   "steps between evaluations on the validation split (held out from training), recorded as "
                   "`split: validation` in metrics.jsonl; 0: none"),
       string_key("early_stop_metric", d.early_stop_metric,
                  "\"\": train the whole budget; else a validation metric (e.g. `accuracy`) that ends the run once "
                  "it reaches `early_stop_at`; needs `validation_every`"),
       real_key("early_stop_at", d.early_stop_at, -1e30, 1e30,
                "the target: at least it, or at most it for `loss`, `tvd` and `perplexity`"),
       integer_key("checkpoint_every", d.checkpoint_every, 0, kMaxInt, "steps between checkpoints (0: only at the end)"),
       integer_key("keep_checkpoints", d.keep_checkpoints, 1, 1 << 20, "newest checkpoints kept"),
       choice_key("on_nonfinite", d.on_nonfinite, {"stop", "skip"},
                  "a non-finite loss or gradient: `stop` the run (exit 4), or `skip` the update (cancelled before it "
                  "applies, optimizer state untouched, counted in metrics.jsonl)"),
       integer_key("max_consecutive_skips", d.max_consecutive_skips, 1, int64_t{1} << 30,
                   "with `skip`: this many skipped updates in a row stop the run (exit 4)"),
       real_key("bucket_mb", d.bucket_mb, 0.001, 65536,
                "distributed: size of a gradient all-reduce bucket in MiB (docs/distributed.md)"),
       choice_key("cuda_graph", d.cuda_graph, {"auto", "on", "off"},
                  "`auto`: on CUDA (one process, fused optimizer) the whole step is captured in a CUDA graph after 3 "
                  "eager steps and replayed, every batch padded to one shape (RegBench's to the task's longest row); `on`: the "
                  "same, and an error where it cannot be"),
       choice_key("fused_optimizer", d.fused_optimizer, {"auto", "off"},
                  "`auto`: PyTorch's fused multi-tensor AdamW on CUDA (LibTorch >= 2.4); `off`: LibTorch's "
                  "torch::optim::AdamW (always on the CPU)"),
       choice_key("fused_head", d.fused_head, {"auto", "on", "off"},
                  "the LM head fused with cross-entropy in row chunks: `auto` where a batch's float32 logits would "
                  "exceed 8 GiB, `on` always, `off` never"),
       integer_key("prefetch", d.prefetch, 0, 64, "steps of batches built ahead on the feeder's threads (0: in the step)"),
       boolean_key("tensorboard", d.tensorboard, "write a TensorBoard event file into the run directory"),
       integer_key("profile_steps", d.profile_steps, 0, 1000,
                   "steps run under LibTorch's profiler: `profile.txt` in the run directory lists the GPU's kernels "
                   "and the host's operators by time, `profile.json` is a Chrome trace where LibTorch has Kineto "
                   "(0: none; docs/performance.md, \"Profiling a run\")"),
       integer_key("profile_start", d.profile_start, 0, kMaxInt,
                   "steps done before profiling starts (after the CUDA graph's capture, which follows step 3)")});
  return schema;
}

}  // namespace bla::config
