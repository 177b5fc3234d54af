// What a training forward keeps for BPTT, laid out by its cell (cell.h): per step,
//   gates      (S, B, G*H)      the cell's activations; backward overwrites them with gradients
//   <s>_prev   (S, B, H)        each state s the step started from: h_prev, and c_prev for LSTM
//   <saved>    (S, B, width*H)  the cell's own arrays (GRU's hn; "pre" where kept)
// for S = T steps, or with checkpoints for one segment of S steps, which backward recomputes
// segment by segment from the states kept at the segments' starts:
//   <s>_checkpoints (segments, B, H)  each state at the start of each segment, in time order
// Each array is a block of its own from the block cache (memory.h), uninitialised until the
// forward writes it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cell.h"
#include "memory.h"

namespace fastrnn {

struct Dims {
  int64_t T, B, I, H;
};

// Steps go in units of whole steps of at least kUnitRows rows, a multiple of 16 rows: segments
// and chunks of the steps start on a unit, so that every product over many rows (the input
// projection, the input and weight gradients) blocks its rows the same way whatever the
// segments, and checkpointed BPTT gives the full one's results bit for bit.
constexpr int64_t kUnitRows = 256;
inline int64_t step_unit(int64_t B) {
  if (B <= 0) return 1;
  int64_t u = (kUnitRows + B - 1) / B;
  while ((u * B) % 16 != 0) ++u;
  return u;
}

// The steps of a segment for checkpoints asked every `every` steps: rounded up to a whole unit,
// at most T (one segment: what full BPTT keeps, and one checkpoint).
inline int64_t segment_steps(int64_t T, int64_t B, int64_t every) {
  const int64_t u = step_unit(B), asked = std::clamp<int64_t>(every, 1, std::max<int64_t>(T, 1));
  return std::min((asked + u - 1) / u * u, std::max<int64_t>(T, 0));
}

class Workspace {
 public:
  struct Array {
    std::string name;
    int64_t steps;  // the first dimension: steps, or segments for checkpoints
    int64_t width;  // values per step and row
    Buffer<unsigned char> data;
  };

  // value_bytes: sizeof(float) or sizeof(double). every: 0 keeps every step; else a checkpoint
  // every segment_steps(T, B, every) steps, when that is fewer than T. Throws std::bad_alloc.
  Workspace(std::shared_ptr<const Cell> cell, const Dims& d, std::size_t value_bytes, int64_t every = 0);

  const std::shared_ptr<const Cell>& cell() const { return cell_; }
  const Dims& dims() const { return dims_; }
  std::size_t value_bytes() const { return value_bytes_; }
  const std::vector<Array>& arrays() const { return arrays_; }
  int64_t every() const { return every_; }        // as given
  bool checkpointed() const { return steps_ < dims_.T; }  // more than one segment
  int64_t steps() const { return steps_; }        // the steps the per-step arrays hold

  // The per-step arrays, at the segment's first step (all T: step 0).

  template <typename T> T* gates() const { return at<T>(0); }
  template <typename T> T* state_prev(int k) const { return at<T>(1 + k); }
  template <typename T> T* saved(int k) const { return at<T>(1 + cell_->layout().states.size() + k); }
  // State k at the start of segment j (B, H), with checkpoints.
  template <typename T> T* checkpoint(int k, int64_t j) const {
    return at<T>(1 + cell_->layout().states.size() + cell_->layout().saved.size() + k) + j * dims_.B * dims_.H;
  }

 private:
  template <typename T> T* at(std::size_t i) const { return reinterpret_cast<T*>(arrays_[i].data.data()); }

  std::shared_ptr<const Cell> cell_;
  Dims dims_;
  std::size_t value_bytes_;
  int64_t every_, steps_;
  std::vector<Array> arrays_;
};

}  // namespace fastrnn
