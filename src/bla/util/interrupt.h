// Interruption as a request, not a crash: the first SIGTERM, SIGINT or SIGHUP
// (a cluster's preemption, Ctrl-C, a closed terminal) is only recorded, so a
// long-running program can finish what it is doing, save, and exit cleanly;
// a second one ends the process at once with the usual 128 + signal status.
#pragma once

namespace bla::util {

// Installs the handlers (idempotent).
void install_interrupt_handlers();
// The signal received first, or 0.
int interrupt_signal();
// "SIGTERM", "SIGINT", "SIGHUP", or "signal N".
const char* signal_name(int signal);
// Test hook: forgets a recorded signal.
void clear_interrupt();

}  // namespace bla::util
