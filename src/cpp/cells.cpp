// The cell kinds of cells.h, compiled once each, and looked up by name.
#include "cells.h"

#include <stdexcept>
#include <utility>

namespace fastrnn {
namespace {

template <std::size_t... I>
std::unique_ptr<Cell> find(const std::string& kind, Activation activation, Activation recurrent,
                           std::index_sequence<I...>) {
  std::unique_ptr<Cell> cell;
  ((kind == std::tuple_element_t<I, AllCells>::kName
        ? (cell = std::make_unique<CellOf<std::tuple_element_t<I, AllCells>>>(activation, recurrent), true)
        : false) ||
   ...);
  return cell;
}

}  // namespace

std::unique_ptr<Cell> make_cell(const std::string& kind, Activation activation, Activation recurrent) {
  if (activation < 0 || activation >= Activation(kActivations) || recurrent < 0 ||
      recurrent >= Activation(kActivations))
    throw std::invalid_argument("unknown activation");
  auto cell = find(kind, activation, recurrent, std::make_index_sequence<std::tuple_size_v<AllCells>>{});
  if (!cell) throw std::invalid_argument("unknown cell kind '" + kind + "'");
  return cell;
}

std::vector<std::string> cell_kinds() {
  return std::apply([](auto... kind) { return std::vector<std::string>{decltype(kind)::kName...}; }, AllCells{});
}

}  // namespace fastrnn
