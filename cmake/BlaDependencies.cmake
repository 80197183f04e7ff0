# Finds every dependency once and records the few facts that differ between
# LibTorch 1.13 (Debian, CPU) and LibTorch 2.x (PyTorch wheels, CUDA).

find_package(Torch REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(spdlog REQUIRED)
find_package(CLI11 REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(Threads REQUIRED)

# PyTorch's wheels ship their own fmt inside the torch include directory. It
# shadows the system fmt that spdlog was built against, so there spdlog is used
# header-only on top of std::format (C++20). Debian's LibTorch has no fmt/ and
# its g++ 12 has no <format>: there spdlog links its own library as usual.
set(BLA_TORCH_SHIPS_FMT OFF)
foreach(dir IN LISTS TORCH_INCLUDE_DIRS)
  # Debian installs LibTorch into /usr/include, where the system fmt also lives.
  if(EXISTS "${dir}/fmt/format.h" AND NOT dir MATCHES "^/usr(/local)?/include/?$")
    set(BLA_TORCH_SHIPS_FMT ON)
  endif()
endforeach()

add_library(bla_logging INTERFACE)
if(BLA_TORCH_SHIPS_FMT)
  set(CMAKE_CXX_STANDARD 20)
  get_target_property(_spdlog_inc spdlog::spdlog INTERFACE_INCLUDE_DIRECTORIES)
  target_include_directories(bla_logging SYSTEM INTERFACE ${_spdlog_inc})
  target_compile_definitions(bla_logging INTERFACE SPDLOG_HEADER_ONLY SPDLOG_USE_STD_FORMAT)
else()
  set(CMAKE_CXX_STANDARD 17)
  target_link_libraries(bla_logging INTERFACE spdlog::spdlog)
endif()
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)

# CUDA is built only when LibTorch itself was built with it.
set(BLA_CUDA OFF)
if(BLA_WITH_CUDA AND TORCH_CUDA_LIBRARIES)
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)
    endif()
    # One CUDA runtime in the process: LibTorch's shared libcudart.so, not a
    # second, static one beside it.
    set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
    enable_language(CUDA)
    set(BLA_CUDA ON)
  endif()
endif()

# NCCL: ProcessGroupNCCL lives in LibTorch's CUDA library, but its header
# includes nccl.h, which PyTorch's wheels keep in the nvidia-nccl package beside
# torch (or the system has it). BLA_NCCL_INCLUDE_DIR may be given by hand.
set(BLA_HAVE_NCCL OFF)
if(TORCH_CUDA_LIBRARIES)
  file(GLOB _bla_nccl_wheel_dirs LIST_DIRECTORIES true
       "${TORCH_INSTALL_PREFIX}/../nvidia/*/include" "${TORCH_INSTALL_PREFIX}/../nvidia/*/*/include")
  find_path(BLA_NCCL_INCLUDE_DIR nccl.h
            HINTS ENV NCCL_HOME ENV NCCL_ROOT ${_bla_nccl_wheel_dirs} ${CUDAToolkit_INCLUDE_DIRS}
            PATHS /usr/include /usr/local/include /usr/local/cuda/include
            PATH_SUFFIXES include)
  if(BLA_NCCL_INCLUDE_DIR)
    set(BLA_HAVE_NCCL ON)
  endif()
endif()

# Gloo's headers are missing from PyTorch's wheels: the CPU backend for
# distributed training is built only where they exist.
include(CheckIncludeFileCXX)
set(CMAKE_REQUIRED_INCLUDES ${TORCH_INCLUDE_DIRS})
set(CMAKE_REQUIRED_FLAGS "-std=c++17")
check_include_file_cxx("gloo/algorithm.h" BLA_HAVE_GLOO)
unset(CMAKE_REQUIRED_INCLUDES)
unset(CMAKE_REQUIRED_FLAGS)

# SentencePiece (Debian's libsentencepiece-dev) is optional: without it text
# is tokenised by bytes, and a SentencePiece model path is an error that says
# how to get it. Only the plugin src/plugins/sentencepiece.cpp links it
# (src/CMakeLists.txt; src/bla/data/sentencepiece_plugin.h says why).
# -DBLA_WITH_SENTENCEPIECE=OFF builds without it where it is installed.
option(BLA_WITH_SENTENCEPIECE "Use libsentencepiece when it is found" ON)
set(BLA_HAVE_SENTENCEPIECE OFF)
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND AND BLA_WITH_SENTENCEPIECE)
  pkg_check_modules(BLA_SENTENCEPIECE QUIET sentencepiece)
endif()
if(BLA_SENTENCEPIECE_FOUND)
  find_library(BLA_SENTENCEPIECE_LIB sentencepiece HINTS ${BLA_SENTENCEPIECE_LIBRARY_DIRS})
  find_library(BLA_SENTENCEPIECE_TRAIN_LIB sentencepiece_train HINTS ${BLA_SENTENCEPIECE_LIBRARY_DIRS})
  find_path(BLA_SENTENCEPIECE_INCLUDE_DIR sentencepiece_processor.h HINTS ${BLA_SENTENCEPIECE_INCLUDE_DIRS})
else()
  find_library(BLA_SENTENCEPIECE_LIB sentencepiece)
  find_library(BLA_SENTENCEPIECE_TRAIN_LIB sentencepiece_train)
  find_path(BLA_SENTENCEPIECE_INCLUDE_DIR sentencepiece_processor.h)
endif()
if(BLA_WITH_SENTENCEPIECE AND BLA_SENTENCEPIECE_LIB AND BLA_SENTENCEPIECE_TRAIN_LIB AND BLA_SENTENCEPIECE_INCLUDE_DIR)
  set(BLA_HAVE_SENTENCEPIECE ON)
endif()

message(STATUS "bla-train: LibTorch ${Torch_VERSION}, CUDA kernels ${BLA_CUDA}, Gloo ${BLA_HAVE_GLOO}, "
               "NCCL ${BLA_HAVE_NCCL} ${BLA_NCCL_INCLUDE_DIR}, SentencePiece ${BLA_HAVE_SENTENCEPIECE}, "
               "C++${CMAKE_CXX_STANDARD}")
