// The sequence driver (see sequence.h): one loop for every cell kind in cells.h.
#include "sequence.h"

#include <Eigen/Core>
#include <algorithm>
#include <exception>
#include <stdexcept>
#include <utility>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cells.h"
#include "gemm.h"

namespace fastrnn {
namespace {

template <typename T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using MatrixMap = Eigen::Map<Matrix<T>>;
template <typename T>
using ConstMatrixMap = Eigen::Map<const Matrix<T>>;
template <typename T>
using ConstRowMap = Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>;

bool valid(const int64_t* lengths, Index b, Index t) { return lengths == nullptr || t < lengths[b]; }

// Rows of `dst` whose step t is padding get the matching row of `src`.
template <typename T>
void keep_padded_rows(Matrix<T>& dst, const Matrix<T>& src, const int64_t* lengths, Index t) {
  if (lengths == nullptr) return;
  for (Index b = 0; b < src.rows(); ++b)
    if (!valid(lengths, b, t)) dst.row(b) = src.row(b);
}

template <typename T>
void zero_padded_rows(T* p, Index B, Index cols, const int64_t* lengths, Index t) {
  if (lengths == nullptr) return;
  MatrixMap<T> m(p, B, cols);
  for (Index b = 0; b < B; ++b)
    if (!valid(lengths, b, t)) m.row(b).setZero();
}

template <typename T>
void init_state(Matrix<T>& s, const T* s0) {
  if (s0) s = ConstMatrixMap<T>(s0, s.rows(), s.cols());
  else s.setZero();
}

// Runs body(b0, b1) on slices of the batch, one thread each, in one parallel region for the
// whole sequence: rows are independent through time, so the threads never wait for each other.
// `work` is the sequence's multiply-adds in the recurrent products; a thread is only worth
// starting for a few million of them, and for at least a few rows of its own.
template <typename Body>
void for_batch_slices(Index B, double work, Body body) {
  constexpr Index kMinRowsPerThread = 4;
  constexpr double kMinWorkPerThread = 4e6;
  const Index by_rows = B / kMinRowsPerThread;
  const Index by_work = static_cast<Index>(work / kMinWorkPerThread);
  const int threads = static_cast<int>(
      std::max<Index>(1, std::min<Index>({Index(Eigen::nbThreads()), by_rows, by_work})));
  if (threads == 1) return body(Index(0), B);
  std::exception_ptr error;
#pragma omp parallel num_threads(threads)
  {
#ifdef _OPENMP
    const Index k = omp_get_thread_num(), n = omp_get_num_threads();
#else
    const Index k = 0, n = 1;
#endif
    try {
      body(B * k / n, B * (k + 1) / n);
    } catch (...) {
#pragma omp critical
      error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

const int64_t* offset(const int64_t* lengths, Index b0) { return lengths ? lengths + b0 : nullptr; }
template <typename T>
const T* offset(const T* p, Index k) { return p ? p + k : nullptr; }

// ---------------------------------------------------------------------------------------------
// Forward unroll of batch rows [b0, b1), after the input projections are in `gates`.
template <typename T, typename Cell>
void forward_rows(const ForwardArgs<T>& a, T* gates, Index b0, Index b1) {
  const Index steps = a.d.T, B = a.d.B, H = a.d.H, nb = b1 - b0;
  const Index GH = Cell::kGates * H;
  const int64_t* lengths = offset(a.lengths, b0);
  RowGemm<T> recurrent(nb, GH, H, /*transposed=*/true);  // (nb, H) x w_hh^T

  Matrix<T> h(nb, H), c, c_next, gh, hn_local;
  init_state(h, offset(a.h0, b0 * H));
  if constexpr (Cell::kHasCellState) {
    c.resize(nb, H);
    c_next.resize(nb, H);
    init_state(c, offset(a.c0, b0 * H));
  }
  if constexpr (Cell::kSeparateRecurrent) {
    gh.resize(nb, GH);
    if (!a.training) hn_local.resize(nb, H);
  }

  for (Index s = 0; s < steps; ++s) {
    const Index t = a.reverse ? steps - 1 - s : s;
    const Index row = t * B + b0;  // first row of this slice at step t
    T* g_t = gates + row * GH;     // (nb, G*H)
    T* y_t = a.y + row * H;        // (nb, H): the cell writes the new state here
    if (a.training) {
      MatrixMap<T>(a.ws.h_prev + row * H, nb, H) = h;
      if constexpr (Cell::kHasCellState) MatrixMap<T>(a.ws.c_prev + row * H, nb, H) = c;
    }
    if constexpr (Cell::kSeparateRecurrent) {
      if (a.w.b_hh) gh = ConstRowMap<T>(a.w.b_hh, GH).replicate(nb, 1);
      else gh.setZero();
      recurrent.accumulate(h.data(), a.w.w_hh, gh.data());  // (nb, G*H)
      T* hn_t = a.training ? a.ws.hn + row * H : hn_local.data();
      Cell::forward(nb, H, g_t, gh.data(), h.data(), y_t, hn_t);
    } else {
      recurrent.accumulate(h.data(), a.w.w_hh, g_t);        // (nb, G*H)
      if constexpr (Cell::kHasCellState) Cell::forward(nb, H, g_t, c.data(), y_t, c_next.data());
      else Cell::forward(nb, H, g_t, y_t);
    }
    MatrixMap<T> y(y_t, nb, H);
    if (lengths) {
      for (Index b = 0; b < nb; ++b) {
        if (valid(lengths, b, t)) continue;
        y.row(b) = h.row(b);
        if constexpr (Cell::kHasCellState) c_next.row(b) = c.row(b);
      }
    }
    h = y;
    if constexpr (Cell::kHasCellState) std::swap(c, c_next);
    zero_padded_rows(y_t, nb, H, lengths, t);
  }
  MatrixMap<T>(a.h_n + b0 * H, nb, H) = h;
  if constexpr (Cell::kHasCellState) MatrixMap<T>(a.c_n + b0 * H, nb, H) = c;
}

template <typename T, typename Cell>
void forward(const ForwardArgs<T>& a) {
  const Index steps = a.d.T, B = a.d.B, I = a.d.I, H = a.d.H;
  const Index GH = Cell::kGates * H;
  ConstMatrixMap<T> x(a.x, steps * B, I), w_ih(a.w.w_ih, GH, I);

  // All steps' input projections in one GEMM (threaded by Eigen), into the workspace when
  // training. The biases that are simply added go in here too, once for all steps.
  Matrix<T> local_gates;
  T* gates = a.ws.gates;
  if (!a.training) {
    local_gates.resize(steps * B, GH);
    gates = local_gates.data();
  }
  MatrixMap<T> all_gates(gates, steps * B, GH);
  all_gates.noalias() = x * w_ih.transpose();           // (T*B, G*H)
  if (a.w.b_ih) all_gates.rowwise() += ConstRowMap<T>(a.w.b_ih, GH);
  if (!Cell::kSeparateRecurrent && a.w.b_hh) all_gates.rowwise() += ConstRowMap<T>(a.w.b_hh, GH);

  const double work = double(steps) * B * GH * H;
  for_batch_slices(B, work, [&](Index b0, Index b1) { forward_rows<T, Cell>(a, gates, b0, b1); });
}

// ---------------------------------------------------------------------------------------------
// Backpropagation through time for batch rows [b0, b1): leaves the gate gradients in the
// workspace (and in d_rec for GRU) and writes dh0, dc0.
template <typename T, typename Cell>
void backward_rows(const BackwardArgs<T>& a, T* d_rec, Index b0, Index b1) {
  const Index steps = a.d.T, B = a.d.B, H = a.d.H, nb = b1 - b0;
  const Index GH = Cell::kGates * H;
  const int64_t* lengths = offset(a.lengths, b0);
  RowGemm<T> recurrent(nb, H, GH, /*transposed=*/false);  // (nb, G*H) x w_hh

  Matrix<T> dh(nb, H), dh_total(nb, H), dh_next(nb, H), dc, dc_prev, scratch;
  init_state(dh, offset(a.dh_n, b0 * H));
  if constexpr (Cell::kHasCellState) {
    dc.resize(nb, H);
    dc_prev.resize(nb, H);
    scratch.resize(nb, H);
    init_state(dc, offset(a.dc_n, b0 * H));
  }

  for (Index s = steps - 1; s >= 0; --s) {
    const Index t = a.reverse ? steps - 1 - s : s;
    const Index row = t * B + b0;
    T* g_t = a.ws.gates + row * GH;
    T* d_rec_t = d_rec + row * GH;
    dh_total = dh;
    if (a.dy) {
      dh_total += ConstMatrixMap<T>(a.dy + row * H, nb, H);
      keep_padded_rows(dh_total, dh, lengths, t);  // a padded output is a constant zero
    }
    if constexpr (Cell::kSeparateRecurrent) {
      Cell::backward(nb, H, g_t, a.ws.hn + row * H, a.ws.h_prev + row * H, dh_total.data(), d_rec_t,
                     dh_next.data());
      zero_padded_rows(d_rec_t, nb, GH, lengths, t);
    } else if constexpr (Cell::kHasCellState) {
      Cell::backward(nb, H, g_t, a.ws.c_prev + row * H, dh_total.data(), dc.data(), dc_prev.data(),
                     scratch.data());
      keep_padded_rows(dc_prev, dc, lengths, t);
      dh_next.setZero();
    } else {
      Cell::backward(nb, H, g_t, dh_total.data());
      dh_next.setZero();
    }
    zero_padded_rows(g_t, nb, GH, lengths, t);
    keep_padded_rows(dh_next, dh_total, lengths, t);  // padding passes the gradient through
    recurrent.accumulate(d_rec_t, a.w.w_hh, dh_next.data());  // (nb, H)
    std::swap(dh, dh_next);
    if constexpr (Cell::kHasCellState) std::swap(dc, dc_prev);
  }
  MatrixMap<T>(a.dh0 + b0 * H, nb, H) = dh;
  if constexpr (Cell::kHasCellState) MatrixMap<T>(a.dc0 + b0 * H, nb, H) = dc;
}

template <typename T, typename Cell>
void backward(const BackwardArgs<T>& a) {
  const Index steps = a.d.T, B = a.d.B, I = a.d.I, H = a.d.H;
  const Index GH = Cell::kGates * H;
  ConstMatrixMap<T> x(a.x, steps * B, I), w_ih(a.w.w_ih, GH, I);
  MatrixMap<T> d_gates(a.ws.gates, steps * B, GH);  // activations in, gradients out

  // GRU's recurrent-side gate gradients differ from the input side's; the others share one.
  Matrix<T> d_rec_local;
  if constexpr (Cell::kSeparateRecurrent) d_rec_local.resize(steps * B, GH);
  T* d_rec = Cell::kSeparateRecurrent ? d_rec_local.data() : a.ws.gates;

  const double work = double(steps) * B * GH * H;
  for_batch_slices(B, work, [&](Index b0, Index b1) { backward_rows<T, Cell>(a, d_rec, b0, b1); });

  // Input and weight gradients: GEMMs over all steps at once (threaded by Eigen).
  ConstMatrixMap<T> d_rec_all(d_rec, steps * B, GH);
  ConstMatrixMap<T> h_prev_all(a.ws.h_prev, steps * B, H);
  MatrixMap<T>(a.dx, steps * B, I).noalias() = d_gates * w_ih;                 // (T*B, I)
  MatrixMap<T>(a.dw_ih, GH, I).noalias() = d_gates.transpose() * x;            // (G*H, I)
  MatrixMap<T>(a.dw_hh, GH, H).noalias() = d_rec_all.transpose() * h_prev_all;  // (G*H, H)
  if (a.db_ih) Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>(a.db_ih, GH) = d_gates.colwise().sum();
  if (a.db_hh) Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>(a.db_hh, GH) = d_rec_all.colwise().sum();
}

template <typename T, typename Fn>
void dispatch(Mode mode, Fn&& fn) {
  switch (mode) {
    case Mode::kRnnTanh: return fn(RnnCell<Tanh>{});
    case Mode::kRnnRelu: return fn(RnnCell<Relu>{});
    case Mode::kLstm: return fn(LstmCell{});
    case Mode::kGru: return fn(GruCell{});
  }
}

}  // namespace

Mode parse_mode(const std::string& name) {
  if (name == "rnn_tanh") return Mode::kRnnTanh;
  if (name == "rnn_relu") return Mode::kRnnRelu;
  if (name == "lstm") return Mode::kLstm;
  if (name == "gru") return Mode::kGru;
  throw std::invalid_argument("mode must be one of 'rnn_tanh', 'rnn_relu', 'lstm', 'gru', got '" +
                              name + "'");
}

int gate_count(Mode mode) {
  switch (mode) {
    case Mode::kLstm: return 4;
    case Mode::kGru: return 3;
    default: return 1;
  }
}

template <typename T>
void rnn_forward(const ForwardArgs<T>& a) {
  dispatch<T>(a.mode, [&](auto cell) { forward<T, decltype(cell)>(a); });
}

template <typename T>
void rnn_backward(const BackwardArgs<T>& a) {
  dispatch<T>(a.mode, [&](auto cell) { backward<T, decltype(cell)>(a); });
}

template void rnn_forward<float>(const ForwardArgs<float>&);
template void rnn_forward<double>(const ForwardArgs<double>&);
template void rnn_backward<float>(const BackwardArgs<float>&);
template void rnn_backward<double>(const BackwardArgs<double>&);

void set_num_threads(int n) {
  Eigen::setNbThreads(n);
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
}

int get_num_threads() { return Eigen::nbThreads(); }

std::string eigen_version() {
  return std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
         std::to_string(EIGEN_MINOR_VERSION);
}

std::string simd_instruction_sets() { return Eigen::SimdInstructionSetsInUse(); }

bool has_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace fastrnn
