#include "bla/sweep/results_csv.h"

#include <set>
#include <sstream>

namespace bla::sweep {

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

namespace {

// A summary value as CSV text: strings bare, numbers as JSON writes them.
std::string text_of(const nlohmann::json& value) {
  if (value.is_null()) return "";
  if (value.is_string()) return value.get<std::string>();
  return value.dump();
}

const nlohmann::json& at_path(const nlohmann::json& summary, std::initializer_list<const char*> path) {
  static const nlohmann::json null;
  const nlohmann::json* node = &summary;
  for (const char* key : path) {
    if (!node->is_object() || !node->contains(key)) return null;
    node = &(*node)[key];
  }
  return *node;
}

}  // namespace

std::string results_csv(const Grid& grid, const std::vector<PointOutcome>& outcomes) {
  // The test metrics, then the validation metrics (runs with a validation split), as the summaries hold them.
  std::set<std::string> metrics, validation;
  for (const auto& outcome : outcomes) {
    for (auto [section, names] : {std::pair{"test", &metrics}, std::pair{"validation", &validation}}) {
      const auto& values = at_path(outcome.summary, {section});
      if (values.is_object()) {
        for (const auto& item : values.items()) names->insert(item.key());
      }
    }
  }
  std::vector<std::string> header = {"name", "group", "status", "action", "exit_code"};
  header.insert(header.end(), grid.columns.begin(), grid.columns.end());
  header.insert(header.end(), {"task", "steps"});
  for (const auto& m : metrics) header.push_back("test_" + m);
  for (const auto& m : validation) header.push_back("validation_" + m);
  header.insert(header.end(), {"parameters", "state_total", "state_per_layer", "context", "wall_time_s", "device",
                               "run_dir", "error"});

  std::ostringstream out;
  auto write_row = [&out](const std::vector<std::string>& fields) {
    for (size_t i = 0; i < fields.size(); ++i) out << (i ? "," : "") << csv_field(fields[i]);
    out << "\n";
  };
  write_row(header);
  for (size_t i = 0; i < grid.points.size(); ++i) {
    const Point& point = grid.points[i];
    const PointOutcome& outcome = outcomes.at(i);
    const nlohmann::json& s = outcome.summary;
    std::vector<std::string> row = {point.name, point.group, outcome.status, outcome.action,
                                    outcome.exit_code >= 0 ? std::to_string(outcome.exit_code) : ""};
    for (const auto& column : grid.columns) row.push_back(point.value(column));
    row.push_back(text_of(at_path(s, {"task"})));
    row.push_back(text_of(at_path(s, {"steps"})));
    for (const auto& m : metrics) row.push_back(text_of(at_path(s, {"test", m.c_str()})));
    for (const auto& m : validation) row.push_back(text_of(at_path(s, {"validation", m.c_str()})));
    row.push_back(text_of(at_path(s, {"parameters"})));
    row.push_back(text_of(at_path(s, {"state", "total_numel"})));
    std::string per_layer;
    const auto& layers = at_path(s, {"state", "per_layer"});
    if (layers.is_array()) {
      for (const auto& layer : layers) per_layer += (per_layer.empty() ? "" : ";") + text_of(at_path(layer, {"state_numel"}));
    }
    row.push_back(per_layer);
    row.push_back(text_of(at_path(s, {"state", "context"})));
    row.push_back(text_of(at_path(s, {"wall_time_s"})));
    row.push_back(text_of(at_path(s, {"device"})));
    row.push_back(outcome.run_dir);
    row.push_back(outcome.error);
    write_row(row);
  }
  return out.str();
}

}  // namespace bla::sweep
