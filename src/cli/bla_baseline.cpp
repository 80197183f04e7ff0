// bla-baseline CONFIG [--set key.path=value ...] [--ngram 1,2,3] [--split test|validation|train]
//              [--max-examples N] [--out FILE.json]
// Scores the in-context n-gram predictors (src/bla/tasks/regbench_ngram.h) on
// a RegBench config's split, as bla-eval scores a model: the reference lines
// of a RegBench sweep's plots. Prints the result as JSON (and writes it with --out).
#include "bla/config/config.h"
#include "bla/tasks/regbench_ngram.h"
#include "bla/util/files.h"

#include "cli/arguments.h"
#include "cli/library_errors.h"
#include "cli/split_option.h"

#include <nlohmann/json.hpp>

#include <iostream>
#include <limits>

int main(int argc, char** argv) {
  const std::string program = "bla-baseline";
  CLI::App app{"bla-baseline: the in-context n-gram predictors on a RegBench config's data (no model, no GPU)."};
  std::string config_path, out, split_name = "test";
  std::vector<std::string> overrides;
  std::vector<int64_t> orders = {1, 2, 3};
  int64_t max_examples = 0;
  app.add_option("config", config_path, "a bla-train config with data.task: regbench")->required();
  app.add_option("--set", overrides, "override a config value, e.g. --set data.test_automata=100 (repeatable)");
  app.add_option("--ngram", orders, "orders of the predictors (default 1,2,3)")
      ->delimiter(',')
      ->check(bla::cli::IntegerIn(1, 64));
  bla::cli::add_split_option(app, split_name);
  app.add_option("--max-examples", max_examples, "score only the first N examples (default: the whole split)")
      ->check(bla::cli::IntegerIn(0, std::numeric_limits<int64_t>::max()));
  app.add_option("--out", out, "also write the JSON result to this file");
  app.footer("Exit codes: 0 done, 1 other error, 2 config or argument error.");
  if (int status = bla::cli::parse_arguments(app, program, argc, argv); status >= 0) return status;
  return bla::util::run_guarded(program, bla::cli::library_errors(), [&] {
    auto config = bla::config::load_config(config_path, overrides);
    auto task = bla::tasks::make_task(*config.data, config.run.seed);
    config.data->finish();
    const auto* regbench = dynamic_cast<const bla::tasks::RegbenchTask*>(task.get());
    if (regbench == nullptr) {
      throw bla::util::ArgumentError(config_path + ": data.task is " + task->name() +
                                     "; the n-gram predictors are defined for regbench only");
    }
    const auto split = bla::cli::split_of(split_name);
    if (task->num_examples(split) == 0) {
      throw bla::util::ArgumentError("--split " + split_name + ": this config has no " + split_name +
                                     " automata (data.validation_automata is 0)");
    }
    nlohmann::json result;
    result["config"] = config_path;
    result["overrides"] = overrides;
    result["task"] = task->name();
    result["split"] = split_name;
    for (int64_t n : orders) {
      result["predictors"]["ngram-" + std::to_string(n)] =
          bla::tasks::ngram_metrics(regbench->generator(), split, n, max_examples);
    }
    if (!out.empty()) bla::util::write_file_atomically(out, result.dump(2) + "\n");
    std::cout << result.dump(2) << std::endl;
    return 0;
  });
}
