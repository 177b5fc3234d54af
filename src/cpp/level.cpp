// This level's table of level.h: the kernels compiled with this level's flags, each call in its
// turn, and this level's side of the block cache (the bindings' cache, reached through Memory).
#include "level.h"

#include <map>
#include <tuple>

#include "activations.h"
#include "build_info.h"
#include "cells.h"
#include "matmul.h"
#include "memory.h"
#include "threads.h"

namespace fastrnn {
namespace {

Memory memory{};  // set by attach, before any call

// This level's cell of the kind and activations of `cell` (made by any level), made once each
// and kept: a level runs its own cells' math. The caller holds the turn.
const Cell* own_cell(const Cell* cell) {
  using Key = std::tuple<std::string, Activation, Activation>;
  static std::map<Key, std::unique_ptr<Cell>>* cells = new std::map<Key, std::unique_ptr<Cell>>;
  Key key{cell->kind(), cell->activation(), cell->recurrent_activation()};
  auto it = cells->find(key);
  if (it == cells->end())
    it = cells->emplace(key, make_cell(cell->kind(), cell->activation(), cell->recurrent_activation())).first;
  return it->second.get();
}

void attach(const Memory& m) {
  static bool attached = false;
  if (attached) return;
  memory = m;
  wait_for_kernels_at_fork();  // after the block cache's handler, which the bindings made
  attached = true;
}

std::unique_ptr<Cell> make_named_cell(const std::string& kind, const std::string& activation,
                                      const std::string& recurrent) {
  return make_cell(kind, parse_activation(activation), parse_activation(recurrent));
}

template <typename T>
void forward_in_turn(const ForwardArgs<T>& a) {
  KernelTurn turn;
  ForwardArgs<T> own = a;
  own.cell = own_cell(a.cell);
  rnn_forward<T>(own);
}

template <typename T>
void backward_in_turn(const BackwardArgs<T>& a) {
  KernelTurn turn;
  BackwardArgs<T> own = a;
  own.cell = own_cell(a.cell);
  rnn_backward<T>(own);
}

template <typename T>
void matmul_in_turn(const T* a, int64_t ar, int64_t ac, bool ta, const T* b, int64_t br, int64_t bc, bool tb, T* c) {
  KernelTurn turn;
  matmul<T>(a, ar, ac, ta, b, br, bc, tb, c);
}

Plan plan(int64_t steps, int64_t B, int64_t H, int64_t GH) {
  KernelTurn turn;  // the thread count as a call would read it
  const Split split = choose_split(B, H, GH, steps);
  return {split.threads, split.by_units};
}

BuildFacts build_facts() { return {eigen_version(), simd_instruction_sets(), isa_level(), compiler(), has_openmp()}; }

constexpr Level kLevel{
    kLevelAbi,           sizeof(Level),        &attach,
    &make_named_cell,    &cell_kinds,          &activation_names,
    &activation_name,    &forward_in_turn<float>, &forward_in_turn<double>,
    &backward_in_turn<float>, &backward_in_turn<double>, &matmul_in_turn<float>,
    &matmul_in_turn<double>, &set_num_threads, &get_num_threads,
    &plan,               &build_facts,
};

}  // namespace

// memory.h for this level's code: the bindings' block cache.
void* allocate(std::size_t bytes) { return memory.allocate(bytes); }
void release(void* p) noexcept { memory.release(p); }

}  // namespace fastrnn

extern "C" const fastrnn::Level* fastrnn_level() { return &fastrnn::kLevel; }
