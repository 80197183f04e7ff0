// bla-launch --nproc-per-node K [--nnodes N --node-rank I --master-addr A --master-port P] -- PROGRAM ARGS...
//
// A small torchrun for machines without Python: starts K copies of PROGRAM
// with the torchrun environment contract (RANK, LOCAL_RANK, WORLD_SIZE,
// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT, GROUP_RANK), prefixes every
// line they print with "[rank R] ", forwards SIGINT/SIGTERM, and when one
// rank fails (non-zero exit or a signal) stops the others and exits non-zero
// naming that rank. See docs/distributed.md.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bla/util/exit_codes.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  int nproc_per_node = 1;
  int nnodes = 1;
  int node_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  double stop_grace_s = 5;
  std::vector<std::string> command;
};

const char* kUsage =
    "usage: bla-launch --nproc-per-node K [--nnodes N --node-rank I] [--master-addr A] [--master-port P]\n"
    "                  [--stop-grace-s S] -- PROGRAM [ARGS...]\n"
    "Starts K processes of PROGRAM on this node with RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,\n"
    "MASTER_ADDR and MASTER_PORT set (as torchrun does), prefixes their output with \"[rank R] \", and\n"
    "stops all of them when one fails. --master-port 0 picks a free port (single node only).\n"
    "Defaults: --nnodes 1 --node-rank 0 --master-addr 127.0.0.1 --master-port 29500 --stop-grace-s 5.\n"
    "Devices: none of its own; each rank picks its device (bla-train: one GPU per LOCAL_RANK, or the CPU).\n"
    "Exit status: 0 when every rank exits 0; else the first failed rank's status (128 + N for a signal N), 2 for\n"
    "an argument error, 1 for another error of bla-launch itself.\n";

[[noreturn]] void usage_error(const std::string& message) {
  std::exit(bla::util::report_error("bla-launch", bla::util::ExitCode::kUsage, message + " (see bla-launch --help)"));
}

long parse_number(const std::string& flag, const std::string& text, long min, long max) {
  char* end = nullptr;
  errno = 0;
  long value = std::strtol(text.c_str(), &end, 10);
  if (errno != 0 || end == text.c_str() || *end != '\0' || value < min || value > max) {
    usage_error(flag + " '" + text + "' is not an integer in [" + std::to_string(min) + ", " + std::to_string(max) +
                "]");
  }
  return value;
}

Options parse(int argc, char** argv) {
  Options o;
  bool have_nproc = false;
  int i = 1;
  for (; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (arg.rfind("--", 0) != 0) break;  // the program starts here
    std::string flag = arg, value;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else {
      if (i + 1 >= argc) usage_error(flag + " needs a value");
      value = argv[++i];
    }
    // torchrun spells the flags with underscores too.
    for (auto& c : flag) c = (c == '_') ? '-' : c;
    if (flag == "--nproc-per-node") {
      o.nproc_per_node = static_cast<int>(parse_number(flag, value, 1, 1024));
      have_nproc = true;
    } else if (flag == "--nnodes") {
      o.nnodes = static_cast<int>(parse_number(flag, value, 1, 1 << 16));
    } else if (flag == "--node-rank") {
      o.node_rank = static_cast<int>(parse_number(flag, value, 0, 1 << 16));
    } else if (flag == "--master-addr") {
      o.master_addr = value;
    } else if (flag == "--master-port") {
      o.master_port = static_cast<int>(parse_number(flag, value, 0, 65535));
    } else if (flag == "--stop-grace-s") {
      o.stop_grace_s = static_cast<double>(parse_number(flag, value, 0, 3600));
    } else {
      usage_error("unknown option " + flag);
    }
  }
  for (; i < argc; ++i) o.command.push_back(argv[i]);
  if (!have_nproc) usage_error("--nproc-per-node is required");
  if (o.command.empty()) usage_error("no program to run (give it after --)");
  if (o.node_rank >= o.nnodes) {
    usage_error("--node-rank (" + std::to_string(o.node_rank) + ") must be < --nnodes (" + std::to_string(o.nnodes) +
                ")");
  }
  if (o.master_port == 0 && o.nnodes > 1) usage_error("--master-port 0 (pick a free port) works on one node only");
  return o;
}

// A port nobody listens on now (rank 0 binds it a moment later).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    int e = errno;
    ::close(fd);
    throw std::runtime_error(std::string("finding a free port: ") + std::strerror(e));
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

void write_all(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // our own output is gone: nothing better to do
    done += static_cast<size_t>(n);
  }
}

void say(const std::string& message) { write_all(2, "bla-launch: " + message + "\n"); }

// One output stream of one rank: complete lines go out with the prefix.
struct Stream {
  int fd = -1;      // read end; -1 once closed
  int target = 1;   // our stdout or stderr
  std::string pending;
};

struct Rank {
  int rank = 0;
  pid_t pid = -1;
  bool running = false;
  int status = 0;
  Stream out, err;
  std::string prefix;
};

void flush_lines(Stream& s, const std::string& prefix, bool all) {
  size_t start = 0;
  for (size_t nl; (nl = s.pending.find('\n', start)) != std::string::npos; start = nl + 1) {
    write_all(s.target, prefix + s.pending.substr(start, nl - start + 1));
  }
  s.pending.erase(0, start);
  if (all && !s.pending.empty()) {
    write_all(s.target, prefix + s.pending + "\n");
    s.pending.clear();
  }
}

// Reads what is there; closes the stream at end of file.
void drain(Stream& s, const std::string& prefix) {
  char buffer[65536];
  ssize_t n = ::read(s.fd, buffer, sizeof(buffer));
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {
    ::close(s.fd);
    s.fd = -1;
    flush_lines(s, prefix, true);
    return;
  }
  s.pending.append(buffer, static_cast<size_t>(n));
  flush_lines(s, prefix, false);
}

int signal_pipe[2] = {-1, -1};
volatile sig_atomic_t received_signal = 0;

void on_signal(int sig) {
  int saved = errno;
  if (sig != SIGCHLD) received_signal = sig;
  char byte = 0;
  (void)!::write(signal_pipe[1], &byte, 1);
  errno = saved;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = strsignal(WTERMSIG(status));
    return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" + (name ? name : "?") + ")";
  }
  return "ended with wait status " + std::to_string(status);
}

bool failed(int status) { return !(WIFEXITED(status) && WEXITSTATUS(status) == 0); }

pid_t start_rank(const Options& o, int local_rank, int world_size, int port, Stream& out, Stream& err) {
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    // Its own process group, so that a terminal's Ctrl-C reaches the ranks
    // once, through us; and it dies with us if we are killed.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGINT, SIGTERM, SIGCHLD, SIGPIPE}) ::signal(sig, SIG_DFL);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    const int rank = o.node_rank * o.nproc_per_node + local_rank;
    ::setenv("RANK", std::to_string(rank).c_str(), 1);
    ::setenv("LOCAL_RANK", std::to_string(local_rank).c_str(), 1);
    ::setenv("WORLD_SIZE", std::to_string(world_size).c_str(), 1);
    ::setenv("LOCAL_WORLD_SIZE", std::to_string(o.nproc_per_node).c_str(), 1);
    ::setenv("GROUP_RANK", std::to_string(o.node_rank).c_str(), 1);
    ::setenv("MASTER_ADDR", o.master_addr.c_str(), 1);
    ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
    // As torchrun: one OpenMP thread per process unless told otherwise.
    if (o.nproc_per_node > 1) ::setenv("OMP_NUM_THREADS", "1", 0);
    std::vector<char*> args;
    for (const auto& a : o.command) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    std::string message = "bla-launch: cannot run " + o.command[0] + ": " + std::strerror(errno) + "\n";
    write_all(2, message);
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  out.fd = out_pipe[0];
  out.target = 1;
  err.fd = err_pipe[0];
  err.target = 2;
  return pid;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  const int world_size = o.nnodes * o.nproc_per_node;
  int port = o.master_port;
  try {
    if (port == 0) port = free_port();
  } catch (const std::exception& e) {
    say(e.what());
    return 1;
  }

  if (::pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    say(std::string("pipe: ") + std::strerror(errno));
    return 1;
  }
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) ::sigaction(sig, &action, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  std::vector<Rank> ranks(static_cast<size_t>(o.nproc_per_node));
  for (int local = 0; local < o.nproc_per_node; ++local) {
    Rank& r = ranks[static_cast<size_t>(local)];
    r.rank = o.node_rank * o.nproc_per_node + local;
    r.prefix = "[rank " + std::to_string(r.rank) + "] ";
    try {
      r.pid = start_rank(o, local, world_size, port, r.out, r.err);
      r.running = true;
    } catch (const std::exception& e) {
      say("starting rank " + std::to_string(r.rank) + ": " + e.what());
      for (auto& other : ranks) {
        if (other.running) ::kill(-other.pid, SIGKILL);
      }
      return 1;
    }
  }

  int exit_code = 0;
  int first_failed = -1;   // the rank whose failure stopped the run
  int forwarded = 0;       // the signal we passed on, if any
  bool stopping = false;
  Clock::time_point kill_at{};
  auto stop_others = [&](int sig) {
    for (auto& r : ranks) {
      if (r.running) ::kill(-r.pid, sig);
    }
    if (!stopping) {
      stopping = true;
      kill_at = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(o.stop_grace_s * 1000));
    }
  };

  auto any_running = [&] {
    for (const auto& r : ranks) {
      if (r.running) return true;
    }
    return false;
  };
  auto any_open = [&] {
    for (const auto& r : ranks) {
      if (r.out.fd >= 0 || r.err.fd >= 0) return true;
    }
    return false;
  };
  Clock::time_point all_exited{};
  while (any_running() || any_open()) {
    // Output left open by a grandchild after every rank exited: give up
    // on it after a moment.
    if (!any_running()) {
      if (all_exited == Clock::time_point{}) all_exited = Clock::now();
      if (Clock::now() - all_exited > std::chrono::seconds(2)) break;
    }
    std::vector<pollfd> fds;
    std::vector<Stream*> streams;
    std::vector<const Rank*> owners;
    fds.push_back({signal_pipe[0], POLLIN, 0});
    for (auto& r : ranks) {
      for (Stream* s : {&r.out, &r.err}) {
        if (s->fd >= 0) {
          fds.push_back({s->fd, POLLIN, 0});
          streams.push_back(s);
          owners.push_back(&r);
        }
      }
    }
    int ready = ::poll(fds.data(), fds.size(), 200);
    if (ready < 0 && errno != EINTR) {
      say(std::string("poll: ") + std::strerror(errno));
      stop_others(SIGKILL);
    }
    if (ready > 0) {
      if (fds[0].revents != 0) {
        char buffer[64];
        while (::read(signal_pipe[0], buffer, sizeof(buffer)) > 0) {
        }
      }
      for (size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents != 0) drain(*streams[i - 1], owners[i - 1]->prefix);
      }
    }

    if (received_signal != 0) {
      const int sig = received_signal;
      received_signal = 0;
      if (forwarded == 0) {
        say("got signal " + std::to_string(sig) + " (" + strsignal(sig) + "); passing it to the ranks");
        forwarded = sig;
        stop_others(sig == SIGHUP ? SIGTERM : sig);
      } else {
        say("second signal: killing the ranks");
        stop_others(SIGKILL);
      }
    }

    // Reap.
    for (;;) {
      int status = 0;
      pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      for (auto& r : ranks) {
        if (r.pid != pid || !r.running) continue;
        r.running = false;
        r.status = status;
        if (!failed(status)) break;
        if (first_failed < 0 && forwarded == 0 && !stopping) {
          first_failed = r.rank;
          exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
          say("rank " + std::to_string(r.rank) + " (pid " + std::to_string(pid) + ") " + describe_status(status) +
              "; stopping the other ranks");
          stop_others(SIGTERM);
        } else if (first_failed >= 0 || forwarded != 0) {
          say("rank " + std::to_string(r.rank) + " " + describe_status(status));
        }
        break;
      }
    }
    if (stopping && any_running() && Clock::now() >= kill_at) {
      say("ranks still running " + std::to_string(o.stop_grace_s) + " s after being asked to stop: killing them");
      stop_others(SIGKILL);
      kill_at = Clock::time_point::max();
    }
  }
  for (auto& r : ranks) {
    for (Stream* s : {&r.out, &r.err}) {
      if (s->fd >= 0) {
        ::close(s->fd);
        s->fd = -1;
      }
      flush_lines(*s, r.prefix, true);
    }
  }

  if (first_failed >= 0) {
    say("failed: rank " + std::to_string(first_failed) + " failed first (see its output above, prefixed [rank " +
        std::to_string(first_failed) + "])");
    return exit_code != 0 ? exit_code : 1;
  }
  if (forwarded != 0) {
    // Every rank stopped on the signal with a checkpoint (bla-train's exit 5): so does the launch.
    bool all_checkpointed = true;
    for (const auto& r : ranks) all_checkpointed = all_checkpointed && WIFEXITED(r.status) && WEXITSTATUS(r.status) == 5;
    return all_checkpointed ? 5 : 128 + forwarded;
  }
  return 0;
}
