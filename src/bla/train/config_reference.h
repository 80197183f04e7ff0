// The reference of every config key (docs/config.md): the schemas of the
// top level, run, model, train, data (per task) and every mixer, as Markdown.
// `bla-train --keys` prints it; a test holds docs/config.md to it.
#pragma once

#include <string>

namespace bla::train {

std::string config_reference_markdown();

}  // namespace bla::train
