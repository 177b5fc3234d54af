// The sequence driver (see sequence.h): one loop for every cell kind in cells.h.
#include "sequence.h"

#include <Eigen/Core>
#include <algorithm>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

#include "cells.h"
#include "gemm.h"
#include "memory.h"
#include "threads.h"

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

template <typename T>
void init_state(Matrix<T>& s, const T* s0) {
  if (s0) s = ConstMatrixMap<T>(s0, s.rows(), s.cols());
  else s.setZero();
}

const int64_t* offset(const int64_t* lengths, Index b0) { return lengths ? lengths + b0 : nullptr; }

// The products of one slice and step, with the weights packed once per run of the time loop
// (a sequence, or a chunk of a long one): the recurrent one, by w_hh, and where each thread
// has batch rows of its own (all units), the input one, by w_ih: (G*H, I).
// Forward, for every gate block k:  out[:, k*H + j] += in (rows, K) . w[k*H + j, :]
//   with w: (G*H, K), w_hh (K = H) or w_ih (K = I), for the slice's units j. With all units in
//   the slice this is one product.
// Backward, by w_hh:                 out[:, j] += d (rows, G*H) . w_hh[:, j]
//   for the slice's units j: the first `shared` columns of d come from the gate gradients and,
//   for GRU, the last block's from a (rows, H) buffer of its own.
// Backward, by w_ih (K = I):         out (rows, I) += d (rows, G*H) . w_ih
template <typename T>
class RecurrentProduct {
 public:
  // w: w_hh, or w_ih with K = I. `steps`: products to come.
  RecurrentProduct(const T* w, const Slice& sl, Index G, Index H, Index shared, bool forward, Index steps,
                   Index K = -1)
      : H_(H), G_(G), K_(K < 0 ? H : K) {
    const Index rows = sl.b1 - sl.b0, units = sl.j1 - sl.j0;
    if (!forward && K >= 0) {
      // w_ih as a (K, G*H) column-major left factor.
      backward_ = std::make_unique<PackedWeights<T, Eigen::ColMajor>>(w, K, K, G * H, rows, steps);
    } else if (!forward) {
      // w_hh[:shared, j0:j1] and w_hh[shared:, j0:j1] as (units, ...) column-major left factors.
      backward_ = std::make_unique<PackedWeights<T, Eigen::ColMajor>>(w + sl.j0, H, units, shared, rows, steps);
      if (shared < G * H)
        backward_own_ = std::make_unique<PackedWeights<T, Eigen::ColMajor>>(w + shared * H + sl.j0, H, units,
                                                                            G * H - shared, rows, steps);
    } else if (units == H) {
      forward_.push_back(std::make_unique<PackedWeights<T, Eigen::RowMajor>>(w, K_, G * H, K_, rows, steps));
    } else {
      for (Index k = 0; k < G; ++k)  // the slice's rows of gate block k: (units, K)
        forward_.push_back(
            std::make_unique<PackedWeights<T, Eigen::RowMajor>>(w + (k * H + sl.j0) * K_, K_, units, K_, rows,
                                                                steps));
    }
  }

  // Each thread packs its own slice's weights, at the start of the parallel region.
  void pack() noexcept {
    for (auto& f : forward_) f->pack();
    if (backward_) backward_->pack();
    if (backward_own_) backward_own_->pack();
  }

  // in: the slice's first row of a (B, K) input, column 0; out: its first row of a (B, G*H)
  // buffer, column j0.
  void forward(const T* in, T* out) {
    for (size_t k = 0; k < forward_.size(); ++k) forward_[k]->accumulate(in, K_, out + k * H_, G_ * H_);
  }
  // d: the slice's first row of the (B, G*H) gate gradients, column 0; d_own: its first row of
  // the (B, H) last-block buffer (GRU); out: its first row of a (B, H) state, column j0, or of
  // the (B, I) input gradient.
  void backward(const T* d, const T* d_own, T* out) {
    backward_->accumulate(d, G_ * H_, out, K_);
    if (backward_own_) backward_own_->accumulate(d_own, H_, out, K_);
  }

 private:
  Index H_, G_, K_;
  std::vector<std::unique_ptr<PackedWeights<T, Eigen::RowMajor>>> forward_;
  std::unique_ptr<PackedWeights<T, Eigen::ColMajor>> backward_, backward_own_;
};

// The products one slice needs: the recurrent one, and where inputs are projected (and their
// gradients taken) step by step, the input one.
template <typename T>
struct SliceProducts {
  std::unique_ptr<RecurrentProduct<T>> recurrent, input;

  void pack() noexcept {
    recurrent->pack();
    if (input) input->pack();
  }
};

// Runs body(slice, products, split) for every slice of `split` (threads.h, run_slices), each
// slice with its own products. w_ih given: also make the input products (w_ih: (G*H, I)).
// steps: how many steps the bodies will run.
template <typename T, typename Body>
void run_slices(const Split& split, const T* w_hh, Index B, Index H, Index G, Index shared, bool forward,
                Index steps, Body body, const T* w_ih = nullptr, Index I = 0) {
  auto products_for = [&](const Slice& sl) {
    SliceProducts<T> p;
    p.recurrent = std::make_unique<RecurrentProduct<T>>(w_hh, sl, G, H, shared, forward, steps);
    if (w_ih) p.input = std::make_unique<RecurrentProduct<T>>(w_ih, sl, G, H, shared, forward, steps, I);
    return p;
  };
  fastrnn::run_slices(split, B, H, products_for, body);
}

// Rows of a tile whose step t is padding: set the tile's row in dst from src, or to zero.
template <typename View, typename Src>
void keep_padded(View dst, const Src& src, const int64_t* lengths, Index t) {
  if (!lengths) return;
  for (Index b = 0; b < dst.rows(); ++b)
    if (!valid(lengths, b, t)) dst.row(b) = src.row(b);
}
template <typename View>
void zero_padded(View dst, const int64_t* lengths, Index t) {
  if (!lengths) return;
  for (Index b = 0; b < dst.rows(); ++b)
    if (!valid(lengths, b, t)) dst.row(b).setZero();
}
template <typename T>
void zero_padded_gates(T* g, const Tile& tile, Index G, const int64_t* lengths, Index t) {
  for (Index k = 0; k < G; ++k) zero_padded(gate(g, tile, k), lengths, t);
}

// ---------------------------------------------------------------------------------------------
// Forward unroll.

// Buffers the threads share. States are double-buffered: a step reads one and writes the other.
template <typename T>
struct ForwardBuffers {
  Matrix<T> h[2], c[2];  // (B, H)
  Matrix<T> gh;          // (B, G*H) GRU's recurrent projections
  Matrix<T> hn;          // (B, H) GRU's W_hn h + b_hn when not training
  Matrix<T> step_gates;  // (B, G*H) one step's gates, for inference projected step by step
  Eigen::Matrix<T, 1, Eigen::Dynamic> bias;  // (G*H,) the biases added to the input projection
};

// Steps [s0, s1) of the slice; `gates` holds the input projections from time t_first on.
// With `input`, each step's projection is made here instead, just before the recurrent product
// adds to it: into `gates` (the workspace, when training) or, with gates null, into the slice's
// part of buf.step_gates.
template <typename T, typename Cell>
void forward_slice(const ForwardArgs<T>& a, T* gates, Index t_first, Index s0, Index s1, ForwardBuffers<T>& buf,
                   RecurrentProduct<T>& recurrent, RecurrentProduct<T>* input, const Slice& sl,
                   const Split& split) {
  const Index steps = a.d.T, B = a.d.B, H = a.d.H, G = Cell::kGates, GH = G * H;
  const Index b0 = sl.b0, j0 = sl.j0;
  const Tile tile{sl.b1 - b0, sl.j1 - j0, H, GH, H};
  const int64_t* lengths = offset(a.lengths, b0);
  const Index first = b0 * H + j0;  // offset of the tile in a (B, H) buffer

  for (Index s = s0; s < s1; ++s) {
    const Index t = a.reverse ? steps - 1 - s : s;
    const Index row = t * B + b0;  // the slice's first row at step t, in (T*B, ...) buffers
    T* h = buf.h[s % 2].data();
    T* h_new = buf.h[(s + 1) % 2].data();
    T* g_t = gates ? gates + ((t - t_first) * B + b0) * GH + j0 : buf.step_gates.data() + b0 * GH + j0;
    if (input) {
      for (Index k = 0; k < G; ++k) gate(g_t, tile, k).rowwise() = buf.bias.segment(k * H + j0, tile.units).array();
      input->forward(a.x + row * a.d.I, g_t);  // (rows, G*H) += x_t (rows, I) . w_ih^T
    }
    if (a.training) state(a.ws.h_prev + row * H + j0, tile) = state(h + first, tile);
    if constexpr (Cell::kSeparateRecurrent) {
      T* gh = buf.gh.data() + b0 * GH + j0;
      for (Index k = 0; k < G; ++k) {
        if (a.w.b_hh) gate(gh, tile, k).rowwise() = ConstRowMap<T>(a.w.b_hh + k * H + j0, tile.units).array();
        else gate(gh, tile, k).setZero();
      }
      recurrent.forward(h + b0 * H, gh);
      T* hn = a.training ? a.ws.hn + row * H + j0 : buf.hn.data() + first;
      Cell::forward(tile, g_t, gh, h + first, h_new + first, hn);
    } else if constexpr (Cell::kHasCellState) {
      T* c = buf.c[s % 2].data();
      T* c_new = buf.c[(s + 1) % 2].data();
      if (a.training) state(a.ws.c_prev + row * H + j0, tile) = state(c + first, tile);
      recurrent.forward(h + b0 * H, g_t);
      Cell::forward(tile, g_t, c + first, h_new + first, c_new + first);
      keep_padded(state(c_new + first, tile), state(c + first, tile), lengths, t);
    } else {
      recurrent.forward(h + b0 * H, g_t);
      Cell::forward(tile, g_t, h_new + first);
    }
    keep_padded(state(h_new + first, tile), state(h + first, tile), lengths, t);  // padding keeps the state
    auto y = state(a.y + row * H + j0, tile);
    y = state(h_new + first, tile);
    zero_padded(y, lengths, t);                                                  // ... and outputs zero
    step_barrier(split, sl);  // the next step's product reads every unit of h_new
  }
  if (s1 < steps) return;  // more chunks to come
  state(a.h_n + first, tile) = state(buf.h[steps % 2].data() + first, tile);
  if constexpr (Cell::kHasCellState) state(a.c_n + first, tile) = state(buf.c[steps % 2].data() + first, tile);
}

// The biases that are simply added to the input projection: b_ih, and b_hh where it enters
// the same pre-activation.
template <typename T, typename Cell>
Eigen::Matrix<T, 1, Eigen::Dynamic> input_bias(const ForwardArgs<T>& a) {
  const Index GH = Cell::kGates * a.d.H;
  Eigen::Matrix<T, 1, Eigen::Dynamic> bias = Eigen::Matrix<T, 1, Eigen::Dynamic>::Zero(GH);
  if (a.w.b_ih) bias += ConstRowMap<T>(a.w.b_ih, GH);
  if (!Cell::kSeparateRecurrent && a.w.b_hh) bias += ConstRowMap<T>(a.w.b_hh, GH);
  return bias;
}

// Input projections of steps [t0, t1) (all batch rows) into `gates`: (t1 - t0) * B rows of
// G*H, started from the biases (added once, not per step) so that the GEMM accumulates onto
// them instead of onto a zeroed buffer.
template <typename T, typename Cell>
void project_inputs(const ForwardArgs<T>& a, const Eigen::Matrix<T, 1, Eigen::Dynamic>& bias, Index t0,
                    Index t1, T* gates) {
  const Index B = a.d.B, I = a.d.I, GH = Cell::kGates * a.d.H, rows = (t1 - t0) * B;
  MatrixMap<T> out(gates, rows, GH);
  out.rowwise() = bias;
  out.noalias() += ConstMatrixMap<T>(a.x + t0 * B * I, rows, I) * ConstMatrixMap<T>(a.w.w_ih, GH, I).transpose();
}

// Steps go in chunks of at most about 4 MB of gates, which can stay in cache (the L2s and the
// shared L3) from one pass over a chunk to the next instead of going out to memory and back:
// for inference projected by GEMM, the input projection and the time loop; backward, the time
// loop and the weight gradients. Inference needs nothing more than a chunk's gates. Training
// keeps them all, and its backward gains only where they would not stay in the last-level
// cache anyway, and loses on GEMMs of few rows: so it is cut into chunks only beyond
// kTrainingChunkingBytes of gates, of kMinChunkRows rows or more. The training forward is not
// chunked: it gained nothing. bench/NOTES.md, "kChunkBytes, kTrainingChunkingBytes, kMinChunkRows".
constexpr std::size_t kChunkBytes = std::size_t(4) << 20;
constexpr std::size_t kTrainingChunkingBytes = std::size_t(32) << 20;  // a large L3
constexpr Index kMinChunkRows = 1024;

// Chunks of the steps, in order, of sizes differing by one at most.
struct Chunks {
  Index steps, count;
  Index begin(Index k) const { return steps * k / count; }  // chunk k: [begin(k), begin(k + 1))
  Index largest() const { return (steps + count - 1) / count; }
  // The first time index of chunk k: with reverse, step s is time steps - 1 - s.
  Index first_time(Index k, bool reverse) const { return reverse ? steps - begin(k + 1) : begin(k); }
};

// bytes: the size of one value. backward: training's backward, whose gates are all kept, and
// which chunks only under the rule above; inference always chunks.
Chunks chunks_of(Index steps, Index B, Index GH, std::size_t bytes, bool backward) {
  const Index fit = std::max<Index>(1, Index(kChunkBytes / bytes) / std::max<Index>(1, B * GH));
  const Index count = std::max<Index>(1, (steps + fit - 1) / fit);
  const double gate_bytes = double(steps) * B * GH * bytes;
  const bool one = gate_bytes <= kTrainingChunkingBytes || steps / count * B < kMinChunkRows;
  return {steps, backward && one ? 1 : count};
}

template <typename T, typename Cell>
void forward(const ForwardArgs<T>& a) {
  const Index steps = a.d.T, B = a.d.B, H = a.d.H;
  const Index GH = Cell::kGates * H;

  ForwardBuffers<T> buf;
  for (auto& h : buf.h) h.resize(B, H);
  init_state(buf.h[0], a.h0);
  if constexpr (Cell::kHasCellState) {
    for (auto& c : buf.c) c.resize(B, H);
    init_state(buf.c[0], a.c0);
  }
  if constexpr (Cell::kSeparateRecurrent) {
    buf.gh.resize(B, GH);
    if (!a.training) buf.hn.resize(B, H);
  }
  buf.bias = input_bias<T, Cell>(a);
  const Split split = choose_split(B, H, GH, steps);
  auto unroll = [&](T* gates, Index t_first, Index s0, Index s1, bool step_by_step) {
    run_slices<T>(
        split, a.w.w_hh, B, H, Cell::kGates, GH, /*forward=*/true, s1 - s0,
        [&](const Slice& sl, SliceProducts<T>& p, const Split& used) {
          forward_slice<T, Cell>(a, gates, t_first, s0, s1, buf, *p.recurrent, p.input.get(), sl, used);
        },
        step_by_step ? a.w.w_ih : nullptr, a.d.I);
  };

  // Where each thread has rows of the batch of its own (or one thread has them all), it projects
  // its rows step by step, with w_ih packed once, into gates still in its cache when the
  // recurrent product and the cell read them: into the workspace when training, into one step's
  // buffer for inference. bench/NOTES.md, "Inputs projected step by step".
  if (inputs_step_by_step(split, B)) {
    if (!a.training) buf.step_gates.resize(B, GH);
    return unroll(a.training ? a.ws.gates : nullptr, 0, 0, steps, true);
  }
  // Otherwise the projection is a GEMM: over all steps into the workspace, where training keeps
  // every step's gates for BPTT, or over a chunk of steps into a chunk's buffer, reused chunk
  // after chunk and call after call.
  const Chunks chunks = a.training ? Chunks{steps, 1} : chunks_of(steps, B, GH, sizeof(T), /*backward=*/false);
  Buffer<T> chunk_gates;
  if (!a.training) chunk_gates = Buffer<T>(static_cast<size_t>(chunks.largest() * B * GH));
  for (Index k = 0; k < chunks.count; ++k) {  // one, with no steps, for the final state
    const Index s0 = chunks.begin(k), s1 = chunks.begin(k + 1);
    const Index t0 = chunks.first_time(k, a.reverse);
    T* gates = a.training ? a.ws.gates + t0 * B * GH : chunk_gates.data();
    project_inputs<T, Cell>(a, buf.bias, t0, t0 + (s1 - s0), gates);
    unroll(gates, t0, s0, s1, false);
  }
}

// ---------------------------------------------------------------------------------------------
// Backpropagation through time.

// The bias gradients are column sums of the gate gradients over every step and row. Each slice
// adds its rows up in the time loop, a step at a time, while they are still in cache, instead
// of reading them all back from memory after the loop (bench/NOTES.md, "Bias sums in the time
// loop (ColumnSums)"). Rows go in order into a
// partial sum, which is added to the total every kBlock rows or so, so that the rounding error
// grows with the block length and the number of blocks rather than with the rows (T*B of
// them); the slices' sums are added in slice order.
template <typename T>
class ColumnSums {
  using Row = Eigen::Array<T, 1, Eigen::Dynamic>;
  static constexpr Index kBlock = 256;

 public:
  explicit ColumnSums(Index cols) : total_(Row::Zero(cols)), partial_(Row::Zero(cols)) {}
  Index size() const { return total_.size(); }

  // One step of a slice: the tile of each of the first `blocks` gate blocks of g (see gate),
  // into columns k*H + j0 onwards for block k.
  void add(const T* g, const Tile& tile, Index blocks, Index j0) {
    for (Index k = 0; k < blocks; ++k) {
      auto block = gate(g, tile, k);
      auto sum = partial_.segment(k * tile.H + j0, tile.units);
      for (Index r = 0; r < tile.rows; ++r) sum += block.row(r);
    }
    pending_ += tile.rows;
    if (pending_ < kBlock) return;
    total_ += partial_;
    partial_.setZero();
    pending_ = 0;
  }

  // out (cols,) = the sums of all slices.
  static void total(const std::vector<ColumnSums>& slices, T* out) {
    Eigen::Map<Row> sum(out, slices.front().size());
    sum.setZero();
    for (const ColumnSums& s : slices) sum += s.total_ + s.partial_;
  }

 private:
  Row total_, partial_;
  Index pending_ = 0;
};

// Per slice, the sums behind the bias gradients: of the gate gradients (b_ih, and b_hh where it
// enters the same pre-activation) and of GRU's last recurrent block, whose gradient backward
// leaves in the workspace's hn.
template <typename T>
struct BiasSums {
  std::vector<ColumnSums<T>> gates, own;
};

template <typename T>
struct BackwardBuffers {
  Matrix<T> dh[2], dc[2];  // (B, H) gradients w.r.t. the state after the current step
  Matrix<T> dh_total;      // (B, H) that plus the output's gradient
  Matrix<T> scratch;       // (B, H) LSTM
};

// Steps [s0, s1), from the last back.
// With biases, each step's gate gradients are added to the slice's sums.
template <typename T, typename Cell>
void backward_slice(const BackwardArgs<T>& a, Index s0, Index s1, BackwardBuffers<T>& buf,
                    RecurrentProduct<T>& recurrent, RecurrentProduct<T>* input, BiasSums<T>& sums,
                    const Slice& sl, const Split& split) {
  const Index steps = a.d.T, B = a.d.B, H = a.d.H, G = Cell::kGates, GH = G * H;
  const Index b0 = sl.b0, j0 = sl.j0;
  const Tile tile{sl.b1 - b0, sl.j1 - j0, H, GH, H};
  const int64_t* lengths = offset(a.lengths, b0);
  const Index first = b0 * H + j0;
  ColumnSums<T>* gate_sums = sums.gates.empty() ? nullptr : &sums.gates[sl.k];
  ColumnSums<T>* own_sums = sums.own.empty() ? nullptr : &sums.own[sl.k];

  for (Index s = s1 - 1; s >= s0; --s) {
    const Index t = a.reverse ? steps - 1 - s : s;
    const Index row = t * B + b0;
    const Index now = (steps - 1 - s) % 2;
    T* dh = buf.dh[now].data() + first;
    T* dh_prev = buf.dh[1 - now].data() + first;
    T* dh_total = buf.dh_total.data() + first;
    T* g_t = a.ws.gates + row * GH + j0;
    state(dh_total, tile) = state(dh, tile);
    if (a.dy) {
      state(dh_total, tile) += state(a.dy + row * H + j0, tile);
      keep_padded(state(dh_total, tile), state(dh, tile), lengths, t);  // a padded output is a constant
    }
    if constexpr (Cell::kSeparateRecurrent) {
      T* hn = a.ws.hn + row * H + j0;
      Cell::backward(tile, g_t, hn, a.ws.h_prev + row * H + j0, dh_total, dh_prev, buf.scratch.data() + first);
      zero_padded(state(hn, tile), lengths, t);
      if (own_sums) own_sums->add(hn, Tile{tile.rows, tile.units, H, H, H}, 1, j0);
    } else if constexpr (Cell::kHasCellState) {
      T* dc = buf.dc[now].data() + first;
      T* dc_prev = buf.dc[1 - now].data() + first;
      Cell::backward(tile, g_t, a.ws.c_prev + row * H + j0, dh_total, dc, dc_prev,
                     buf.scratch.data() + first);
      keep_padded(state(dc_prev, tile), state(dc, tile), lengths, t);
      state(dh_prev, tile).setZero();
    } else {
      Cell::backward(tile, g_t, dh_total);
      state(dh_prev, tile).setZero();
    }
    zero_padded_gates(g_t, tile, G, lengths, t);
    if (gate_sums) gate_sums->add(g_t, tile, G, j0);
    if (input) {  // dx_t (rows, I) = d_gates (rows, G*H) . w_ih
      T* dx = a.dx + row * a.d.I;
      MatrixMap<T>(dx, tile.rows, a.d.I).setZero();
      input->backward(g_t, nullptr, dx);
    }
    step_barrier(split, sl);  // the product reads every unit's gate gradients
    recurrent.backward(a.ws.gates + row * GH, a.ws.hn ? a.ws.hn + row * H : nullptr, dh_prev);
    // Padding passes the gradient through exactly: set after the product, so that not even a
    // zero row times an inf in w_hh can touch it.
    keep_padded(state(dh_prev, tile), state(dh_total, tile), lengths, t);
  }
  if (s0 > 0) return;  // more chunks to come
  state(a.dh0 + first, tile) = state(buf.dh[steps % 2].data() + first, tile);
  if constexpr (Cell::kHasCellState) state(a.dc0 + first, tile) = state(buf.dc[steps % 2].data() + first, tile);
}

// The weight gradients, and `with_dx` the input gradient, from rows [first, first + rows) of
// the (T*B, ...) buffers (a chunk of steps), as products over all those rows at once. The weight
// gradients are set from the first chunk and added to from the others (`add`).
//   dx rows [r0, r1):          d_gates[r0:r1] . w_ih                       (rows, I)
//   rows [g0, g1) of dw_ih:    d_gates[:, g0:g1]^T . x                     (n, I)
//   ... of dw_hh:              d_gates[:, g0:g1]^T . h_prev (GRU's last block: hn's gradient)
// Each thread takes a share of dw's rows (d_gates' columns) and of dx's rows, as products of its
// own (on two threads or more, each single-threaded): its dw_ih and dw_hh share the packing of
// its columns of d_gates (add_gradient_products). One share a thread, not more: each share
// packs all of x and h_prev. Eigen's own threaded GEMM spends much of its time on products
// this size keeping its threads in step (bench/NOTES.md, "Weight gradients shared out by gate
// columns").
template <typename T, typename Cell>
void gradient_products(const BackwardArgs<T>& a, Index shared, Index first, Index rows, bool add, bool with_dx) {
  const Index I = a.d.I, H = a.d.H, GH = Cell::kGates * H;
  const T* x = a.x + first * I;
  const T* h_prev = a.ws.h_prev + first * H;
  const T* d_gates = a.ws.gates + first * GH;

  auto input_rows = [&](Index r0, Index r1) {
    MatrixMap<T>(a.dx + (first + r0) * I, r1 - r0, I).noalias() =
        ConstMatrixMap<T>(d_gates + r0 * GH, r1 - r0, GH) * ConstMatrixMap<T>(a.w.w_ih, GH, I);
  };
  auto gate_columns = [&](Index g0, Index g1) {
    if (!add) {
      std::fill(a.dw_ih + g0 * I, a.dw_ih + g1 * I, T(0));
      std::fill(a.dw_hh + g0 * H, a.dw_hh + g1 * H, T(0));
    }
    const Index s1 = std::clamp(shared, g0, g1);  // columns [g0, s1) are the same on both sides
    add_gradient_products<T>(rows, s1 - g0, {{d_gates + g0, GH, x, I, a.dw_ih + g0 * I},
                                             {d_gates + g0, GH, h_prev, H, a.dw_hh + g0 * H}});
    if (g1 > s1)  // GRU's last block: the recurrent side's gradient is hn's
      add_gradient_products<T>(rows, g1 - s1, {{d_gates + s1, GH, x, I, a.dw_ih + s1 * I},
                                               {a.ws.hn + first * H + (s1 - shared), H, h_prev, H, a.dw_hh + s1 * H}});
  };

  const double work = double(rows) * GH * ((with_dx ? 2 : 1) * I + H);  // multiply-adds
  const int threads = static_cast<int>(std::clamp<double>(work / kMinWork, 1, Eigen::nbThreads()));
  // Column cuts on multiples of 16.
  auto column = [&](int k) { return k == threads ? GH : std::min(GH, (GH * k / threads + 15) / 16 * 16); };
  auto share = [&](int k) {  // thread k's columns of dw and rows of dx
    gate_columns(column(k), column(k + 1));
    if (with_dx) input_rows(rows * k / threads, rows * (k + 1) / threads);
  };
  run_shares(threads, share);
}

// db_ih (G*H,) and db_hh (G*H,), those asked for, from the slices' sums.
template <typename T>
void bias_gradients(const BackwardArgs<T>& a, const BiasSums<T>& sums, Index shared) {
  if (!sums.gates.empty()) {
    Eigen::Matrix<T, 1, Eigen::Dynamic> db(sums.gates.front().size());
    ColumnSums<T>::total(sums.gates, db.data());
    if (a.db_ih) std::copy_n(db.data(), db.size(), a.db_ih);
    if (a.db_hh) std::copy_n(db.data(), shared, a.db_hh);
  }
  if (!sums.own.empty()) ColumnSums<T>::total(sums.own, a.db_hh + shared);
}

template <typename T, typename Cell>
void backward(const BackwardArgs<T>& a) {
  const Index steps = a.d.T, B = a.d.B, H = a.d.H;
  const Index GH = Cell::kGates * H;

  BackwardBuffers<T> buf;
  for (auto& dh : buf.dh) dh.resize(B, H);
  buf.dh_total.resize(B, H);
  init_state(buf.dh[0], a.dh_n);
  if constexpr (Cell::kHasCellState) {
    for (auto& dc : buf.dc) dc.resize(B, H);
    init_state(buf.dc[0], a.dc_n);
  }
  if constexpr (Cell::kHasCellState || Cell::kSeparateRecurrent) buf.scratch.resize(B, H);
  // The recurrent side's gate gradients are the gate gradients, except GRU's last block,
  // which backward leaves in the workspace's hn.
  const Index shared = Cell::kSeparateRecurrent ? GH - H : GH;
  const Split split = choose_split(B, H, GH, steps);
  const Chunks chunks = chunks_of(steps, B, GH, sizeof(T), /*backward=*/true);
  // Where forward projected the inputs step by step, each step's input gradient is likewise
  // taken in the time loop, from gate gradients just made and still in cache, instead of by a
  // GEMM that reads them all back afterwards (bench/NOTES.md, "Input gradient in the time loop").
  const bool dx_in_loop = inputs_step_by_step(split, B);
  BiasSums<T> sums;
  for (int k = 0; k < split.threads; ++k) {
    if (a.db_ih || a.db_hh) sums.gates.emplace_back(GH);
    if (a.db_hh && shared < GH) sums.own.emplace_back(H);
  }
  for (Index k = chunks.count - 1; k >= 0; --k) {  // from the last back (one, with no steps, for dh0)
    const Index s0 = chunks.begin(k), s1 = chunks.begin(k + 1);
    run_slices<T>(split, a.w.w_hh, B, H, Cell::kGates, shared, /*forward=*/false, s1 - s0,
                  [&](const Slice& sl, SliceProducts<T>& p, const Split& used) {
                    backward_slice<T, Cell>(a, s0, s1, buf, *p.recurrent, p.input.get(), sums, sl, used);
                  }, dx_in_loop ? a.w.w_ih : nullptr, a.d.I);
    const Index t0 = chunks.first_time(k, a.reverse);
    gradient_products<T, Cell>(a, shared, t0 * B, (s1 - s0) * B, /*add=*/s1 < steps, !dx_in_loop);
  }
  bias_gradients(a, sums, shared);
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

}  // namespace fastrnn
