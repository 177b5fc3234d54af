// What a training forward keeps for BPTT, laid out by its cell (cell.h): per step,
//   gates      (T, B, G*H)      the cell's activations; backward overwrites them with gradients
//   <s>_prev   (T, B, H)        each state s the step started from: h_prev, and c_prev for LSTM
//   <saved>    (T, B, width*H)  the cell's own arrays (GRU's hn; "pre" where kept)
// Each array is a block of its own from the block cache (memory.h), uninitialised until the
// forward writes it.
#pragma once

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

class Workspace {
 public:
  struct Array {
    std::string name;
    int64_t width;  // values per step and row
    Buffer<unsigned char> data;
  };

  // value_bytes: sizeof(float) or sizeof(double). Throws std::bad_alloc.
  Workspace(std::shared_ptr<const Cell> cell, const Dims& d, std::size_t value_bytes);

  const std::shared_ptr<const Cell>& cell() const { return cell_; }
  const Dims& dims() const { return dims_; }
  std::size_t value_bytes() const { return value_bytes_; }
  const std::vector<Array>& arrays() const { return arrays_; }

  template <typename T> T* gates() const { return at<T>(0); }
  template <typename T> T* state_prev(int k) const { return at<T>(1 + k); }
  template <typename T> T* saved(int k) const { return at<T>(1 + cell_->layout().states.size() + k); }

 private:
  template <typename T> T* at(std::size_t i) const { return reinterpret_cast<T*>(arrays_[i].data.data()); }

  std::shared_ptr<const Cell> cell_;
  Dims dims_;
  std::size_t value_bytes_;
  std::vector<Array> arrays_;
};

}  // namespace fastrnn
