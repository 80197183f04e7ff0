#include "bla/train/config_reference.h"

#include "bla/config/config.h"
#include "bla/mixers/mixer.h"
#include "bla/tasks/task.h"

#include <vector>

namespace bla::train {

std::string config_reference_markdown() {
  std::vector<const config::Schema*> schemas{&config::top_schema(), &config::run_schema(), &config::model_schema()};
  for (const auto* schema : mixers::MixerRegistry::instance().schemas()) schemas.push_back(schema);
  for (const auto* schema : tasks::data_schemas()) schemas.push_back(schema);
  schemas.push_back(&config::train_schema());
  return config::markdown(schemas);
}

}  // namespace bla::train
