// CPU time of one training step (forward + backward) of the BLA op in its
// chunked form, its token-by-token reference, and sliding-window attention
// with the same window, on (B, T, H, D) float32 inputs. Prints a Markdown
// table of medians over repetitions (docs/bla.md "Measured").
//
//   bla_cpu_step [T=1024] [B=1] [H=2] [D=32] [reps=5] [threads=1] [chunk=64]
//                [windows=64,256] [slots=8,32] [reference=1]
//
// slots lists the slot counts timed for every window (N > W is skipped);
// N = W is always added, as it is SWA computed through the slots.
// reference=0 skips the (slow) reference recurrence.
#include "bla/ops/attention/attention.h"
#include "bla/ops/bla/bla.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Settings {
  int64_t length = 1024, batch = 1, heads = 2, head_dim = 32, reps = 5, threads = 1, chunk = 64;
  std::vector<int64_t> windows{64, 256};
  std::vector<int64_t> slots{8, 32};
  bool reference = true;
};

std::vector<int64_t> parse_list(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::stoll(item));
  return out;
}

Settings parse(int argc, char** argv) {
  Settings s;
  std::map<std::string, int64_t*> integers{{"T", &s.length},  {"B", &s.batch},         {"H", &s.heads},
                                           {"D", &s.head_dim}, {"reps", &s.reps},      {"threads", &s.threads},
                                           {"chunk", &s.chunk}};
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto eq = arg.find('=');
    if (eq == std::string::npos) throw std::invalid_argument("arguments are key=value, got '" + arg + "'");
    const std::string key = arg.substr(0, eq), value = arg.substr(eq + 1);
    if (integers.count(key)) {
      *integers[key] = std::stoll(value);
    } else if (key == "windows") {
      s.windows = parse_list(value);
    } else if (key == "slots") {
      s.slots = parse_list(value);
    } else if (key == "reference") {
      s.reference = value != "0";
    } else {
      throw std::invalid_argument("unknown argument '" + key + "'; see the comment at the top of bla_cpu_step.cpp");
    }
  }
  return s;
}

struct Timing {
  double forward_ms = 0, step_ms = 0;
};

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

using Attention = std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&)>;

// Median forward time (no grad) and forward + backward time of `op`, after
// one untimed warm-up of each (the operator cache fills there).
Timing time_op(const Attention& op, const Settings& s) {
  torch::manual_seed(0);
  const auto make = [&] { return torch::randn({s.batch, s.length, s.heads, s.head_dim}).requires_grad_(true); };
  auto q = make(), k = make(), v = make();
  const auto grad_out = torch::randn({s.batch, s.length, s.heads, s.head_dim});
  using Clock = std::chrono::steady_clock;
  const auto ms = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
  };
  std::vector<double> forward, step;
  for (int64_t rep = 0; rep <= s.reps; ++rep) {
    {
      torch::NoGradGuard no_grad;
      const auto start = Clock::now();
      auto out = op(q, k, v);
      const auto end = Clock::now();
      if (rep > 0) forward.push_back(ms(start, end));
    }
    q.mutable_grad() = k.mutable_grad() = v.mutable_grad() = torch::Tensor();
    const auto start = Clock::now();
    (op(q, k, v) * grad_out).sum().backward();
    const auto end = Clock::now();
    if (rep > 0) step.push_back(ms(start, end));
  }
  return {median(forward), median(step)};
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  try {
    s = parse(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bla_cpu_step: %s\n", e.what());
    return 2;
  }
  torch::set_num_threads(static_cast<int>(s.threads));
  std::printf("T=%lld B=%lld H=%lld D=%lld float32, %lld thread(s), chunk %lld, median of %lld\n\n",
              static_cast<long long>(s.length), static_cast<long long>(s.batch), static_cast<long long>(s.heads),
              static_cast<long long>(s.head_dim), static_cast<long long>(s.threads), static_cast<long long>(s.chunk),
              static_cast<long long>(s.reps));
  std::printf("| form | window W | slots N | forward ms | forward+backward ms |\n");
  std::printf("| --- | ---: | ---: | ---: | ---: |\n");
  const auto row = [](const char* form, int64_t w, const std::string& n, const Timing& t) {
    std::printf("| %s | %lld | %s | %.1f | %.1f |\n", form, static_cast<long long>(w), n.c_str(), t.forward_ms,
                t.step_ms);
    std::fflush(stdout);
  };
  for (int64_t w : s.windows) {
    row("SWA (masked matmul)", w, "-",
        time_op([&](const auto& q, const auto& k, const auto& v) {
          return bla::ops::sliding_window_attention(q, k, v, bla::ops::WindowOptions{w, 0.0});
        }, s));
    std::vector<int64_t> slot_counts;
    for (int64_t n : s.slots)
      if (n <= w) slot_counts.push_back(n);
    if (std::find(slot_counts.begin(), slot_counts.end(), w) == slot_counts.end()) slot_counts.push_back(w);
    for (int64_t n : slot_counts) {
      const bla::ops::BlaOptions opt{w, n, s.chunk, 0.0};
      row("BLA chunked", w, std::to_string(n),
          time_op([&](const auto& q, const auto& k, const auto& v) {
            return bla::ops::blurry_window_attention(q, k, v, opt);
          }, s));
      if (s.reference) {
        row("BLA reference", w, std::to_string(n),
            time_op([&](const auto& q, const auto& k, const auto& v) {
              return bla::ops::blurry_window_attention_reference(q, k, v, opt);
            }, s));
      }
    }
  }
  return 0;
}
