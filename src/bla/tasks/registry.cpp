#include "bla/config/section.h"
#include "bla/tasks/task.h"

#include <torch/torch.h>

namespace bla::tasks {

namespace {
std::map<std::string, TaskFactory>& factories() {
  static std::map<std::string, TaskFactory> registry;
  return registry;
}
}  // namespace

void register_task(const std::string& name, TaskFactory factory) { factories()[name] = std::move(factory); }

std::vector<std::string> task_names() {
  std::vector<std::string> names;
  for (const auto& [name, factory] : factories()) names.push_back(name);
  return names;
}

std::unique_ptr<Task> make_task(config::Section& data, uint64_t seed) {
  std::string name = data.choice("task", "", task_names());
  return factories().at(name)(data, seed);
}

void Task::score(const Batch& batch, const at::Tensor& logits, EvalTotals& totals) const {
  auto mask = batch.targets.ne(kIgnoreIndex);
  auto targets = batch.targets.masked_select(mask).to(logits.device());
  auto correct = logits.argmax(-1).eq(targets).sum().item<int64_t>();
  totals.add("correct", static_cast<double>(correct));
  totals.add("count", static_cast<double>(targets.numel()));
}

std::map<std::string, double> Task::metrics(const EvalTotals& totals) const {
  double count = totals.sums.count("count") ? totals.sums.at("count") : 0.0;
  double correct = totals.sums.count("correct") ? totals.sums.at("correct") : 0.0;
  return {{"accuracy", count > 0 ? correct / count : 0.0}};
}

}  // namespace bla::tasks
