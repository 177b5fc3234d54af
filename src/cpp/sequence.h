// The sequence driver: forward unroll and backpropagation through time for every cell kind.
//
// Shapes (all row-major, C order): x: (T, B, I) time-major; states h, c: (B, H);
// weights in the layout of src/fastrnn/modes.py: w_ih: (G*H, I), w_hh: (G*H, H), biases (G*H,).
//
// Forward:  the input projection does not wait on the state: one GEMM over all T steps
//           (for inference, a long sequence's chunk of steps) or, where each thread has rows
//           of the batch of its own, one product per step and thread, made just before the
//           recurrent one so its gates are still in cache. Each step does one recurrent GEMM
//           and hands the pre-activations to the cell's element-wise math.
// Backward: walks the steps back doing the recurrent GEMM per step (and where forward
//           projected inputs step by step, the input gradient's product too), summing the
//           bias gradients as it goes; the weight gradients (and otherwise the input gradient)
//           are GEMMs over all steps (or a chunk of them) at once.
//
// Padding: with lengths, step t of sequence b is valid when t < lengths[b]. Invalid steps keep
// the state and output zero. With reverse the steps run T-1 .. 0, so each sequence's padded
// tail comes first and leaves its initial state untouched: one mask serves both directions.
#pragma once

#include <cstdint>
#include <string>

namespace fastrnn {

enum class Mode { kRnnTanh, kRnnRelu, kLstm, kGru };

Mode parse_mode(const std::string& name);  // throws std::invalid_argument
int gate_count(Mode mode);

struct Dims {
  int64_t T, B, I, H;
};

template <typename T>
struct Weights {
  const T* w_ih;  // (G*H, I)
  const T* w_hh;  // (G*H, H)
  const T* b_ih;  // (G*H,) or nullptr
  const T* b_hh;  // (G*H,) or nullptr
};

// What the forward pass keeps for BPTT. All nullptr for inference.
template <typename T>
struct Workspace {
  T* gates;   // (T, B, G*H) gate activations; backward overwrites them with gate gradients
  T* h_prev;  // (T, B, H) the state each step started from
  T* c_prev;  // (T, B, H) LSTM only
  T* hn;      // (T, B, H) GRU only: W_hn h + b_hn; backward overwrites it with its gradient
};

template <typename T>
struct ForwardArgs {
  Mode mode;
  Dims d;
  const T* x;               // (T, B, I)
  const T* h0;              // (B, H) or nullptr for zeros
  const T* c0;              // (B, H) or nullptr for zeros (LSTM)
  Weights<T> w;
  const int64_t* lengths;   // (B,) or nullptr: every step valid
  bool reverse;
  T* y;                     // (T, B, H) out
  T* h_n;                   // (B, H) out
  T* c_n;                   // (B, H) out (LSTM), else nullptr
  bool training;            // keep the workspace for BPTT
  Workspace<T> ws;          // used when training
};

template <typename T>
struct BackwardArgs {
  Mode mode;
  Dims d;
  const T* x;               // (T, B, I)
  Weights<T> w;
  const int64_t* lengths;   // (B,) or nullptr
  bool reverse;
  Workspace<T> ws;          // from forward; gates and hn are consumed (overwritten)
  const T* dy;              // (T, B, H) or nullptr
  const T* dh_n;            // (B, H) or nullptr
  const T* dc_n;            // (B, H) or nullptr
  T* dx;                    // (T, B, I) out
  T* dh0;                   // (B, H) out
  T* dc0;                   // (B, H) out (LSTM), else nullptr
  T* dw_ih;                 // (G*H, I) out
  T* dw_hh;                 // (G*H, H) out
  T* db_ih;                 // (G*H,) out or nullptr
  T* db_hh;                 // (G*H,) out or nullptr
};

template <typename T>
void rnn_forward(const ForwardArgs<T>& a);
template <typename T>
void rnn_backward(const BackwardArgs<T>& a);

}  // namespace fastrnn
