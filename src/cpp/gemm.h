// Single-threaded matrix products for the inside of the time loop.
//
// Threads share the time loop by slices (see sequence.cpp), so each step's recurrent product
// must stay on its own thread and must not allocate. Eigen's ordinary product would spawn
// nested threads and allocate its packing buffers on every call; `RowGemm` keeps one set of
// buffers for the whole sequence and calls Eigen's blocked kernel directly.
#pragma once

#include <Eigen/Core>

namespace fastrnn {

template <typename T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// C (m, n) += A (m, k) * op(W), all row-major with row strides lda, ldw, ldc, where op(W) is
// W^T for W: (n, k) (`transposed`) or W for W: (k, n). m, n, k and the strides are fixed at
// construction.
template <typename T>
class RowGemm {
 public:
  RowGemm(Eigen::Index m, Eigen::Index n, Eigen::Index k, bool transposed, Eigen::Index lda,
          Eigen::Index ldw, Eigen::Index ldc)
      : m_(m), n_(n), k_(k), lda_(lda), ldw_(ldw), ldc_(ldc), transposed_(transposed),
        blocking_(m, n, k, 1, true) {
    if (m_ > 1) blocking_.allocateAll();
  }
  RowGemm(const RowGemm&) = delete;  // owns its packing buffers
  RowGemm& operator=(const RowGemm&) = delete;

  void accumulate(const T* a, const T* w, T* c) {
    using Eigen::ColMajor;
    using Eigen::RowMajor;
    if (m_ == 0 || n_ == 0 || k_ == 0) return;
    if (m_ == 1) return vector_times_matrix(a, w, c);  // memory-bound: read W once, pack nothing
    if (transposed_) {  // W: (n, k) row-major is W^T: (k, n) column-major
      Eigen::internal::general_matrix_matrix_product<Eigen::Index, T, RowMajor, false, T, ColMajor, false,
                                                     RowMajor, 1>::run(m_, n_, k_, a, lda_, w, ldw_, c, 1,
                                                                       ldc_, T(1), blocking_, nullptr);
    } else {
      Eigen::internal::general_matrix_matrix_product<Eigen::Index, T, RowMajor, false, T, RowMajor, false,
                                                     RowMajor, 1>::run(m_, n_, k_, a, lda_, w, ldw_, c, 1,
                                                                       ldc_, T(1), blocking_, nullptr);
    }
  }

 private:
  using Strided = Eigen::Map<const RowMatrix<T>, 0, Eigen::OuterStride<>>;

  void vector_times_matrix(const T* a, const T* w, T* c) {
    Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>> a_row(a, k_);
    Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>> c_row(c, n_);
    if (transposed_) c_row.noalias() += a_row * Strided(w, n_, k_, Eigen::OuterStride<>(ldw_)).transpose();
    else c_row.noalias() += a_row * Strided(w, k_, n_, Eigen::OuterStride<>(ldw_));
  }

  Eigen::Index m_, n_, k_, lda_, ldw_, ldc_;
  bool transposed_;
  Eigen::internal::gemm_blocking_space<Eigen::RowMajor, T, T, Eigen::Dynamic, Eigen::Dynamic, Eigen::Dynamic, 1,
                                       false>
      blocking_;
};

}  // namespace fastrnn
