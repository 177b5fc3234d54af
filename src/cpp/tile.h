// Views of one tile of one step, what the cells and activations work on.
//
// Every buffer of a step is row-major with the batch as rows:
//   gates: (B, G*H) with row stride G*H, the gate blocks side by side in the order of modes.py
//   h, c:  (B, H)
// A tile is some batch rows by some hidden units (all of them, unless the driver splits the
// units between threads), with every pointer at the tile's first element.
#pragma once

#include <Eigen/Core>

namespace fastrnn {

using Eigen::Index;

// A (rows, cols) view with a row stride, as an Eigen array so that operators are element-wise.
template <typename T>
using ArrayView = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
                             Eigen::OuterStride<>>;
template <typename T>
using ConstArrayView = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>,
                                  0, Eigen::OuterStride<>>;

// rows x units of a step; block k of a unit sits k*H further along its row.
struct Tile {
  Index rows, units;
  Index H;             // hidden units in all: the distance between blocks
  Index gates_stride;  // the distance between rows of a buffer of blocks (G*H for the gates)
  Index state_stride;  // H: the distance between rows of a state buffer
};

// Block k of the tile: (rows, units) with row stride gates_stride.
template <typename T>
ArrayView<T> gate(T* gates, const Tile& t, Index k) {
  return ArrayView<T>(gates + k * t.H, t.rows, t.units, Eigen::OuterStride<>(t.gates_stride));
}
template <typename T>
ConstArrayView<T> gate(const T* gates, const Tile& t, Index k) {
  return ConstArrayView<T>(gates + k * t.H, t.rows, t.units, Eigen::OuterStride<>(t.gates_stride));
}
// Block k of a per-unit parameter vector p (at the tile's first unit): (1, units), to broadcast
// over the tile's rows with .rowwise().
template <typename T>
Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>> param(const T* p, const Tile& t, Index k) {
  return Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>>(p + k * t.H, t.units);
}
// A state's part of the tile: (rows, units) with row stride H.
template <typename T>
ArrayView<T> state(T* p, const Tile& t) {
  return ArrayView<T>(p, t.rows, t.units, Eigen::OuterStride<>(t.state_stride));
}
template <typename T>
ConstArrayView<T> state(const T* p, const Tile& t) {
  return ConstArrayView<T>(p, t.rows, t.units, Eigen::OuterStride<>(t.state_stride));
}

}  // namespace fastrnn
