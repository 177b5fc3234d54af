// Products with Eigen's GEMM kernel that Eigen's own product would do less well: the recurrent
// product inside the time loop (PackedWeights) and the weight gradients (add_gradient_products).
//
// The recurrent product: the same weights multiply a new small matrix on every step, on one
// thread of the loop, with nothing allocated per step.
//
// Eigen's ordinary product would repack the weights into its kernel's layout on every call
// (for a small batch that costs as much as the arithmetic), allocate its buffers every time,
// and start threads of its own. `PackedWeights` packs the weights once per run of the time
// loop and runs Eigen's blocked kernel (GEBP) on each step's input alone.
//
// In Eigen's column-major terms each step computes C^T (M, N) += L (M, K) * R (K, N), where
// L is the weights, R^T is the step's (N, K) row-major input A, and C is the (N, M) row-major
// output; so a row-major C = A * L^T.
//
// A single input row (B = 1) is a matrix-vector product instead, which reads each weight once
// for one multiply-add: its speed is the speed of reading the weights from cache. It is fastest
// reading them front to back as L^T: c += a[k] * (row k of L^T) for every k, on a few
// registers' worth of c at a time, rather than row by row as L (a dot product per output, as
// Eigen's matrix-vector product does for a row-major L). So L^T is packed once per run of the
// time loop (a sequence, or a chunk of a long one), in panels as wide as eight vector registers
// (see pack_panels). Packing pays after some steps: with fewer than kPackSteps (text generated a
// step at a time: one) the products use Eigen's on L itself (for two or three rows, GEBP).
// bench/NOTES.md, "A single row: L^T in panels".
//
// Two or three rows (B = 2 or 3) are read from the same panels: each weight read serves every
// row. Eigen's kernel, made for four columns of C at a time and more, takes these one at a time,
// reading L once per row (bench/NOTES.md, "Two or three rows from the panels").
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <type_traits>

#include "memory.h"

namespace fastrnn {

using Eigen::Index;

// L: (M, K) with LhsOrder Eigen::RowMajor (element (i, k) at w[i * ldw + k]) or Eigen::ColMajor
// (at w[k * ldw + i]). N: rows of every step's input; steps: how many products there will be.
template <typename T, int LhsOrder>
class PackedWeights {
  using Traits = Eigen::internal::gebp_traits<T, T>;
  using LhsMapper = Eigen::internal::const_blas_data_mapper<T, Index, LhsOrder>;
  using RhsMapper = Eigen::internal::const_blas_data_mapper<T, Index, Eigen::ColMajor>;
  using ResMapper = Eigen::internal::blas_data_mapper<T, Index, Eigen::ColMajor, Eigen::Unaligned, 1>;
  using Packet = typename Eigen::internal::packet_traits<T>::type;
  static constexpr Index kLanes = Eigen::internal::unpacket_traits<Packet>::size;
  static constexpr int kPanelPackets = 8;  // a panel's width, in SIMD packets of L^T's columns
  static constexpr Index kPanel = kPanelPackets * kLanes;
  static constexpr Index kPackSteps = 16;
  static constexpr Index kMaxPanelRows = 3;
  // Packets of columns summed at once for `rows` rows: as many as leave a register for each
  // row's broadcast value and the weights, up to a panel. Without a fused multiply-add (SSE2,
  // the baseline build) the product needs one more, so three rows spill one sum, and still beat
  // GEBP (bench/NOTES.md, "Two or three rows from the panels").
  static constexpr int packets_for(int rows) {
    int p = kPanelPackets;
    while (p > 1 && rows * p + rows + 1 > EIGEN_ARCH_DEFAULT_NUMBER_OF_REGISTERS) p /= 2;
    return p;
  }
  static constexpr Index kAlign = std::max<Index>(1, EIGEN_MAX_ALIGN_BYTES / sizeof(T));  // values

 public:
  // Sizes the buffers; pack() fills them. They are apart so that threads can each pack their
  // own weights inside a parallel region, where nothing may throw.
  PackedWeights(const T* w, Index ldw, Index M, Index K, Index N, Index steps)
      : w_(w), ldw_(ldw), M_(M), K_(K), N_(N), empty_(M == 0 || K == 0 || N == 0),
        panels_(N <= kMaxPanelRows && steps >= kPackSteps) {
    if (empty_) return;  // nothing to multiply (and Eigen's blocking would divide by zero)
    if (panels_) {  // see panel_product
      packed_lhs_ = Buffer<T>(static_cast<size_t>(K_ * M_));
      return;
    }
    if (N_ == 1) return;  // see vector_product
    kc_ = K_, mc_ = M_, nc_ = N_;
    Eigen::internal::computeProductBlockingSizes<T, T>(kc_, mc_, nc_, Index(1));
    kc_ = std::max<Index>(kc_, 1), mc_ = std::max<Index>(mc_, 1), nc_ = std::max<Index>(nc_, 1);
    // Eigen's packing stores whole SIMD registers to aligned addresses from each block's start,
    // so every block starts on an alignment boundary, however odd kc * mc is.
    block_ = (kc_ * mc_ + kAlign - 1) / kAlign * kAlign;
    packed_lhs_ = Buffer<T>(static_cast<size_t>(blocks(K_, kc_) * blocks(M_, mc_) * block_));
    packed_rhs_ = Buffer<T>(static_cast<size_t>(kc_ * nc_));
  }
  PackedWeights(const PackedWeights&) = delete;
  PackedWeights& operator=(const PackedWeights&) = delete;

  // Once per run of the time loop, before accumulate.
  void pack() noexcept {
    if (empty_) return;
    if (panels_) return pack_panels();
    if (N_ == 1) return;
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
    if (empty_) return;
    if (panels_) {
      if (N_ == 1) return panel_product<1>(a, lda, c, ldc);
      if (N_ == 2) return panel_product<2>(a, lda, c, ldc);
      return panel_product<3>(a, lda, c, ldc);
    }
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
    return packed_lhs_.data() + ((k0 / kc_) * blocks(M_, mc_) + i0 / mc_) * block_;
  }

  // For one to three input rows: L^T in panels of kPanel columns (the last may be narrower),
  // one after the other, each (K, width) row-major, so that the product reads them front to
  // back. For a column-major L a panel is a copy of part of each of its columns (rows of L^T).
  // A row-major L is transposed, a SIMD tile at a time, into each panel in turn: Eigen's
  // transposed copy goes element by element, and tiles written across all M columns at once
  // evict each other from L1 (bench/NOTES.md, "Transposing a row-major L into panels").
  void pack_panels() {
    for (Index i0 = 0; i0 < M_; i0 += kPanel) {
      const Index width = std::min(kPanel, M_ - i0);
      T* panel = packed_lhs_.data() + i0 * K_;
      if (LhsOrder == Eigen::ColMajor) {
        for (Index k = 0; k < K_; ++k) std::copy_n(w_ + k * ldw_ + i0, width, panel + k * width);
      } else {
        transpose_rows(i0, width, panel);
      }
    }
  }

  // panel (K, width) = rows [i0, i0 + width) of a row-major L, transposed.
  // PacketBlock<Packet, ...> drops the SIMD type's attributes, as in Eigen's own kernels.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
  void transpose_rows(Index i0, Index width, T* panel) const {
    using namespace Eigen::internal;
    const T* rows = w_ + i0 * ldw_;
    const Index i_tiles = width / kLanes * kLanes, k_tiles = K_ / kLanes * kLanes;
    for (Index k = 0; k < k_tiles; k += kLanes)
      for (Index i = 0; i < i_tiles; i += kLanes) {
        PacketBlock<Packet, kLanes> tile;
        for (Index r = 0; r < kLanes; ++r) tile.packet[r] = ploadu<Packet>(rows + (i + r) * ldw_ + k);
        ptranspose(tile);
        for (Index r = 0; r < kLanes; ++r) pstoreu(panel + (k + r) * width + i, tile.packet[r]);
      }
    for (Index i = 0; i < width; ++i)  // what the tiles left: the panel's last columns, then its last rows
      for (Index k = i < i_tiles ? k_tiles : 0; k < K_; ++k) panel[k * width + i] = rows[i * ldw_ + k];
  }
#pragma GCC diagnostic pop

  // One input row, weights not packed (few steps): c (1, M) += a (1, K) * L^T.
  void vector_product(const T* a, T* c) const {
    using Row = Eigen::Matrix<T, 1, Eigen::Dynamic>;
    using Strided = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, LhsOrder>, 0,
                               Eigen::OuterStride<>>;
    Eigen::Map<Row>(c, M_).noalias() +=
        Eigen::Map<const Row>(a, K_) * Strided(w_, M_, K_, Eigen::OuterStride<>(ldw_)).transpose();
  }

  // Rows input rows (1 to kMaxPanelRows): c (Rows, M) += a (Rows, K) * L^T, a panel at a time.
  template <int Rows>
  void panel_product(const T* a, Index lda, T* c, Index ldc) const {
    for (Index i0 = 0; i0 < M_; i0 += kPanel) {
      const Index width = std::min(kPanel, M_ - i0);
      panel_columns<Rows>(a, lda, packed_lhs_.data() + i0 * K_, width, c + i0, ldc);
    }
  }

  // out (Rows, width) += a (Rows, K) * panel (K, width): the most packets of columns that the
  // registers hold for Rows rows (for one row, a whole panel: enough independent sums to hide
  // the multiply-add's latency), then fewer, then one column at a time.
  template <int Rows>
  void panel_columns(const T* a, Index lda, const T* panel, Index width, T* out, Index ldc) const {
    constexpr int P = packets_for(Rows);
    Index i = 0;
    auto take = [&](auto packets) {  // one block of packets' columns
      constexpr int n = decltype(packets)::value;
      columns<Rows, n>(a, lda, panel + i, width, out + i, ldc);
      i += n * kLanes;
    };
    while (i + P * kLanes <= width) take(std::integral_constant<int, P>{});
    if (P > 4 && i + 4 * kLanes <= width) take(std::integral_constant<int, 4>{});
    if (P > 2 && i + 2 * kLanes <= width) take(std::integral_constant<int, 2>{});
    if (P > 1 && i + kLanes <= width) take(std::integral_constant<int, 1>{});
    for (; i < width; ++i)
      for (int r = 0; r < Rows; ++r) {
        T sum = out[r * ldc + i];
        for (Index k = 0; k < K_; ++k) sum += a[r * lda + k] * panel[k * width + i];
        out[r * ldc + i] = sum;
      }
  }

  // out (Rows, Packets * kLanes) += a (Rows, K) * cols: the first columns of a panel with row
  // stride `stride`; out is kept in registers.
  template <int Rows, int Packets>
  void columns(const T* a, Index lda, const T* cols, Index stride, T* out, Index ldc) const {
    using namespace Eigen::internal;
    Packet acc[Rows][Packets];
    for (int r = 0; r < Rows; ++r)
      for (int p = 0; p < Packets; ++p) acc[r][p] = ploadu<Packet>(out + r * ldc + p * kLanes);
    for (Index k = 0; k < K_; ++k) {
      Packet ak[Rows];
      for (int r = 0; r < Rows; ++r) ak[r] = pset1<Packet>(a[r * lda + k]);
      const T* row = cols + k * stride;
      for (int p = 0; p < Packets; ++p) {
        const Packet w = ploadu<Packet>(row + p * kLanes);
        for (int r = 0; r < Rows; ++r) acc[r][p] = pmadd(w, ak[r], acc[r][p]);
      }
    }
    for (int r = 0; r < Rows; ++r)
      for (int p = 0; p < Packets; ++p) pstoreu(out + r * ldc + p * kLanes, acc[r][p]);
  }

  const T* w_;
  Index ldw_, M_, K_, N_;
  bool empty_;  // M, K or N is zero
  Index kc_ = 0, mc_ = 0, nc_ = 0;
  Index block_ = 0;  // the distance between packed blocks of L: kc * mc rounded up to kAlign
  bool panels_;  // at most kMaxPanelRows rows: packed_lhs_ holds L^T in panels
  // From the block cache: a fresh block of this size each call would cost a page fault for each
  // page written (bench/NOTES.md, "Packed weights from the block cache").
  Buffer<T> packed_lhs_, packed_rhs_;
};

// ---------------------------------------------------------------------------------------------
// The weight gradients over many rows at once: dw_ih = d^T x and dw_hh = d^T h_prev read the
// same gate gradients d, the largest operand. Eigen packs both operands of each product, so as
// two products d is packed twice; here it is packed once for both, a block of rows at a time,
// and each product packs only its own narrow x or h_prev (bench/NOTES.md, "Sharing the packing
// of d").
//
// One product: dw (n, width) += d^T (n, rows) x (rows, width), with d the (rows, n) matrix at
// `d` with row stride ld_d, and x and dw row-major and contiguous. In Eigen's column-major
// terms dw^T (width, n) += x^T (width, rows) * d (rows, n): x^T is the kernel's left operand and
// d its right.
template <typename T>
struct GradientProduct {
  const T* d;
  Index ld_d;
  const T* x;
  Index width;
  T* dw;
};

// Products over many rows are blocked the same way whatever their number of rows, so that a
// row's result, or a weight gradient's sum, never depends on how the rows were cut into calls
// or shares of threads (see step_unit, workspace.h): calls and shares start on multiples of
// kRowAlign rows, within which Eigen's kernel takes its rows in groups; the depth and the
// blocks are chosen for kRowBlock rows.
constexpr Index kRowAlign = 16;
constexpr Index kRowBlock = 256;

// Eigen's blocking (kc, mc, nc) for a product of depth k, m rows of the left operand and n
// columns of the right, nc made a multiple of kRowAlign.
template <typename T>
std::array<Index, 3> fixed_blocking(Index k, Index m, Index n) {
  Index kc = k, mc = m, nc = n;
  Eigen::internal::computeProductBlockingSizes<T, T>(kc, mc, nc, Index(1));
  return {std::max<Index>(kc, 1), std::max<Index>(mc, 1), std::max<Index>(nc / kRowAlign * kRowAlign, kRowAlign)};
}

// C (N, M) += A (N, K) * L^T on the calling thread, for L (M, K) with LhsOrder as
// PackedWeights', A and C row-major with row strides lda, ldc. Blocked for kRowBlock rows,
// whatever N is: a row's result depends only on where it is in the call modulo kRowAlign, and
// on whether it is among the call's last ones (Eigen's kernel takes the rows left over from
// its groups one at a time).
template <typename T, int LhsOrder>
void multiply_rows(Index N, const T* a, Index lda, const T* w, Index ldw, Index M, Index K, T* c, Index ldc) {
  using namespace Eigen::internal;
  using Traits = gebp_traits<T, T>;
  using LhsMapper = const_blas_data_mapper<T, Index, LhsOrder>;
  using RhsMapper = const_blas_data_mapper<T, Index, Eigen::ColMajor>;
  using ResMapper = blas_data_mapper<T, Index, Eigen::ColMajor, Eigen::Unaligned, 1>;
  if (N == 0 || M == 0 || K == 0) return;
  const auto [kc, mc, nc] = fixed_blocking<T>(K, M, kRowBlock);
  Buffer<T> packed_w(static_cast<size_t>(kc * mc)), packed_a(static_cast<size_t>(kc * nc));
  gemm_pack_lhs<T, Index, LhsMapper, Traits::mr, Traits::LhsProgress, typename Traits::LhsPacket4Packing, LhsOrder>
      pack_w;
  gemm_pack_rhs<T, Index, RhsMapper, Traits::nr, Eigen::ColMajor> pack_a;
  gebp_kernel<T, T, Index, ResMapper, Traits::mr, Traits::nr, false, false> gebp;
  const LhsMapper lhs(w, ldw);
  const RhsMapper rhs(a, lda);
  const ResMapper res(c, ldc);
  for (Index j0 = 0; j0 < N; j0 += nc) {
    const Index cols = std::min(nc, N - j0);
    for (Index k0 = 0; k0 < K; k0 += kc) {
      const Index depth = std::min(kc, K - k0);
      pack_a(packed_a.data(), rhs.getSubMapper(k0, j0), depth, cols);
      for (Index i0 = 0; i0 < M; i0 += mc) {
        const Index m = std::min(mc, M - i0);
        pack_w(packed_w.data(), lhs.getSubMapper(i0, k0), depth, m);
        gebp(res.getSubMapper(i0, j0), packed_w.data(), packed_a.data(), m, depth, cols, T(1));
      }
    }
  }
}

// Every product over the same rows and n columns of d. Consecutive products with the same d
// share its packing. The rows go in units of `unit` rows (the last may be shorter), each added
// to dw in turn, from the last unit back when `descending`: so the sums over the rows of calls
// made unit by unit, in the same order, are the sums of one call over them all.
template <typename T, std::size_t P>
void add_gradient_products(Index rows, Index n, const GradientProduct<T> (&products)[P], Index unit,
                           bool descending) {
  using namespace Eigen::internal;
  using Traits = gebp_traits<T, T>;
  using LhsMapper = const_blas_data_mapper<T, Index, Eigen::ColMajor>;
  using RhsMapper = const_blas_data_mapper<T, Index, Eigen::RowMajor>;
  using ResMapper = blas_data_mapper<T, Index, Eigen::ColMajor, Eigen::Unaligned, 1>;
  Index widest = 0;
  for (const auto& p : products) widest = std::max(widest, p.width);
  if (rows == 0 || n == 0 || widest == 0) return;  // nothing to add (and Eigen's blocking would divide by zero)
  unit = std::max<Index>(unit, 1);
  const auto [kc, mc, nc] = fixed_blocking<T>(unit, widest, kRowBlock);
  Buffer<T> packed_x(static_cast<size_t>(kc * mc)), packed_d(static_cast<size_t>(kc * nc));
  gemm_pack_lhs<T, Index, LhsMapper, Traits::mr, Traits::LhsProgress, typename Traits::LhsPacket4Packing,
                Eigen::ColMajor>
      pack_x;
  gemm_pack_rhs<T, Index, RhsMapper, Traits::nr, Eigen::RowMajor> pack_d;
  gebp_kernel<T, T, Index, ResMapper, Traits::mr, Traits::nr, false, false> gebp;
  const Index units = (rows + unit - 1) / unit;
  for (Index u = 0; u < units; ++u) {
    const Index u0 = (descending ? units - 1 - u : u) * unit, u1 = std::min(rows, u0 + unit);
    for (Index j0 = 0; j0 < n; j0 += nc) {
      const Index cols = std::min(nc, n - j0);
      for (Index k0 = u0; k0 < u1; k0 += kc) {
        const Index depth = std::min(kc, u1 - k0);
        const T* packed = nullptr;  // the d that packed_d holds
        Index packed_ld = 0;
        for (const auto& p : products) {
          if (p.width == 0) continue;
          if (p.d != packed || p.ld_d != packed_ld)
            pack_d(packed_d.data(), RhsMapper(p.d, p.ld_d).getSubMapper(k0, j0), depth, cols);
          packed = p.d, packed_ld = p.ld_d;
          const LhsMapper x(p.x, p.width);
          const ResMapper dw(p.dw, p.width);
          for (Index i0 = 0; i0 < p.width; i0 += mc) {
            const Index m = std::min(mc, p.width - i0);
            pack_x(packed_x.data(), x.getSubMapper(i0, k0), depth, m);
            gebp(dw.getSubMapper(i0, j0), packed_x.data(), packed_d.data(), m, depth, cols, T(1));
          }
        }
      }
    }
  }
}

}  // namespace fastrnn
