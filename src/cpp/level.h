// The kernels of one instruction-set level, as the bindings see them.
//
// The pybind11 bindings (bindings.cpp, the module fastrnn._bindings) are compiled once, for the
// baseline; each level's kernels are a small module of their own, fastrnn._kernels_<level>
// (level.cpp, level_module.cpp), compiled with that level's flags, which hands the bindings this
// table of entry points. Each level stays a shared object of its own, so that the code a level's
// flags produced (its copies of Eigen's templates and of every inline function) is never shared
// with another level, and nothing of a level the CPU cannot run is loaded at all.
//
// The block cache (memory.h) is the bindings' one for every level: a level allocates through
// the Memory it is attached to. Each level has its own threads (threads.h) and call turns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cell.h"
#include "sequence.h"

namespace fastrnn {

// Changed whenever Level changes, so that a stale module of another build is refused.
constexpr int kLevelAbi = 4;

struct Memory {
  void* (*allocate)(std::size_t bytes);
  void (*release)(void* p) noexcept;
};

// How a call of `steps` steps of B rows, H units and GH gate columns is shared out between the
// level's threads (threads.h, choose_split): for tests, which take the path they mean to test.
struct Plan {
  int threads;
  bool by_units;  // split by hidden units (else by rows of the batch, or not at all)
};

struct BuildFacts {
  std::string eigen, simd, isa, compiler;  // compiler empty when unknown
  bool openmp;
};

struct Level {
  int abi;             // kLevelAbi
  std::size_t size;    // sizeof(Level)
  // Once, before anything else: the level's memory, and its handler for a fork (threads.h).
  void (*attach)(const Memory& memory);

  // Cells and activations (cells.h, activations.h); throw std::invalid_argument for unknown names.
  std::unique_ptr<Cell> (*make_cell)(const std::string& kind, const std::string& activation,
                                     const std::string& recurrent);
  std::vector<std::string> (*cell_kinds)();
  std::vector<std::string> (*activations)();
  const char* (*activation_name)(Activation a);

  // The kernels (sequence.h, matmul.h), each call in its turn (KernelTurn). A cell made by
  // another level is run by this level's cell of the same kind and activations.
  void (*forward_float)(const ForwardArgs<float>& a);
  void (*forward_double)(const ForwardArgs<double>& a);
  void (*backward_float)(const BackwardArgs<float>& a);
  void (*backward_double)(const BackwardArgs<double>& a);
  void (*matmul_float)(const float* a, int64_t ar, int64_t ac, bool ta, const float* b, int64_t br, int64_t bc,
                       bool tb, float* c);
  void (*matmul_double)(const double* a, int64_t ar, int64_t ac, bool ta, const double* b, int64_t br,
                        int64_t bc, bool tb, double* c);

  // Threads (threads.h) and facts (build_info.h).
  void (*set_num_threads)(int n);
  int (*get_num_threads)();
  Plan (*plan)(int64_t steps, int64_t B, int64_t H, int64_t GH);
  BuildFacts (*build_facts)();
};

}  // namespace fastrnn

// The level's table (level.cpp), for its module's init (level_module.cpp).
extern "C" const fastrnn::Level* fastrnn_level();
