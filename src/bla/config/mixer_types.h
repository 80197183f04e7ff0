// The mixer types a config may name. The mixer registry (mixers/mixer.h)
// adds every type it registers, so the config checks model.mixer and
// model.mixers.<type> without depending on the mixers.
#pragma once

#include <string>
#include <vector>

namespace bla::config {

class Section;

void add_mixer_type(const std::string& name);
// The known types, sorted.
std::vector<std::string> mixer_types();
// Fails on `key` of `where` unless `name` is a known type, suggesting the closest one.
void check_mixer_type(const std::string& name, const Section& where, const std::string& key);

}  // namespace bla::config
