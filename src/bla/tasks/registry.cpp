#include "bla/config/section.h"
#include "bla/tasks/task.h"

#include <torch/torch.h>

namespace bla::tasks {

namespace {
struct TaskInfo {
  TaskSchema schema;
  TaskFactory make;
};

std::map<std::string, TaskInfo>& tasks() {
  static std::map<std::string, TaskInfo> registry;
  return registry;
}

const config::Schema& data_schema() {
  static const config::Schema schema(
      "data", "The task, and its keys (one of the sections below).",
      {config::required(config::choice_key("task", "", task_names(), "the task; its keys follow"))});
  return schema;
}
}  // namespace

void register_task(const std::string& name, TaskSchema schema, TaskFactory factory) {
  tasks()[name] = TaskInfo{schema, std::move(factory)};
}

std::vector<std::string> task_names() {
  std::vector<std::string> names;
  for (const auto& [name, info] : tasks()) names.push_back(name);
  return names;
}

std::vector<const config::Schema*> data_schemas() {
  std::vector<const config::Schema*> schemas{&data_schema()};
  for (const auto& [name, info] : tasks()) schemas.push_back(&info.schema());
  return schemas;
}

std::unique_ptr<Task> make_task(config::Section& data, uint64_t seed) {
  std::string name = data.choice(data_schema()["task"]);
  return tasks().at(name).make(data, seed);
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
