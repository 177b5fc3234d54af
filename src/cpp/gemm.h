// Single-threaded matrix products for the inside of the time loop.
//
// The time loop runs one thread per slice of the batch, so each step's recurrent product must
// stay on its own thread and must not allocate. Eigen's ordinary product would spawn nested
// threads and allocate its packing buffers on every call; `RowGemm` keeps one set of buffers for
// the whole sequence and calls Eigen's blocked kernel directly.
#pragma once

#include <Eigen/Core>

namespace fastrnn {

template <typename T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// C (m, n) += A (m, k) * op(W), all row-major and contiguous, where op(W) is W^T for W: (n, k)
// (`transposed`) or W for W: (k, n). m, n, k are fixed at construction.
template <typename T>
class RowGemm {
 public:
  RowGemm(Eigen::Index m, Eigen::Index n, Eigen::Index k, bool transposed)
      : m_(m), n_(n), k_(k), transposed_(transposed), blocking_(m, n, k, 1, true) {
    if (m_ > 1) blocking_.allocateAll();
  }

  void accumulate(const T* a, const T* w, T* c) {
    if (m_ == 0 || n_ == 0 || k_ == 0) return;
    if (m_ == 1) return vector_times_matrix(a, w, c);  // memory-bound: read W once, pack nothing
    using Eigen::ColMajor;
    using Eigen::RowMajor;
    if (transposed_) {  // W: (n, k) row-major is W^T: (k, n) column-major
      Eigen::internal::general_matrix_matrix_product<Eigen::Index, T, RowMajor, false, T, ColMajor, false,
                                                     RowMajor, 1>::run(m_, n_, k_, a, k_, w, k_, c, 1, n_, T(1),
                                                                       blocking_, nullptr);
    } else {
      Eigen::internal::general_matrix_matrix_product<Eigen::Index, T, RowMajor, false, T, RowMajor, false,
                                                     RowMajor, 1>::run(m_, n_, k_, a, k_, w, n_, c, 1, n_, T(1),
                                                                       blocking_, nullptr);
    }
  }

 private:
  void vector_times_matrix(const T* a, const T* w, T* c) {
    Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>> a_row(a, k_);
    Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>> c_row(c, n_);
    if (transposed_) c_row.noalias() += a_row * Eigen::Map<const RowMatrix<T>>(w, n_, k_).transpose();
    else c_row.noalias() += a_row * Eigen::Map<const RowMatrix<T>>(w, k_, n_);
  }

  Eigen::Index m_, n_, k_;
  bool transposed_;
  Eigen::internal::gemm_blocking_space<Eigen::RowMajor, T, T, Eigen::Dynamic, Eigen::Dynamic, Eigen::Dynamic, 1,
                                       false>
      blocking_;
};

}  // namespace fastrnn
