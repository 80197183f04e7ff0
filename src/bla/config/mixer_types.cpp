#include "bla/config/mixer_types.h"

#include "bla/config/section.h"

#include <algorithm>
#include <set>

namespace bla::config {

namespace {
std::set<std::string>& types() {
  static std::set<std::string> known;
  return known;
}
}  // namespace

void add_mixer_type(const std::string& name) { types().insert(name); }

std::vector<std::string> mixer_types() { return {types().begin(), types().end()}; }

void check_mixer_type(const std::string& name, const Section& where, const std::string& key) {
  if (types().count(name)) return;
  const auto known = mixer_types();
  std::string list;
  for (const auto& n : known) list += (list.empty() ? "" : ", ") + n;
  const std::string hint = closest_key(name, known);
  where.fail(key, "unknown mixer type '" + name + "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)") +
                      "; known mixers: " + list);
}

}  // namespace bla::config
