// The c10d differences between the LibTorch versions bla-train builds against
// (Debian's 1.13 on CPU with Gloo; PyTorch 2.x wheels with CUDA and NCCL but
// without Gloo's headers). Included only by src/bla/dist/*.cpp: c10d headers
// stay out of every other translation unit.
#pragma once

#include "bla/compat.h"

#include <chrono>
#include <cstdint>
#include <string>

// c10d guards each backend's header with a macro that its own build defines;
// a program including the headers defines it itself.
#if defined(BLA_HAVE_GLOO) && !defined(USE_C10D_GLOO)
#define USE_C10D_GLOO 1
#endif

// NCCL: CMake defines BLA_HAVE_NCCL where LibTorch has CUDA and it found
// nccl.h (cmake/BlaDependencies.cmake).
#if defined(BLA_HAVE_NCCL) && !defined(USE_C10D_NCCL)
#define USE_C10D_NCCL 1
#endif

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#if BLA_TORCH_AT_LEAST(2, 0)
#include <torch/csrc/distributed/c10d/Backend.hpp>
#else
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#endif
#if defined(BLA_HAVE_GLOO)
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if defined(BLA_HAVE_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace bla::dist::c10d_compat {

// The common base of ProcessGroupGloo and ProcessGroupNCCL: in 1.13 they
// derive from ProcessGroup, from 2.0 on from Backend (ProcessGroup became a
// dispatcher over backends). Both bases declare the same virtual collectives.
#if BLA_TORCH_AT_LEAST(2, 0)
using BackendBase = c10d::Backend;
#else
using BackendBase = c10d::ProcessGroup;
#endif

// The rendezvous store. The server (rank 0) waits for all `world_size`
// processes to connect, up to `timeout`. The option fields read here exist
// with the same meaning in 1.13 and 2.x (2.x adds libuv and listen-fd ones
// whose defaults suit us).
inline c10::intrusive_ptr<c10d::Store> make_tcp_store(const std::string& host, uint16_t port, bool is_server,
                                                      int world_size, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions options;
  options.port = port;
  options.isServer = is_server;
  options.numWorkers = static_cast<size_t>(world_size);
  options.waitWorkers = true;
  options.timeout = timeout;
  return c10::make_intrusive<c10d::TCPStore>(host, options);
}

inline c10::intrusive_ptr<c10d::Store> with_prefix(const std::string& prefix, c10::intrusive_ptr<c10d::Store> store) {
  return c10::make_intrusive<c10d::PrefixStore>(prefix, std::move(store));
}

#if defined(BLA_HAVE_GLOO)
// `interface`: GLOO_SOCKET_IFNAME when set; `loopback`: all ranks on this
// host talk through 127.0.0.1 (the hostname may resolve to an address that
// is not reachable in containers).
inline c10::intrusive_ptr<BackendBase> make_gloo(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                 std::chrono::milliseconds timeout, const std::string& interface,
                                                 bool loopback) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  if (!interface.empty()) {
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
  } else if (loopback) {
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  } else {
    options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, options);
}
#endif

#if defined(BLA_HAVE_NCCL)
// The time-out is enforced by ProcessGroupNCCL's watchdog in 2.x (which tears
// the process down when a collective overruns it).
inline c10::intrusive_ptr<BackendBase> make_nccl(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                 std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, options);
}
#endif

// A clean shutdown where the backend has one (ProcessGroupNCCL from 2.4 warns
// when destroyed without it).
inline void shutdown(BackendBase& backend) {
#if defined(BLA_HAVE_NCCL) && BLA_TORCH_AT_LEAST(2, 4)
  if (auto* nccl = dynamic_cast<c10d::ProcessGroupNCCL*>(&backend)) nccl->shutdown();
#else
  (void)backend;
#endif
}

}  // namespace bla::dist::c10d_compat
