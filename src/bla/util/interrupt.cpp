#include "bla/util/interrupt.h"

#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>

namespace bla::util {

namespace {
volatile std::sig_atomic_t g_signal = 0;
bool g_installed = false;

void on_signal(int signal) {
  if (g_signal != 0) {  // the second one: leave now, as the default action would
    ::signal(signal, SIG_DFL);
    ::raise(signal);
    _exit(128 + signal);
  }
  g_signal = signal;
  const char message[] = "\nbla: interrupted: finishing the current step, then saving a checkpoint (again to quit now)\n";
  (void)!::write(2, message, sizeof(message) - 1);
}
}  // namespace

void install_interrupt_handlers() {
  if (g_installed) return;
  g_installed = true;
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaction(s, &action, nullptr);
}

int interrupt_signal() { return g_signal; }

void clear_interrupt() { g_signal = 0; }

const char* signal_name(int signal) {
  switch (signal) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGHUP: return "SIGHUP";
    default: return "a signal";
  }
}

}  // namespace bla::util
