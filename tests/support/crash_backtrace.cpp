// Prints a backtrace when a test crashes (SIGSEGV, SIGABRT, SIGBUS), so a
// crash on a machine without a debugger still says where it happened.
#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

namespace {
void print_backtrace(int signal_number) {
  void* frames[64];
  int count = backtrace(frames, 64);
  const char header[] = "\n*** crash: backtrace ***\n";
  (void)!write(STDERR_FILENO, header, sizeof(header) - 1);
  backtrace_symbols_fd(frames, count, STDERR_FILENO);
  signal(signal_number, SIG_DFL);
  raise(signal_number);
}

const bool kInstalled = [] {
  for (int s : {SIGSEGV, SIGABRT, SIGBUS}) signal(s, print_backtrace);
  return true;
}();
}  // namespace
