// The recurrent product inside the time loop: the same weights multiply a new small matrix on
// every step, on one thread of the loop, with nothing allocated per step.
//
// Eigen's ordinary product would repack the weights into its kernel's layout on every call
// (for a small batch that costs as much as the arithmetic), allocate its buffers every time,
// and start threads of its own. `PackedWeights` packs the weights once per sequence and then
// runs Eigen's blocked kernel (GEBP) on each step's input alone.
//
// In Eigen's column-major terms each step computes C^T (M, N) += L (M, K) * R (K, N), where
// L is the weights, R^T is the step's (N, K) row-major input A, and C is the (N, M) row-major
// output; so a row-major C = A * L^T.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <vector>

namespace fastrnn {

using Eigen::Index;

// L: (M, K) with LhsOrder Eigen::RowMajor (element (i, k) at w[i * ldw + k]) or Eigen::ColMajor
// (at w[k * ldw + i]). N: rows of every step's input.
template <typename T, int LhsOrder>
class PackedWeights {
  using Traits = Eigen::internal::gebp_traits<T, T>;
  using LhsMapper = Eigen::internal::const_blas_data_mapper<T, Index, LhsOrder>;
  using RhsMapper = Eigen::internal::const_blas_data_mapper<T, Index, Eigen::ColMajor>;
  using ResMapper = Eigen::internal::blas_data_mapper<T, Index, Eigen::ColMajor, Eigen::Unaligned, 1>;

 public:
  PackedWeights(const T* w, Index ldw, Index M, Index K, Index N) : w_(w), ldw_(ldw), M_(M), K_(K), N_(N) {
    if (N_ <= 1) return;  // one row: a matrix-vector product straight from w, nothing to pack
    kc_ = K_, mc_ = M_, nc_ = N_;
    Eigen::internal::computeProductBlockingSizes<T, T>(kc_, mc_, nc_, Index(1));
    kc_ = std::max<Index>(kc_, 1), mc_ = std::max<Index>(mc_, 1), nc_ = std::max<Index>(nc_, 1);
    packed_lhs_.resize(static_cast<size_t>(blocks(K_, kc_) * blocks(M_, mc_) * kc_ * mc_));
    packed_rhs_.resize(static_cast<size_t>(kc_ * nc_));
    Eigen::internal::gemm_pack_lhs<T, Index, LhsMapper, Traits::mr, Traits::LhsProgress,
                                   typename Traits::LhsPacket4Packing, LhsOrder>
        pack_lhs;
    LhsMapper lhs(w_, ldw_);
    for (Index k0 = 0; k0 < K_; k0 += kc_)
      for (Index i0 = 0; i0 < M_; i0 += mc_)
        pack_lhs(lhs_block(k0, i0), lhs.getSubMapper(i0, k0), std::min(kc_, K_ - k0), std::min(mc_, M_ - i0));
  }
  PackedWeights(const PackedWeights&) = delete;  // holds pointers into its own buffers
  PackedWeights& operator=(const PackedWeights&) = delete;

  // C (N, M) += A (N, K) * L^T; a, c row-major with row strides lda, ldc.
  void accumulate(const T* a, Index lda, T* c, Index ldc) {
    if (M_ == 0 || N_ == 0 || K_ == 0) return;
    if (N_ == 1) return vector_product(a, c);
    Eigen::internal::gemm_pack_rhs<T, Index, RhsMapper, Traits::nr, Eigen::ColMajor> pack_rhs;
    Eigen::internal::gebp_kernel<T, T, Index, ResMapper, Traits::mr, Traits::nr, false, false> gebp;
    RhsMapper rhs(a, lda);
    ResMapper res(c, ldc);
    for (Index j0 = 0; j0 < N_; j0 += nc_) {
      const Index nc = std::min(nc_, N_ - j0);
      for (Index k0 = 0; k0 < K_; k0 += kc_) {
        const Index kc = std::min(kc_, K_ - k0);
        pack_rhs(packed_rhs_.data(), rhs.getSubMapper(k0, j0), kc, nc);
        for (Index i0 = 0; i0 < M_; i0 += mc_)
          gebp(res.getSubMapper(i0, j0), lhs_block(k0, i0), packed_rhs_.data(), std::min(mc_, M_ - i0), kc, nc,
               T(1));
      }
    }
  }

 private:
  static Index blocks(Index n, Index block) { return (n + block - 1) / block; }
  T* lhs_block(Index k0, Index i0) {
    return packed_lhs_.data() + ((k0 / kc_) * blocks(M_, mc_) + i0 / mc_) * kc_ * mc_;
  }

  // One input row: c (1, M) += a (1, K) * L^T, read straight from the weights.
  void vector_product(const T* a, T* c) {
    using Row = Eigen::Matrix<T, 1, Eigen::Dynamic>;
    using Strided = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, LhsOrder>, 0,
                               Eigen::OuterStride<>>;
    Eigen::Map<Row>(c, M_).noalias() += Eigen::Map<const Row>(a, K_) * Strided(w_, M_, K_, Eigen::OuterStride<>(ldw_)).transpose();
  }

  const T* w_;
  Index ldw_, M_, K_, N_;
  Index kc_ = 0, mc_ = 0, nc_ = 0;
  std::vector<T, Eigen::aligned_allocator<T>> packed_lhs_, packed_rhs_;
};

}  // namespace fastrnn
