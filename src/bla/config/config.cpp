#include "bla/config/config.h"

#include "bla/mixers/mixer.h"

#include <fstream>
#include <limits>
#include <sstream>

namespace bla::config {

namespace {
constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();

void apply_override(YAML::Node root, const std::string& path, const std::string& value_text) {
  std::vector<std::string> keys;
  std::stringstream parts(path);
  for (std::string key; std::getline(parts, key, '.');) keys.push_back(key);
  YAML::Node value;
  try {
    value = YAML::Load(value_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError("--set " + path + "=" + value_text + ": the value is not valid YAML (" + e.msg + ")");
  }
  // yaml-cpp nodes are handles: walk down by reassigning copies of handles.
  std::vector<YAML::Node> chain{root};
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    YAML::Node next = chain.back()[keys[i]];
    if (!next || next.IsNull()) {
      chain.back()[keys[i]] = YAML::Node(YAML::NodeType::Map);
      next = chain.back()[keys[i]];
    } else if (!next.IsMap()) {
      throw ConfigError("--set " + path + "=" + value_text + ": '" + keys[i] + "' is not a section");
    }
    chain.push_back(next);
  }
  chain.back()[keys.back()] = value;
}

// model.mixer: a type name, or a list cycled over the layers whose items are
// type names or mappings {type: ..., key: value} that override model.mixers.<type>.
std::vector<MixerSpec> read_mixers(Section& model, int64_t layers) {
  YAML::Node spec = model.raw("mixer");
  Section per_type = model.child("mixers");
  std::vector<YAML::Node> items;
  if (!spec) {
    model.fail("mixer", "is required: a mixer type (" + [] {
      std::string names;
      for (const auto& n : mixers::MixerRegistry::instance().names()) names += (names.empty() ? "" : ", ") + n;
      return names;
    }() + ") or a list of them, one per layer");
  }
  if (spec.IsSequence()) {
    for (const auto& item : spec) items.push_back(item);
    if (items.empty() || layers % static_cast<int64_t>(items.size()) != 0) {
      model.fail("mixer", "has " + std::to_string(items.size()) + " entries, which does not divide layers (" +
                              std::to_string(layers) + "); give one entry per layer or a pattern that repeats evenly");
    }
  } else {
    items.push_back(spec);
  }
  const auto& registry = mixers::MixerRegistry::instance();
  std::vector<MixerSpec> result;
  std::vector<std::shared_ptr<Section>> by_item(items.size());
  YAML::Node resolved_list(YAML::NodeType::Sequence);
  for (size_t i = 0; i < items.size(); ++i) {
    const YAML::Node& item = items[i];
    std::string type;
    YAML::Node params;
    std::string path;
    if (item.IsScalar()) {
      type = item.as<std::string>();
    } else if (item.IsMap() && item["type"]) {
      type = item["type"].as<std::string>();
    } else {
      model.fail("mixer", "each entry must be a mixer type or a mapping with a 'type' key");
    }
    registry.get(type, model, "mixer");
    YAML::Node defaults = per_type.has(type) ? per_type.raw(type) : YAML::Node(YAML::NodeType::Map);
    if (defaults.IsDefined() && !defaults.IsNull() && !defaults.IsMap()) per_type.fail(type, "must be a mapping of parameters");
    if (item.IsMap()) {
      params = YAML::Clone(defaults.IsMap() ? defaults : YAML::Node(YAML::NodeType::Map));
      for (const auto& kv : item) {
        if (kv.first.as<std::string>() != "type") params[kv.first.as<std::string>()] = kv.second;
      }
      path = model.key_path("mixer") + "[" + std::to_string(i) + "]";
    } else {
      params = defaults.IsMap() ? defaults : YAML::Node(YAML::NodeType::Map);
      path = per_type.key_path(type);
    }
    YAML::Node resolved(YAML::NodeType::Map);
    resolved["type"] = type;
    resolved_list.push_back(resolved);
    by_item[i] = std::make_shared<Section>(params, path, model.source(), resolved);
  }
  model.resolved()["mixer"] = resolved_list;
  model.resolved().remove("mixers");
  // Every key of model.mixers must name a known type.
  if (model.has("mixers")) {
    for (const auto& kv : model.raw("mixers")) {
      auto name = kv.first.as<std::string>();
      registry.get(name, per_type, name);
      per_type.accept(name);
    }
  }
  per_type.finish();
  for (int64_t layer = 0; layer < layers; ++layer) {
    size_t i = static_cast<size_t>(layer) % items.size();
    result.push_back({resolved_list[i]["type"].as<std::string>(), by_item[i]});
  }
  return result;
}

Config build(YAML::Node root, std::shared_ptr<ConfigSource> source) {
  if (!root.IsMap()) throw ConfigError(source->file + ": a config is a mapping with sections run, model, data, train");
  Config config;
  config.source = source;
  config.root = root;
  config.resolved = YAML::Node(YAML::NodeType::Map);
  Section top(root, "", source, config.resolved);

  Section run = top.child("run");
  config.run.name = run.string("name", config.run.name);
  config.run.out_dir = run.string("out_dir", config.run.out_dir);
  config.run.seed = static_cast<uint64_t>(run.integer("seed", 0, 0, kMaxInt));
  config.run.device = run.string("device", config.run.device);
  if (config.run.device != "auto" && config.run.device != "cpu" && config.run.device.rfind("cuda", 0) != 0) {
    run.fail("device", "'" + config.run.device + "' is not one of: auto, cpu, cuda, cuda:N");
  }
  config.run.threads = run.integer("threads", 0, 0, 1024);
  config.run.dist_timeout_s = run.real("dist_timeout_s", config.run.dist_timeout_s, 1, 86400);
  run.finish();

  Section model = top.child("model");
  auto& m = config.model;
  m.vocab_size = model.integer("vocab_size", 0, 0, 1 << 24);
  m.d_model = model.integer("d_model", m.d_model, 1, 1 << 16);
  m.layers = model.integer("layers", m.layers, 1, 1024);
  m.heads = model.integer("heads", m.heads, 1, 1024);
  if (m.d_model % m.heads != 0) {
    model.fail("heads", "d_model (" + std::to_string(m.d_model) + ") must be divisible by heads (" +
                            std::to_string(m.heads) + ")");
  }
  m.mlp = model.choice("mlp", m.mlp, {"swiglu", "none"});
  m.mlp_ratio = model.real("mlp_ratio", m.mlp_ratio, 0.25, 64);
  model.choice("norm", "rmsnorm", {"rmsnorm"});
  m.norm_eps = model.real("norm_eps", m.norm_eps, 0, 1);
  m.tie_embeddings = model.boolean("tie_embeddings", m.tie_embeddings);
  m.init_std = model.real("init_std", m.init_std, 0, 1);
  m.mixers = read_mixers(model, m.layers);
  model.finish();

  config.data = std::make_shared<Section>(top.child("data"));
  if (!config.data->has("task")) config.data->fail("task", "is required (for example: task: mqar)");

  Section train = top.child("train");
  auto& t = config.train;
  t.batch_size = train.integer("batch_size", t.batch_size, 1, 1 << 24);
  t.steps = train.integer("steps", 0, 0, kMaxInt);
  t.epochs = train.real("epochs", 0, 0, 1e9);
  if (t.steps == 0 && t.epochs == 0) train.fail("steps", "set train.steps or train.epochs (both are 0)");
  if (t.steps > 0 && t.epochs > 0) train.fail("epochs", "set either train.steps or train.epochs, not both");
  t.optimizer = train.choice("optimizer", t.optimizer, {"adamw"});
  t.lr = train.real("lr", t.lr, 0, 10);
  t.min_lr_ratio = train.real("min_lr_ratio", t.min_lr_ratio, 0, 1);
  t.beta1 = train.real("beta1", t.beta1, 0, 0.999999);
  t.beta2 = train.real("beta2", t.beta2, 0, 0.999999);
  t.eps = train.real("eps", t.eps, 0, 1);
  t.weight_decay = train.real("weight_decay", t.weight_decay, 0, 10);
  t.schedule = train.choice("schedule", t.schedule, {"cosine", "constant"});
  t.warmup_steps = train.integer("warmup_steps", t.warmup_steps, 0, kMaxInt);
  t.grad_clip = train.real("grad_clip", t.grad_clip, 0, 1e9);
  t.grad_accum = train.integer("grad_accum", t.grad_accum, 1, 1 << 16);
  if (t.batch_size % t.grad_accum != 0) {
    train.fail("grad_accum", "batch_size (" + std::to_string(t.batch_size) + ") must be divisible by grad_accum (" +
                                 std::to_string(t.grad_accum) + ")");
  }
  t.precision = train.choice("precision", t.precision, {"auto", "fp32", "bf16"});
  t.log_every = train.integer("log_every", t.log_every, 1, kMaxInt);
  t.eval_every = train.integer("eval_every", t.eval_every, 0, kMaxInt);
  t.eval_examples = train.integer("eval_examples", t.eval_examples, 0, kMaxInt);
  t.eval_batch_size = train.integer("eval_batch_size", t.eval_batch_size, 0, 1 << 24);
  t.checkpoint_every = train.integer("checkpoint_every", t.checkpoint_every, 0, kMaxInt);
  t.keep_checkpoints = train.integer("keep_checkpoints", t.keep_checkpoints, 1, 1 << 20);
  t.on_nonfinite = train.choice("on_nonfinite", t.on_nonfinite, {"stop", "skip"});
  t.bucket_mb = train.real("bucket_mb", t.bucket_mb, 0.001, 65536);
  t.cuda_graph = train.choice("cuda_graph", t.cuda_graph, {"auto", "on", "off"});
  t.fused_optimizer = train.choice("fused_optimizer", t.fused_optimizer, {"auto", "off"});
  t.fused_head = train.choice("fused_head", t.fused_head, {"auto", "off"});
  t.prefetch = train.integer("prefetch", t.prefetch, 0, 64);
  t.tensorboard = train.boolean("tensorboard", t.tensorboard);
  train.finish();

  top.finish();
  return config;
}
}  // namespace

std::pair<std::string, std::string> parse_override(const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw ConfigError("--set " + assignment + ": expected key.path=value, for example --set train.lr=3e-4");
  }
  return {assignment.substr(0, eq), assignment.substr(eq + 1)};
}

Config parse_config(const std::string& yaml_text, const std::string& name, const std::vector<std::string>& overrides) {
  auto source = std::make_shared<ConfigSource>();
  source->file = name;
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(name + ", line " + std::to_string(e.mark.line + 1) + ": not valid YAML: " + e.msg);
  }
  if (!root || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  for (const auto& assignment : overrides) {
    auto [path, value] = parse_override(assignment);
    apply_override(root, path, value);
    source->overrides[path] = value;
  }
  return build(root, source);
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot open the config file (check the path)");
  std::stringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), path, overrides);
}

void Config::finish_deferred_sections() const {
  data->finish();
  for (const auto& spec : model.mixers) spec.params->finish();
}

std::string Config::resolved_yaml() const {
  YAML::Emitter out;
  out << resolved;
  return std::string(out.c_str()) + "\n";
}

}  // namespace bla::config
