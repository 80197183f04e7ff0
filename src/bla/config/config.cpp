#include "bla/config/config.h"

#include "bla/config/mixer_types.h"

#include <sys/stat.h>
#include <torch/cuda.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <sstream>

namespace bla::config {

namespace {
// Bounds of a tree a config can be: deeper or bigger is a mistake (or an alias bomb).
constexpr int kMaxDepth = 64;
constexpr int64_t kMaxNodes = 1'000'000;
constexpr int64_t kMaxConfigBytes = int64_t{16} << 20;

// The length of the UTF-8 sequence at s[i], or 0 when it is not valid UTF-8.
size_t utf8_sequence(const std::string& s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  uint32_t code = n == 1 ? c : n == 2 ? (c & 0x1fu) : n == 3 ? (c & 0x0fu) : (c & 0x07u);
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
    code = (code << 6) | (byte(i + k) & 0x3fu);
  }
  const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
  if (code < least[n] || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return 0;  // overlong, surrogate
  return n;
}

bool is_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_sequence(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// Rejects what yaml-cpp accepts but a config must not hold, before any value
// is read: a key given twice in one mapping (yaml-cpp keeps both, and readers
// would see only the first), a key without a value, a key that is a list or
// mapping ('? [a, b]'), text that is not UTF-8 (the run's config is stored as
// JSON in every checkpoint), and trees too deep or too big. `where` turns a
// node's mark into "file, line N" or "--set ..."; `lines` says whether marks
// are lines of a file worth naming.
class TreeCheck {
 public:
  TreeCheck(std::function<std::string(const YAML::Node&)> where, bool lines)
      : where_(std::move(where)), lines_(lines) {}

  void check(const YAML::Node& node, const std::string& path, int depth = 0) {
    if (++nodes_ > kMaxNodes) fail(node, path, "the config has more than " + std::to_string(kMaxNodes) + " values (an alias loop?)");
    if (depth > kMaxDepth) fail(node, path, "nested more than " + std::to_string(kMaxDepth) + " levels deep");
    if (node.IsScalar() && !is_utf8(node.Scalar())) fail(node, path, "the value is not valid UTF-8 text");
    if (node.IsSequence()) {
      size_t i = 0;
      for (const auto& item : node) {
        const std::string item_path = path + "[" + std::to_string(i++) + "]";
        if (item.IsNull()) fail(item, item_path, "an empty entry (null); give a value or remove it");
        check(item, item_path, depth + 1);
      }
    } else if (node.IsMap()) {
      std::map<std::string, int> first_line;
      for (const auto& entry : node) {
        if (!entry.first.IsScalar()) {
          fail(entry.first, path, "a key must be a plain name, not a list or mapping ('? [a, b]' keys are not supported)");
        }
        const std::string& key = entry.first.Scalar();
        const std::string key_path = path.empty() ? key : path + "." + key;
        if (!is_utf8(key)) fail(entry.first, path, "a key is not valid UTF-8 text");
        if (key.empty()) fail(entry.first, path, "an empty key");
        const int line = entry.first.Mark().line;
        if (auto seen = first_line.find(key); seen != first_line.end()) {
          fail(entry.first, key_path,
               "duplicate key '" + key_path + "'" +
                   (lines_ && seen->second >= 0 ? " (first given on line " + std::to_string(seen->second + 1) + ")" : "") +
                   "; give each key once");
        }
        first_line.emplace(key, line);
        if (!entry.second.IsDefined() || entry.second.IsNull()) {
          fail(entry.first, key_path, "has no value; give one, or remove the key to use the default");
        }
        check(entry.second, key_path, depth + 1);
      }
    }
  }

 private:
  [[noreturn]] void fail(const YAML::Node& at, const std::string& path, const std::string& message) const {
    throw ConfigError(where_(at) + ": " + (path.empty() ? "" : path + ": ") + message);
  }
  std::function<std::string(const YAML::Node&)> where_;
  bool lines_;
  int64_t nodes_ = 0;
};

// "file, line N" for a node of the file's tree.
std::string file_where(const std::string& file, const YAML::Node& node) {
  if (node.IsDefined() && node.Mark().line >= 0) return file + ", line " + std::to_string(node.Mark().line + 1);
  return file;
}

void apply_override(YAML::Node root, const std::string& path, const std::string& value_text) {
  const std::string where = "--set " + path + "=" + value_text;
  std::vector<std::string> keys;
  std::stringstream parts(path);
  for (std::string key; std::getline(parts, key, '.');) keys.push_back(key);
  if (keys.empty() || path.back() == '.' || std::find(keys.begin(), keys.end(), "") != keys.end() || !is_utf8(path)) {
    throw ConfigError(where + ": '" + path + "' is not a key path; expected names joined by dots, e.g. train.lr");
  }
  YAML::Node value;
  try {
    std::vector<YAML::Node> documents = YAML::LoadAll(value_text);
    if (documents.size() > 1) throw ConfigError(where + ": the value holds several YAML documents ('---')");
    if (!documents.empty()) value = documents.front();
  } catch (const YAML::Exception& e) {
    throw ConfigError(where + ": the value is not valid YAML (" + e.msg + ")");
  }
  if (!value.IsDefined() || value.IsNull()) {
    throw ConfigError(where + ": no value; give one (to use the default, leave the --set out)");
  }
  TreeCheck([&](const YAML::Node&) { return where; }, false).check(value, path);
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
  if (!model.has("mixer")) {
    model.fail("mixer", "is required: a mixer type (" + [] {
      std::string names;
      for (const auto& n : mixer_types()) names += (names.empty() ? "" : ", ") + n;
      return names;
    }() + ") or a list of them, one per layer");
  }
  YAML::Node spec = model.raw(model_schema()["mixer"]);
  Section per_type = model.child("mixers");
  std::vector<YAML::Node> items;
  if (spec.IsSequence()) {
    for (const auto& item : spec) items.push_back(item);
    if (items.empty() || layers % static_cast<int64_t>(items.size()) != 0) {
      model.fail("mixer", "has " + std::to_string(items.size()) + " entries, which does not divide layers (" +
                              std::to_string(layers) + "); give one entry per layer or a pattern that repeats evenly");
    }
  } else {
    items.push_back(spec);
  }
  std::vector<MixerSpec> result;
  std::vector<std::shared_ptr<Section>> by_item(items.size());
  YAML::Node resolved_list(YAML::NodeType::Sequence);
  for (size_t i = 0; i < items.size(); ++i) {
    const YAML::Node& item = items[i];
    std::string type;
    YAML::Node params;
    std::string path;
    if (item.IsScalar()) {
      type = item.Scalar();
    } else if (item.IsMap() && item["type"] && item["type"].IsScalar()) {
      type = item["type"].Scalar();
    } else if (item.IsMap() && item["type"]) {
      model.fail("mixer", "entry " + std::to_string(i) + ": 'type' must be a mixer type name, not a list or mapping");
    } else {
      model.fail("mixer", "each entry must be a mixer type or a mapping with a 'type' key");
    }
    check_mixer_type(type, model, "mixer");
    YAML::Node defaults = per_type.has(type) ? per_type.raw(value_key(type, "section", "", "")) : YAML::Node(YAML::NodeType::Map);
    if (defaults.IsDefined() && !defaults.IsNull() && !defaults.IsMap()) per_type.fail(type, "must be a mapping of parameters");
    if (item.IsMap()) {
      params = YAML::Clone(defaults.IsMap() ? defaults : YAML::Node(YAML::NodeType::Map));
      for (const auto& kv : item) {
        if (kv.first.Scalar() != "type") params[kv.first.Scalar()] = kv.second;
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
    for (const auto& kv : model.raw(model_schema()["mixers"])) {
      const std::string& name = kv.first.Scalar();
      check_mixer_type(name, per_type, name);
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

  const Schema& R = run_schema();
  Section run = top.child("run");
  config.run.name = run.string(R["name"]);
  if (config.run.name.empty() || config.run.name == "." || config.run.name == ".." ||
      config.run.name.find_first_of(std::string("/\0", 2)) != std::string::npos) {
    run.fail("name", "'" + config.run.name + "' cannot name a folder: give a non-empty name without '/' (e.g. mqar_bla)");
  }
  config.run.out_dir = run.string(R["out_dir"]);
  if (config.run.out_dir.empty() || config.run.out_dir.find('\0') != std::string::npos) {
    run.fail("out_dir", "must be a folder path, e.g. runs");
  }
  config.run.seed = static_cast<uint64_t>(run.integer(R["seed"]));
  config.run.device = run.string(R["device"]);
  if (auto problem = device_problem(config.run.device, static_cast<int64_t>(torch::cuda::device_count()));
      !problem.empty()) {
    run.fail("device", problem);
  }
  config.run.threads = run.integer(R["threads"]);
  config.run.dist_timeout_s = run.real(R["dist_timeout_s"]);
  config.run.memory_limit_gb = run.real(R["memory_limit_gb"]);
  run.finish();

  const Schema& M = model_schema();
  Section model = top.child("model");
  auto& m = config.model;
  m.vocab_size = model.integer(M["vocab_size"]);
  m.d_model = model.integer(M["d_model"]);
  m.layers = model.integer(M["layers"]);
  m.heads = model.integer(M["heads"]);
  if (m.d_model % m.heads != 0) {
    model.fail("heads", "d_model (" + std::to_string(m.d_model) + ") must be divisible by heads (" +
                            std::to_string(m.heads) + ")");
  }
  m.mlp = model.choice(M["mlp"]);
  m.mlp_ratio = model.real(M["mlp_ratio"]);
  m.short_conv = model.integer(M["short_conv"]);
  model.choice(M["norm"]);
  m.norm_eps = model.real(M["norm_eps"]);
  m.tie_embeddings = model.boolean(M["tie_embeddings"]);
  m.init_std = model.real(M["init_std"]);
  m.mixers = read_mixers(model, m.layers);
  model.finish();

  config.data = std::make_shared<Section>(top.child("data"));
  if (!config.data->has("task")) config.data->fail("task", "is required (for example: task: mqar)");

  const Schema& T = train_schema();
  Section train = top.child("train");
  auto& t = config.train;
  t.batch_size = train.integer(T["batch_size"]);
  t.steps = train.integer(T["steps"]);
  t.epochs = train.real(T["epochs"]);
  if (t.steps == 0 && t.epochs == 0) train.fail("steps", "set train.steps or train.epochs (both are 0)");
  if (t.steps > 0 && t.epochs > 0) train.fail("epochs", "set either train.steps or train.epochs, not both");
  t.optimizer = train.choice(T["optimizer"]);
  t.lr = train.real(T["lr"]);
  t.min_lr_ratio = train.real(T["min_lr_ratio"]);
  t.beta1 = train.real(T["beta1"]);
  t.beta2 = train.real(T["beta2"]);
  t.eps = train.real(T["eps"]);
  t.weight_decay = train.real(T["weight_decay"]);
  t.schedule = train.choice(T["schedule"]);
  t.warmup_steps = train.integer(T["warmup_steps"]);
  t.grad_clip = train.real(T["grad_clip"]);
  t.grad_accum = train.integer(T["grad_accum"]);
  if (t.batch_size % t.grad_accum != 0) {
    train.fail("grad_accum", "batch_size (" + std::to_string(t.batch_size) + ") must be divisible by grad_accum (" +
                                 std::to_string(t.grad_accum) + ")");
  }
  t.precision = train.choice(T["precision"]);
  t.log_every = train.integer(T["log_every"]);
  t.eval_every = train.integer(T["eval_every"]);
  t.eval_examples = train.integer(T["eval_examples"]);
  t.eval_batch_size = train.integer(T["eval_batch_size"]);
  t.validation_every = train.integer(T["validation_every"]);
  t.early_stop_metric = train.string(T["early_stop_metric"]);
  t.early_stop_at = train.real(T["early_stop_at"]);
  if (!t.early_stop_metric.empty() && t.validation_every == 0) {
    train.fail("early_stop_metric", "needs validation results to stop on: set train.validation_every (e.g. 100) and "
                                    "the task's validation examples (e.g. data.validation_examples: 1000)");
  }
  t.checkpoint_every = train.integer(T["checkpoint_every"]);
  t.keep_checkpoints = train.integer(T["keep_checkpoints"]);
  t.on_nonfinite = train.choice(T["on_nonfinite"]);
  t.max_consecutive_skips = train.integer(T["max_consecutive_skips"]);
  t.bucket_mb = train.real(T["bucket_mb"]);
  t.cuda_graph = train.choice(T["cuda_graph"]);
  t.fused_optimizer = train.choice(T["fused_optimizer"]);
  t.fused_head = train.choice(T["fused_head"]);
  t.prefetch = train.integer(T["prefetch"]);
  t.tensorboard = train.boolean(T["tensorboard"]);
  t.profile_steps = train.integer(T["profile_steps"]);
  t.profile_start = train.integer(T["profile_start"]);
  train.finish();

  top.finish();
  return config;
}
}  // namespace

std::string device_problem(const std::string& device, int64_t cuda_devices) {
  const std::string accepted = "accepted: auto, cpu, cuda, cuda:N with 0 <= N < the number of CUDA devices (" +
                               std::to_string(cuda_devices) + " here)";
  if (device == "auto" || device == "cpu" || device == "cuda") return "";
  const std::string prefix = "cuda:";
  if (device.rfind(prefix, 0) == 0) {
    const std::string index = device.substr(prefix.size());
    if (!index.empty() && index.size() <= 6 && index.find_first_not_of("0123456789") == std::string::npos) {
      if (std::stoll(index) < cuda_devices) return "";
      return "'" + device + "' names CUDA device " + index + ", but this machine has " + std::to_string(cuda_devices) +
             " CUDA device" + (cuda_devices == 1 ? "" : "s") + "; " + accepted;
    }
  }
  return "'" + device + "' is not a device; " + accepted;
}

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
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(name + (e.mark.line >= 0 ? ", line " + std::to_string(e.mark.line + 1) : "") +
                      ": not valid YAML: " + e.msg);
  }
  if (documents.size() > 1) {
    throw ConfigError(file_where(name, documents[1]) +
                      ": a second YAML document ('---'); a config is one document: merge them or remove the '---'");
  }
  if (!documents.empty()) root = documents.front();
  if (!root || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  TreeCheck([&](const YAML::Node& node) { return file_where(name, node); }, true).check(root, "");
  for (const auto& assignment : overrides) {
    auto [path, value] = parse_override(assignment);
    apply_override(root, path, value);
    source->overrides[path] = value;
  }
  return build(root, source);
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  // A config is a small text file: refuse a folder, a device (/dev/zero would
  // be read until memory runs out) or anything huge before reading.
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0) {
    if (S_ISDIR(info.st_mode)) throw ConfigError(path + ": is a folder, not a config file");
    if (!S_ISREG(info.st_mode)) throw ConfigError(path + ": is not a regular file (a device, pipe or socket), not a config file");
    if (info.st_size > kMaxConfigBytes) {
      throw ConfigError(path + ": is " + std::to_string(info.st_size) + " bytes; a config is a YAML file of at most " +
                        std::to_string(kMaxConfigBytes) + " bytes");
    }
  }
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
