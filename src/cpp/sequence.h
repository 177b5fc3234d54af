// The sequence driver: forward unroll and backpropagation through time for every cell, run from
// the cell's layout (cell.h).
//
// Shapes (all row-major, C order): x: (T, B, I) time-major; states h, c: (B, H);
// weights in the layout of src/fastrnn/modes.py: w_ih: (G*H, I), w_hh: (G*H, H), biases (G*H,).
//
// Forward:  the input projection does not wait on the state: one GEMM over all T steps
//           (for inference, a long sequence's chunk of steps) or, where each thread has rows
//           of the batch of its own, one product per step and thread, made just before the
//           recurrent ones so its gates are still in cache. Each step runs the cell's stages:
//           a stage's recurrent products, then the cell's element-wise math.
// Backward: walks the steps back, each step's stages from the last: the cell's math, then the
//           products' gradients (and where forward projected inputs step by step, the input
//           gradient's product too), summing the bias gradients as it goes; the weight
//           gradients (and otherwise the input gradient) are GEMMs over all steps (or a chunk
//           of them) at once.
//
// Cell parameters (Layout::params, e.g. peepholes): given with the weights, handed to every step;
// their gradients are each row's share (the cell's backward) summed like the bias gradients.
//
// Padding: step t of sequence b is valid where mask[t, b] is nonzero (a mask may have any
// pattern), or with lengths where t < lengths[b]. Invalid steps keep the state, output zero and
// pass no gradient to the weights. With reverse the steps run T-1 .. 0 and the mask is read at
// each step's own position, so each sequence's padded tail comes first and leaves its initial
// state untouched: one mask serves both directions.
#pragma once

#include <array>
#include <cstdint>
#include <exception>

#include "cell.h"
#include "workspace.h"
#include "zoneout.h"

namespace fastrnn {

template <typename T>
struct Weights {
  const T* w_ih;  // (G*H, I)
  const T* w_hh;  // (G*H, H)
  const T* b_ih;  // (G*H,) or nullptr
  const T* b_hh;  // (G*H,) or nullptr
  std::array<const T*, kMaxParams> params{};  // (width*H,) each: the cell's own (Layout::params)
};

// Which steps are valid: a mask, lengths, or neither (every step).
struct Padding {
  const int64_t* lengths = nullptr;  // (B,) or nullptr
  const uint8_t* mask = nullptr;     // (T, B), nonzero at valid steps, or nullptr; wins over lengths
  Index B = 0;                       // the mask's row length
  Index b0 = 0;                      // row 0 here is row b0 of the batch

  bool any() const { return lengths || mask; }
  bool valid(Index b, Index t) const {
    if (mask) return mask[t * B + b0 + b] != 0;
    return lengths == nullptr || t < lengths[b0 + b];
  }
  Padding from_row(Index b) const { return {lengths, mask, B, b0 + b}; }
};

// Whether to give up a call under way (a pending Ctrl-C): asked now and then by the calling
// thread, between steps. Once it says yes, the call's threads leave the time loop where they
// next meet and the call throws Stopped, its outputs half written. Without `requested`, never.
struct Stop {
  bool (*requested)(void* context) = nullptr;
  void* context = nullptr;
};

// Masks on the products' inputs, the same at every step (Keras's per-gate dropout masks): gate
// block k's rows of w_hh multiply their product's input (h, or the cell's array) times
// recurrent[k], and its rows of w_ih multiply x_t times input[k]. Any values, not only 0 and a
// scale. With masks a product runs as one product per gate block.
template <typename T>
struct ProductMasks {
  const T* recurrent = nullptr;  // (G, B, H) or nullptr (no mask)
  const T* input = nullptr;      // (G, B, I) or nullptr
};

struct Stopped : std::exception {
  const char* what() const noexcept override { return "kernel call stopped"; }
};

template <typename T>
struct ForwardArgs {
  const Cell* cell;
  Dims d;
  const T* x;                                 // (T, B, I)
  std::array<const T*, kMaxStates> state0{};  // (B, H) each, or nullptr for zeros
  Weights<T> w;
  Padding padding;                            // lengths or mask, or neither: every step valid
  bool reverse;
  ProductMasks<T> masks;
  T* y;                                       // (T, B, H) out
  std::array<T*, kMaxStates> state_n{};       // (B, H) each, out
  const Workspace* ws;                        // filled for BPTT when training; nullptr for inference
  Stop stop;
  Zoneout zoneout{};                          // of h: draws when training, the expectation otherwise
};

template <typename T>
struct BackwardArgs {
  const Cell* cell;
  Dims d;
  const T* x;                                    // (T, B, I)
  Weights<T> w;
  Padding padding;
  bool reverse;
  ProductMasks<T> masks;                         // the forward's
  const Workspace* ws;                           // from forward; its gates and the products' outputs are overwritten
  const T* dy;                                   // (T, B, H) or nullptr
  std::array<const T*, kMaxStates> d_state_n{};  // (B, H) each, or nullptr
  T* dx;                                         // (T, B, I) out
  std::array<T*, kMaxStates> d_state0{};         // (B, H) each, out
  T* dw_ih;                                      // (G*H, I) out
  T* dw_hh;                                      // (G*H, H) out
  T* db_ih;                                      // (G*H,) out or nullptr
  T* db_hh;                                      // (G*H,) out or nullptr
  std::array<T*, kMaxParams> d_params{};         // (width*H,) each, out: the cell's parameters'
  Stop stop;
  Zoneout zoneout{};                             // the forward's
};

template <typename T>
void rnn_forward(const ForwardArgs<T>& a);
template <typename T>
void rnn_backward(const BackwardArgs<T>& a);

}  // namespace fastrnn
