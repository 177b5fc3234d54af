// The sequence driver (see sequence.h): one loop for every cell kind in cells.h.
#include "sequence.h"

#include <Eigen/Core>
#include <stdexcept>
#include <utility>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cells.h"

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
void keep_padded_rows(Matrix<T>& dst_or_map, const Matrix<T>& src, const int64_t* lengths, Index t) {
  if (lengths == nullptr) return;
  for (Index b = 0; b < src.rows(); ++b)
    if (!valid(lengths, b, t)) dst_or_map.row(b) = src.row(b);
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

// ---------------------------------------------------------------------------------------------
// Forward unroll.
template <typename T, typename Cell>
void forward(const ForwardArgs<T>& a) {
  const Index steps = a.d.T, B = a.d.B, I = a.d.I, H = a.d.H;
  const Index GH = Cell::kGates * H;
  ConstMatrixMap<T> x(a.x, steps * B, I), w_ih(a.w.w_ih, GH, I), w_hh(a.w.w_hh, GH, H);

  // All steps' input projections in one GEMM, into the workspace when training.
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

  Matrix<T> h(B, H), c, c_next, gh, hn_local;
  init_state(h, a.h0);
  if constexpr (Cell::kHasCellState) {
    c.resize(B, H);
    c_next.resize(B, H);
    init_state(c, a.c0);
  }
  if constexpr (Cell::kSeparateRecurrent) {
    gh.resize(B, GH);
    if (!a.training) hn_local.resize(B, H);
  }

  for (Index s = 0; s < steps; ++s) {
    const Index t = a.reverse ? steps - 1 - s : s;
    T* g_t = gates + t * B * GH;   // (B, G*H)
    T* y_t = a.y + t * B * H;      // (B, H): the cell writes the new state here
    if (a.training) {
      MatrixMap<T>(a.ws.h_prev + t * B * H, B, H) = h;
      if constexpr (Cell::kHasCellState) MatrixMap<T>(a.ws.c_prev + t * B * H, B, H) = c;
    }
    if constexpr (Cell::kSeparateRecurrent) {
      gh.noalias() = h * w_hh.transpose();               // (B, G*H)
      if (a.w.b_hh) gh.rowwise() += ConstRowMap<T>(a.w.b_hh, GH);
      T* hn_t = a.training ? a.ws.hn + t * B * H : hn_local.data();
      Cell::forward(B, H, g_t, gh.data(), h.data(), y_t, hn_t);
    } else {
      MatrixMap<T>(g_t, B, GH).noalias() += h * w_hh.transpose();
      if constexpr (Cell::kHasCellState) Cell::forward(B, H, g_t, c.data(), y_t, c_next.data());
      else Cell::forward(B, H, g_t, y_t);
    }
    MatrixMap<T> y(y_t, B, H);
    if (a.lengths) {
      for (Index b = 0; b < B; ++b) {
        if (valid(a.lengths, b, t)) continue;
        y.row(b) = h.row(b);
        if constexpr (Cell::kHasCellState) c_next.row(b) = c.row(b);
      }
    }
    h = y;
    if constexpr (Cell::kHasCellState) std::swap(c, c_next);
    zero_padded_rows(y_t, B, H, a.lengths, t);
  }
  MatrixMap<T>(a.h_n, B, H) = h;
  if constexpr (Cell::kHasCellState) MatrixMap<T>(a.c_n, B, H) = c;
}

// ---------------------------------------------------------------------------------------------
// Backpropagation through time.
template <typename T, typename Cell>
void backward(const BackwardArgs<T>& a) {
  const Index steps = a.d.T, B = a.d.B, I = a.d.I, H = a.d.H;
  const Index GH = Cell::kGates * H;
  ConstMatrixMap<T> x(a.x, steps * B, I), w_ih(a.w.w_ih, GH, I), w_hh(a.w.w_hh, GH, H);
  MatrixMap<T> d_gates(a.ws.gates, steps * B, GH);  // activations in, gradients out

  // GRU's recurrent-side gate gradients differ from the input side's; the others share one.
  Matrix<T> d_rec_local;
  if constexpr (Cell::kSeparateRecurrent) d_rec_local.resize(steps * B, GH);
  T* d_rec = Cell::kSeparateRecurrent ? d_rec_local.data() : a.ws.gates;

  Matrix<T> dh(B, H), dh_total(B, H), dh_next(B, H), dc, dc_prev, scratch;
  init_state(dh, a.dh_n);
  if constexpr (Cell::kHasCellState) {
    dc.resize(B, H);
    dc_prev.resize(B, H);
    scratch.resize(B, H);
    init_state(dc, a.dc_n);
  }

  for (Index s = steps - 1; s >= 0; --s) {
    const Index t = a.reverse ? steps - 1 - s : s;
    T* g_t = a.ws.gates + t * B * GH;
    T* d_rec_t = d_rec + t * B * GH;
    const T* h_prev_t = a.ws.h_prev + t * B * H;
    dh_total = dh;
    if (a.dy) {
      dh_total += ConstMatrixMap<T>(a.dy + t * B * H, B, H);
      keep_padded_rows(dh_total, dh, a.lengths, t);  // a padded output is a constant zero
    }
    if constexpr (Cell::kSeparateRecurrent) {
      Cell::backward(B, H, g_t, a.ws.hn + t * B * H, h_prev_t, dh_total.data(), d_rec_t,
                     dh_next.data());
      zero_padded_rows(d_rec_t, B, GH, a.lengths, t);
    } else if constexpr (Cell::kHasCellState) {
      Cell::backward(B, H, g_t, a.ws.c_prev + t * B * H, dh_total.data(), dc.data(),
                     dc_prev.data(), scratch.data());
      keep_padded_rows(dc_prev, dc, a.lengths, t);
      dh_next.setZero();
    } else {
      Cell::backward(B, H, g_t, dh_total.data());
      dh_next.setZero();
    }
    zero_padded_rows(g_t, B, GH, a.lengths, t);
    keep_padded_rows(dh_next, dh_total, a.lengths, t);  // padding passes the gradient through
    dh_next.noalias() += ConstMatrixMap<T>(d_rec_t, B, GH) * w_hh;  // (B, H)
    std::swap(dh, dh_next);
    if constexpr (Cell::kHasCellState) std::swap(dc, dc_prev);
  }
  MatrixMap<T>(a.dh0, B, H) = dh;
  if constexpr (Cell::kHasCellState) MatrixMap<T>(a.dc0, B, H) = dc;

  // Input and weight gradients: GEMMs over all steps at once.
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
