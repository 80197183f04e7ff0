// The --split option of the programs that score a task's data (bla-eval,
// bla-baseline): its values, and the Split each names.
#pragma once

#include "bla/tasks/task.h"

#include <CLI/CLI.hpp>

#include <string>

namespace bla::cli {

inline CLI::Option* add_split_option(CLI::App& app, std::string& split_name) {
  return app.add_option("--split", split_name, "the split to score (validation: where the task has one)")
      ->check(CLI::IsMember({"test", "validation", "train"}));
}

inline tasks::Split split_of(const std::string& split_name) {
  return split_name == "train" ? tasks::Split::kTrain
         : split_name == "validation" ? tasks::Split::kValidation
                                      : tasks::Split::kTest;
}

}  // namespace bla::cli
