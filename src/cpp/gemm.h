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
//
// A single input row (B = 1) is a matrix-vector product instead, which reads each weight once
// for one multiply-add: its speed is the speed of reading the weights from cache. It is fastest
// reading them front to back as L^T, (K, M) row-major: c += a[k] * (row k of L^T) for every k,
// on a few registers' worth of c at a time. Read row by row as L (a dot product per output,
// as Eigen's matrix-vector product does for a row-major L) it takes 1.7 times as long here
// (Zen 5, 512 KB of weights in L2: 4.3 us against 2.5 us). A column-major L is already L^T row-major;
// a row-major L is transposed into that layout once per sequence.
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
  using Packet = typename Eigen::internal::packet_traits<T>::type;
  static constexpr Index kLanes = Eigen::internal::unpacket_traits<Packet>::size;

 public:
  // Sizes the buffers; pack() fills them. They are apart so that threads can each pack their
  // own weights inside a parallel region, where nothing may throw.
  PackedWeights(const T* w, Index ldw, Index M, Index K, Index N) : w_(w), ldw_(ldw), M_(M), K_(K), N_(N) {
    if (N_ == 0) return;
    if (N_ == 1) {  // one row: see vector_product
      if (LhsOrder == Eigen::RowMajor || ldw_ != M_) packed_lhs_.resize(static_cast<size_t>(K_ * M_));
      return;
    }
    kc_ = K_, mc_ = M_, nc_ = N_;
    Eigen::internal::computeProductBlockingSizes<T, T>(kc_, mc_, nc_, Index(1));
    kc_ = std::max<Index>(kc_, 1), mc_ = std::max<Index>(mc_, 1), nc_ = std::max<Index>(nc_, 1);
    packed_lhs_.resize(static_cast<size_t>(blocks(K_, kc_) * blocks(M_, mc_) * kc_ * mc_));
    packed_rhs_.resize(static_cast<size_t>(kc_ * nc_));
  }
  PackedWeights(const PackedWeights&) = delete;  // holds pointers into its own buffers
  PackedWeights& operator=(const PackedWeights&) = delete;

  // Once per sequence, before accumulate.
  void pack() noexcept {
    if (N_ == 0) return;
    if (N_ == 1) return pack_transposed();
    Eigen::internal::gemm_pack_lhs<T, Index, LhsMapper, Traits::mr, Traits::LhsProgress,
                                   typename Traits::LhsPacket4Packing, LhsOrder>
        pack_lhs;
    LhsMapper lhs(w_, ldw_);
    for (Index k0 = 0; k0 < K_; k0 += kc_)
      for (Index i0 = 0; i0 < M_; i0 += mc_)
        pack_lhs(lhs_block(k0, i0), lhs.getSubMapper(i0, k0), std::min(kc_, K_ - k0), std::min(mc_, M_ - i0));
  }

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

  // For one input row: L^T as (K, M) row-major, row stride ldt_. Column-major weights are that
  // already, but a thread's slice of units is only part of each row: it is copied into
  // packed_lhs_ (where its rows follow each other, the hardware prefetcher, fetching ahead,
  // brings in no other thread's units). Row-major weights are transposed into packed_lhs_, a
  // SIMD tile at a time (Eigen's transposed copy goes element by element down the columns:
  // 12 % of an LSTM inference on 100 steps of one sequence).
  // PacketBlock<Packet, ...> drops the SIMD type's attributes, as in Eigen's own kernels.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
  void pack_transposed() {
    if (LhsOrder == Eigen::ColMajor && ldw_ == M_) {
      lt_ = w_, ldt_ = ldw_;
      return;
    }
    using namespace Eigen::internal;
    T* lt = packed_lhs_.data();
    lt_ = lt, ldt_ = M_;
    if (LhsOrder == Eigen::ColMajor) {
      for (Index k = 0; k < K_; ++k) std::copy_n(w_ + k * ldw_, M_, lt + k * M_);
      return;
    }
    const Index m_tiles = M_ / kLanes * kLanes, k_tiles = K_ / kLanes * kLanes;
    for (Index i = 0; i < m_tiles; i += kLanes)
      for (Index k = 0; k < k_tiles; k += kLanes) {
        PacketBlock<Packet, kLanes> tile;
        for (Index r = 0; r < kLanes; ++r) tile.packet[r] = ploadu<Packet>(w_ + (i + r) * ldw_ + k);
        ptranspose(tile);
        for (Index r = 0; r < kLanes; ++r) pstoreu(lt + (k + r) * M_ + i, tile.packet[r]);
      }
    for (Index i = 0; i < M_; ++i)  // what the tiles left: the last columns of L^T, then its last rows
      for (Index k = i < m_tiles ? k_tiles : 0; k < K_; ++k) lt[k * M_ + i] = w_[i * ldw_ + k];
  }
#pragma GCC diagnostic pop

  // One input row: c (1, M) += a (1, K) * L^T, eight SIMD packets of columns at a time (enough
  // independent sums to hide the multiply-add's latency), then fewer for the last columns.
  void vector_product(const T* a, T* c) const {
    Index i = 0;
    for (; i + 8 * kLanes <= M_; i += 8 * kLanes) vector_columns<8>(a, i, c);
    if (i + 4 * kLanes <= M_) vector_columns<4>(a, i, c), i += 4 * kLanes;
    if (i + 2 * kLanes <= M_) vector_columns<2>(a, i, c), i += 2 * kLanes;
    if (i + kLanes <= M_) vector_columns<1>(a, i, c), i += kLanes;
    for (; i < M_; ++i) {
      T sum = c[i];
      for (Index k = 0; k < K_; ++k) sum += a[k] * lt_[k * ldt_ + i];
      c[i] = sum;
    }
  }

  // c[i0 : i0 + Packets * kLanes] += a (1, K) * those columns of L^T, kept in registers.
  template <int Packets>
  void vector_columns(const T* a, Index i0, T* c) const {
    using namespace Eigen::internal;
    Packet acc[Packets];
    for (int p = 0; p < Packets; ++p) acc[p] = ploadu<Packet>(c + i0 + p * kLanes);
    for (Index k = 0; k < K_; ++k) {
      const Packet ak = pset1<Packet>(a[k]);
      const T* row = lt_ + k * ldt_ + i0;
      for (int p = 0; p < Packets; ++p) acc[p] = pmadd(ploadu<Packet>(row + p * kLanes), ak, acc[p]);
    }
    for (int p = 0; p < Packets; ++p) pstoreu(c + i0 + p * kLanes, acc[p]);
  }

  const T* w_;
  Index ldw_, M_, K_, N_;
  Index kc_ = 0, mc_ = 0, nc_ = 0;
  const T* lt_ = nullptr;  // one input row: L^T, (K, M) row-major with row stride ldt_
  Index ldt_ = 0;
  std::vector<T, Eigen::aligned_allocator<T>> packed_lhs_, packed_rhs_;
};

}  // namespace fastrnn
