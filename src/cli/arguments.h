// Command-line handling shared by the programs built on CLI11: parsing that
// ends an argument error in one line and exit status 2 (CLI11 would print
// several lines and exit 105, 106, ...), and numeric options read strictly
// (CLI11 clamps 18446744073709551616 to the largest int64_t, and wraps -1
// into an unsigned seed).
#pragma once

#include "bla/util/exit_codes.h"

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>

namespace bla::cli {

// Parses the command line. Returns -1 when the program should go on, else
// its exit status: 0 after --help (printed), 2 after an argument error
// (CLI11's message on one line).
inline int parse_arguments(CLI::App& app, const std::string& program, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return -1;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    return util::report_error(program, util::ExitCode::kUsage,
                              util::first_line(e.what()) + " (see " + program + " --help)");
  }
}

// A decimal integer in [min, max]: digits, a leading '-' only when min < 0.
inline CLI::Validator IntegerIn(int64_t min, int64_t max) {
  const std::string range = "[" + std::to_string(min) + ", " + std::to_string(max) + "]";
  return CLI::Validator(
      [min, max, range](std::string& text) -> std::string {
        const std::string wrong = "'" + text + "' is not an integer in " + range;
        const size_t digits = !text.empty() && text[0] == '-' ? 1 : 0;
        if (text.size() == digits || text.find_first_not_of("0123456789", digits) != std::string::npos) return wrong;
        errno = 0;
        const long long value = std::strtoll(text.c_str(), nullptr, 10);
        if (errno == ERANGE || value < min || value > max) return wrong;
        return "";
      },
      "INT in " + range);
}

// A finite decimal number in [min, max].
inline CLI::Validator RealIn(double min, double max) {
  std::ostringstream bounds;
  bounds << "[" << min << ", " << max << "]";
  const std::string range = bounds.str();
  return CLI::Validator(
      [min, max, range](std::string& text) -> std::string {
        const std::string wrong = "'" + text + "' is not a number in " + range;
        if (text.empty() || text.find_first_not_of("0123456789+-.eE") != std::string::npos) return wrong;
        char* end = nullptr;
        errno = 0;
        const double value = std::strtod(text.c_str(), &end);
        if (errno == ERANGE || *end != '\0' || !std::isfinite(value) || value < min || value > max) return wrong;
        return "";
      },
      "NUMBER in " + range);
}

}  // namespace bla::cli
