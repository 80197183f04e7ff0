// The exit status of every program, and the one place that turns an error
// into it: one line on stderr, "<program>: <message>", then the documented
// code (README, "Exit codes"). Header-only and free of LibTorch, so that
// bla-sweep and bla-launch, which link neither LibTorch nor the library, use
// it too.
#pragma once

#include <exception>
#include <functional>
#include <iostream>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace bla::util {

enum class ExitCode : int {
  kDone = 0,
  kError = 1,        // anything not below
  kUsage = 2,        // a config or command-line argument error
  kCheckpoint = 3,   // a checkpoint that cannot be read or does not fit the config
  kNonFinite = 4,    // a non-finite loss or gradient stopped training
  kInterrupted = 5,  // SIGTERM, SIGINT or SIGHUP stopped training after a checkpoint
  kOutOfMemory = 6,  // the run does not fit the memory it may use (refused before training, or the device ran out)
  kRegroup = 7,      // an ensemble run with --regroup stopped once half its members had finished: the others'
                     // checkpoints are saved, to continue as a smaller ensemble (bla-sweep does)
};

// A wrong command-line argument found after parsing: exit status 2.
class ArgumentError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An error type a program maps to an exit code, and the words put before its message.
struct ErrorKind {
  std::function<bool(const std::exception&)> matches;
  ExitCode code;
  std::string label;  // e.g. "config error: "
};

template <class Error>
ErrorKind error_kind(ExitCode code, std::string label = "") {
  return {[](const std::exception& e) { return dynamic_cast<const Error*>(&e) != nullptr; }, code, std::move(label)};
}

// The first line of a message, trailing white space removed. LibTorch's
// c10::Error puts a backtrace after its first line; users get the first line.
inline std::string first_line(const std::string& message) {
  std::string line = message.substr(0, message.find('\n'));
  while (!line.empty() && (line.back() == ' ' || line.back() == '\r' || line.back() == '\t')) line.pop_back();
  return line;
}

// Prints "<program>: <first line of message>" to stderr; returns `code` as an exit status.
inline int report_error(const std::string& program, ExitCode code, const std::string& message) {
  std::cerr << program << ": " << first_line(message) << std::endl;
  return static_cast<int>(code);
}

// The exit status for the exception being handled (call it inside a catch):
// the first of `kinds` it matches, else 1.
inline int report_current_exception(const std::string& program, const std::vector<ErrorKind>& kinds) {
  try {
    throw;
  } catch (const ArgumentError& e) {
    return report_error(program, ExitCode::kUsage, e.what());
  } catch (const std::bad_alloc&) {
    return report_error(program, ExitCode::kOutOfMemory, "error: out of memory; lower the sizes in the config");
  } catch (const std::exception& e) {
    for (const auto& kind : kinds) {
      if (kind.matches(e)) return report_error(program, kind.code, kind.label + e.what());
    }
    return report_error(program, ExitCode::kError, std::string("error: ") + e.what());
  } catch (...) {
    return report_error(program, ExitCode::kError, "error: an unknown exception");
  }
}

// Runs `body` (returning an int or ExitCode); any exception ends in one line
// and its exit status, as above.
template <class Body>
int run_guarded(const std::string& program, const std::vector<ErrorKind>& kinds, Body&& body) {
  try {
    return static_cast<int>(body());
  } catch (...) {
    return report_current_exception(program, kinds);
  }
}

}  // namespace bla::util
