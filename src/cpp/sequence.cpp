// The sequence driver (see sequence.h): one loop for every cell, which it knows by its layout.
#include "sequence.h"

#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

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
using Row = Eigen::Matrix<T, 1, Eigen::Dynamic>;
template <typename T>
using ConstRowMap = Eigen::Map<const Row<T>>;

template <typename T>
void init_state(Matrix<T>& s, const T* s0) {
  if (s0) s = ConstMatrixMap<T>(s0, s.rows(), s.cols());
  else s.setZero();
}

// The layout's products in step order, across its stages.
std::vector<Product> products_of(const Layout& layout) {
  std::vector<Product> all;
  for (const auto& stage : layout.stages) all.insert(all.end(), stage.begin(), stage.end());
  return all;
}

// Masks (ProductMasks): row r of `in` is batch row (row0 + r) % B, and mask is (B, n).
//   mask_rows:     out (rows, n) = in (rows, n) * mask's rows
//   add_mask_rows: out (rows, n) += in (rows, n) * mask's rows
template <typename T>
void mask_rows(const T* in, Index ld_in, Index rows, Index n, const T* mask, Index B, Index row0, T* out,
               Index ld_out) {
  for (Index r = 0; r < rows; ++r)
    ArrayView<T>(out + r * ld_out, 1, n, Eigen::OuterStride<>(n)) =
        ConstArrayView<T>(in + r * ld_in, 1, n, Eigen::OuterStride<>(n)) *
        ConstArrayView<T>(mask + ((row0 + r) % B) * n, 1, n, Eigen::OuterStride<>(n));
}
template <typename T>
void add_mask_rows(const T* in, Index ld_in, Index rows, Index n, const T* mask, Index B, Index row0, T* out,
                   Index ld_out) {
  for (Index r = 0; r < rows; ++r)
    ArrayView<T>(out + r * ld_out, 1, n, Eigen::OuterStride<>(n)) +=
        ConstArrayView<T>(in + r * ld_in, 1, n, Eigen::OuterStride<>(n)) *
        ConstArrayView<T>(mask + ((row0 + r) % B) * n, 1, n, Eigen::OuterStride<>(n));
}

// With input masks, each block's input projection reads x times its own mask: the driver then
// projects by GEMM, block by block, not step by step.
template <typename Args>
bool projects_step_by_step(const Args& a, const Split& split) {
  return inputs_step_by_step(split, a.d.B) && !a.masks.input;
}

// ---------------------------------------------------------------------------------------------
// The products of one slice, with their weights packed once per run of the time loop (a
// sequence, or a chunk of a long one).

// Forward, rows [row0, row0 + blocks*H) of w (., K), for the slice's units of each block:
//   out[:, k*H + j] += in (rows, K) . w[row0 + k*H + j, :]
// w_hh's rows of a product (K = H), or all of w_ih (K = I) for a slice of every unit. With every
// unit in the slice and no masks (per_block) this is one product.
template <typename T>
class ForwardProduct {
  using Packed = PackedWeights<T, Eigen::RowMajor>;

 public:
  ForwardProduct(const T* w, Index K, Index H, Index row0, Index blocks, const Slice& sl, Index steps,
                 bool per_block = false)
      : H_(H) {
    const Index rows = sl.b1 - sl.b0, units = sl.j1 - sl.j0;
    if (units == H && !per_block) {
      parts_.push_back(std::make_unique<Packed>(w + row0 * K, K, blocks * H, K, rows, steps));
      return;
    }
    for (Index k = 0; k < blocks; ++k)  // the slice's rows of block k: (units, K)
      parts_.push_back(std::make_unique<Packed>(w + (row0 + k * H + sl.j0) * K, K, units, K, rows, steps));
  }
  void pack() noexcept {
    for (auto& p : parts_) p->pack();
  }
  // in: the slice's first row of a (B, K) input, column 0; out: its first row of the output, at
  // column j0 of the product's first block.
  void accumulate(const T* in, Index ld_in, T* out, Index ld_out) {
    for (std::size_t k = 0; k < parts_.size(); ++k) parts_[k]->accumulate(in, ld_in, out + k * H_, ld_out);
  }
  // Block k alone (made per_block): out at column j0 of block k.
  void accumulate_block(Index k, const T* in, Index ld_in, T* out, Index ld_out) {
    parts_[k]->accumulate(in, ld_in, out, ld_out);
  }

 private:
  Index H_;
  std::vector<std::unique_ptr<Packed>> parts_;
};

// Backward: out (rows, n) += d (rows, m) . w[row0 : row0 + m, col0 : col0 + n] for w (., ld_w):
// a product's rows of w_hh and the slice's units as columns, or all of w_ih.
template <typename T>
class BackwardProduct {
 public:
  BackwardProduct(const T* w, Index ld_w, Index row0, Index m, Index col0, Index n, Index rows, Index steps)
      : packed_(w + row0 * ld_w + col0, ld_w, n, m, rows, steps) {}
  void pack() noexcept { packed_.pack(); }
  void accumulate(const T* d, Index ld_d, T* out, Index ld_out) { packed_.accumulate(d, ld_d, out, ld_out); }

 private:
  PackedWeights<T, Eigen::ColMajor> packed_;
};

// What one slice multiplies by: each product of the layout, and where inputs are projected (and
// their gradients taken) step by step, w_ih. Forward or backward. Backward, a product is one
// BackwardProduct, or with masks one per block.
template <typename T>
struct SliceProducts {
  std::vector<std::unique_ptr<ForwardProduct<T>>> forward;
  std::vector<std::vector<std::unique_ptr<BackwardProduct<T>>>> backward;
  std::unique_ptr<ForwardProduct<T>> input;
  std::unique_ptr<BackwardProduct<T>> input_grad;

  void pack() noexcept {
    for (auto& p : forward) p->pack();
    for (auto& product : backward)
      for (auto& p : product) p->pack();
    if (input) input->pack();
    if (input_grad) input_grad->pack();
  }
};

// The products of slice `sl` for `steps` steps. w_ih given: the input one too. masked: the
// recurrent products go block by block.
template <typename T>
SliceProducts<T> products_for(const Layout& layout, const Dims& d, const T* w_hh, const T* w_ih, bool forward,
                              bool masked, const Slice& sl, Index steps) {
  const Index H = d.H, GH = layout.gates * H, rows = sl.b1 - sl.b0, units = sl.j1 - sl.j0;
  SliceProducts<T> p;
  for (const Product& q : products_of(layout)) {
    if (forward) {
      p.forward.push_back(std::make_unique<ForwardProduct<T>>(w_hh, H, H, q.first * H, q.blocks, sl, steps, masked));
      continue;
    }
    auto& parts = p.backward.emplace_back();
    if (!masked) parts.push_back(std::make_unique<BackwardProduct<T>>(w_hh, H, q.first * H, q.blocks * H, sl.j0, units, rows, steps));
    for (Index k = 0; masked && k < q.blocks; ++k)
      parts.push_back(std::make_unique<BackwardProduct<T>>(w_hh, H, (q.first + k) * H, H, sl.j0, units, rows, steps));
  }
  if (w_ih && forward) p.input = std::make_unique<ForwardProduct<T>>(w_ih, d.I, H, 0, layout.gates, sl, steps);
  if (w_ih && !forward) p.input_grad = std::make_unique<BackwardProduct<T>>(w_ih, d.I, 0, GH, 0, d.I, rows, steps);
  return p;
}

// ---------------------------------------------------------------------------------------------
// Stopping a call (Stop, sequence.h).

// The calling thread (slice 0's) asks the call's Stop every `every` steps: about kPollWork
// multiply-adds of one step's products apart, some milliseconds, at most kMaxPollSteps steps.
constexpr double kPollWork = 2e7;
constexpr Index kMaxPollSteps = Index(1) << 16;

// Every thread asks before(n) at the top of its n-th step of the call (n = 0, 1, ...). A yes
// names the step after the asking thread's own: threads split by units cannot have begun it,
// since they meet at the end of every step, so all leave the loop before the same step (one
// leaving earlier would leave the others waiting at their meeting). Threads split by rows
// never meet, and leave at once.
class StopPoll {
 public:
  StopPoll(const Stop& stop, Index B, Index GH, Index H, Index I) : stop_(stop) {
    const double step_work = double(B) * GH * (H + I + 8);  // and some for the cell's math
    every_ = static_cast<Index>(std::clamp<double>(kPollWork / std::max(step_work, 1.0), 1, kMaxPollSteps));
  }

  bool before(Index n, const Split& split, const Slice& sl) {
    if (!stop_.requested) return false;
    if (sl.k == 0 && n > 0 && n % every_ == 0 && !stopped() && stop_.requested(stop_.context))
      at_.store(n + 1, std::memory_order_relaxed);  // the meeting at the step's end publishes it
    const Index at = at_.load(std::memory_order_relaxed);
    return split.by_units ? n >= at : at != kNever;
  }
  bool stopped() const { return at_.load(std::memory_order_relaxed) != kNever; }
  // After a run of the time loop, on the calling thread.
  void throw_if_stopped() const {
    if (stopped()) throw Stopped();
  }

 private:
  static constexpr Index kNever = std::numeric_limits<Index>::max();
  Stop stop_;
  Index every_ = 1;
  std::atomic<Index> at_{kNever};
};

// Rows of a tile whose step t is padding: set the tile's row in dst from src, or to zero.
template <typename View, typename Src>
void keep_padded(View dst, const Src& src, const Padding& padding, Index t) {
  if (!padding.any()) return;
  for (Index b = 0; b < dst.rows(); ++b)
    if (!padding.valid(b, t)) dst.row(b) = src.row(b);
}
template <typename View>
void zero_padded(View dst, const Padding& padding, Index t) {
  if (!padding.any()) return;
  for (Index b = 0; b < dst.rows(); ++b)
    if (!padding.valid(b, t)) dst.row(b).setZero();
}

// The tile of a product's output array (its blocks of H side by side).
Tile own_tile(const Tile& t, const Product& q) { return wide_tile(t, q.blocks); }

// The cell's parameters at unit j0, for a slice's steps.
template <typename T>
std::array<const T*, kMaxParams> params_at(const Weights<T>& w, const Layout& layout, Index j0) {
  std::array<const T*, kMaxParams> at{};
  for (std::size_t k = 0; k < layout.params.size(); ++k) at[k] = w.params[k] + j0;
  return at;
}

// ---------------------------------------------------------------------------------------------
// Forward unroll.

// Buffers the threads share. States are double-buffered: a step reads one and writes the other.
template <typename T>
struct ForwardBuffers {
  std::vector<std::array<Matrix<T>, 2>> states;  // (B, H) each
  std::vector<Matrix<T>> saved;  // (B, width*H): an array needed within a step, when not training
  Matrix<T> step_gates;          // (B, G*H) one step's gates, for inference projected step by step
  Row<T> bias;                   // (G*H,) the biases added to the input projection
  std::vector<Row<T>> own_bias;  // per product: what its own output array starts from (blocks*H,)
};

// The first row of saved array k at step row `row` (column 0), or null where a call keeps no
// such array.
template <typename T>
T* saved_row(const ForwardArgs<T>& a, ForwardBuffers<T>& buf, int k, Index row, Index b0) {
  const Index width = a.cell->layout().saved[k].width * a.d.H;
  if (a.ws) return a.ws->template saved<T>(k) + row * width;  // row: the workspace's
  return buf.saved[k].size() ? buf.saved[k].data() + b0 * width : nullptr;
}

// Steps [s0, s1) of the slice; `gates` holds the input projections from time t_first on, and
// the workspace (training) the steps from time t_first on.
// With `input`, each step's projection is made here instead, just before the recurrent products
// add to it: into `gates` (the workspace, when training) or, with gates null, into the slice's
// part of buf.step_gates.
template <typename T>
void forward_slice(const ForwardArgs<T>& a, T* gates, Index t_first, Index s0, Index s1, ForwardBuffers<T>& buf,
                   SliceProducts<T>& p, const Slice& sl, const Split& split, StopPoll& poll) {
  const Layout& layout = a.cell->layout();
  const Index steps = a.d.T, B = a.d.B, H = a.d.H, G = layout.gates, GH = G * H;
  const Index b0 = sl.b0, j0 = sl.j0;
  const Tile tile{sl.b1 - b0, sl.j1 - j0, H, GH, H};
  const Padding padding = a.padding.from_row(b0);
  const Index first = b0 * H + j0;  // offset of the tile in a (B, H) buffer
  const int states = static_cast<int>(layout.states.size()), saved = static_cast<int>(layout.saved.size());
  Step<T> step{tile, nullptr};
  Matrix<T> masked;  // (rows, H) a product's input times one block's mask
  if (a.masks.recurrent) masked.resize(tile.rows, H);
  step.params = params_at(a.w, layout, j0);

  for (Index s = s0; s < s1; ++s) {
    if (poll.before(s, split, sl)) return;
    const Index t = a.reverse ? steps - 1 - s : s;
    const Index row = t * B + b0;  // the slice's first row at step t, in (T*B, ...) buffers
    const Index ws_row = (t - t_first) * B + b0;  // ... and in the workspace's
    const int now = s % 2;
    T* g_t = gates ? gates + ((t - t_first) * B + b0) * GH + j0 : buf.step_gates.data() + b0 * GH + j0;
    if (p.input) {
      for (Index k = 0; k < G; ++k) gate(g_t, tile, k).rowwise() = buf.bias.segment(k * H + j0, tile.units).array();
      p.input->accumulate(a.x + row * a.d.I, a.d.I, g_t, GH);  // (rows, G*H) += x_t (rows, I) . w_ih^T
    }
    step.gates = g_t;
    for (int k = 0; k < states; ++k) {
      step.state[k] = buf.states[k][now].data() + first;
      step.next[k] = buf.states[k][1 - now].data() + first;
      if (a.ws) state(a.ws->template state_prev<T>(k) + ws_row * H + j0, tile) = state(step.state[k], tile);
    }
    for (int k = 0; k < saved; ++k) {
      T* r = saved_row(a, buf, k, ws_row, b0);
      step.saved[k] = r ? r + j0 : nullptr;
    }
    std::size_t q = 0;
    for (std::size_t stage = 0; stage < layout.stages.size(); ++stage) {
      const auto& products = layout.stages[stage];
      // A product of what the cell wrote reads every unit of it.
      if (std::any_of(products.begin(), products.end(), [](const Product& r) { return r.input != kState; }))
        step_barrier(split, sl);
      for (const Product& r : products) {
        const T* in = r.input == kState ? buf.states[0][now].data() + b0 * H : saved_row(a, buf, r.input, ws_row, b0);
        T* out = r.output == kGates ? g_t + r.first * H : step.saved[r.output];
        const Index ld_out = r.output == kGates ? GH : r.blocks * H;
        if (r.output != kGates) {
          const Tile own = own_tile(tile, r);
          for (Index k = 0; k < r.blocks; ++k)
            gate(out, own, k).rowwise() = buf.own_bias[q].segment(k * H + j0, tile.units).array();
        }
        if (!a.masks.recurrent) p.forward[q]->accumulate(in, H, out, ld_out);
        for (Index k = 0; a.masks.recurrent && k < r.blocks; ++k) {  // block k reads in * its mask
          mask_rows(in, H, tile.rows, H, a.masks.recurrent + (r.first + k) * B * H, B, b0, masked.data(), H);
          p.forward[q]->accumulate_block(k, masked.data(), H, out + k * H, ld_out);
        }
        ++q;
      }
      a.cell->forward(static_cast<int>(stage), step);
    }
    if (a.zoneout.on()) zone_out(a.zoneout, a.ws != nullptr, t, B, b0, j0, tile, step.state[0], step.next[0]);
    for (int k = 0; k < states; ++k)  // padding keeps the state ...
      keep_padded(state(step.next[k], tile), state(step.state[k], tile), padding, t);
    if (a.y) {
      auto y = state(a.y + row * H + j0, tile);
      y = state(step.next[0], tile);
      zero_padded(y, padding, t);  // ... and outputs zero
    }
    step_barrier(split, sl);  // the next step's products read every unit of the state
  }
  if (s1 < steps) return;  // more chunks to come
  for (int k = 0; k < states; ++k)
    if (a.state_n[k]) state(a.state_n[k] + first, tile) = state(buf.states[k][steps % 2].data() + first, tile);
}

// The biases that are simply added to the input projection: b_ih, and b_hh where it enters the
// same pre-activation (every block but those of a product into an array of the cell's own).
template <typename T>
Row<T> input_bias(const ForwardArgs<T>& a) {
  const Layout& layout = a.cell->layout();
  const Index H = a.d.H, GH = layout.gates * H;
  Row<T> bias = Row<T>::Zero(GH);
  if (a.w.b_ih) bias += ConstRowMap<T>(a.w.b_ih, GH);
  if (!a.w.b_hh) return bias;
  Row<T> b_hh = ConstRowMap<T>(a.w.b_hh, GH);
  for (const Product& q : products_of(layout))
    if (q.output != kGates) b_hh.segment(q.first * H, q.blocks * H).setZero();
  return bias + b_hh;
}

// Per product, what its own output array starts from each step: its blocks of b_hh, or zero.
template <typename T>
std::vector<Row<T>> own_biases(const ForwardArgs<T>& a) {
  std::vector<Row<T>> biases;
  for (const Product& q : products_of(a.cell->layout())) {
    const Index n = q.output == kGates ? 0 : q.blocks * a.d.H;
    biases.push_back(a.w.b_hh ? Row<T>(ConstRowMap<T>(a.w.b_hh + q.first * a.d.H, n)) : Row<T>::Zero(n));
  }
  return biases;
}

// The threads for a product of about `work` multiply-adds.
int threads_for(double work) { return static_cast<int>(std::clamp<double>(work / kMinWork, 1, Eigen::nbThreads())); }

// The first row of share k of `threads` over `rows` rows, on a multiple of kRowAlign (rows for
// k == threads).
Index row_cut(Index rows, int k, int threads) {
  return k == threads ? rows : rows * k / threads / kRowAlign * kRowAlign;
}

// Rows [0, rows) shared out between threads for a product over them of about `work`
// multiply-adds: share(r0, r1) on each thread's rows.
template <typename Share>
void share_rows(Index rows, double work, Share share) {
  const int threads = threads_for(work);
  run_shares(threads, [&](int k) { share(row_cut(rows, k, threads), row_cut(rows, k + 1, threads)); });
}

// Input projections of steps [t0, t1) (all batch rows) into `gates`: (t1 - t0) * B rows of
// G*H, started from the biases (added once, not per step) so that the product accumulates onto
// them instead of onto a zeroed buffer. Row by row the same however the steps are cut.
// With input masks, block by block, each from x times its mask.
template <typename T>
void project_inputs(const ForwardArgs<T>& a, const Row<T>& bias, Index t0, Index t1, T* gates) {
  const Index B = a.d.B, I = a.d.I, H = a.d.H, G = a.cell->layout().gates, GH = G * H, rows = (t1 - t0) * B;
  MatrixMap<T>(gates, rows, GH).rowwise() = bias;
  const T* x = a.x + t0 * B * I;
  share_rows(rows, double(rows) * GH * I, [&](Index r0, Index r1) {
    if (!a.masks.input)
      return multiply_rows<T, Eigen::RowMajor>(r1 - r0, x + r0 * I, I, a.w.w_ih, I, GH, I, gates + r0 * GH, GH);
    Matrix<T> xm(r1 - r0, I);  // x times block k's mask
    for (Index k = 0; k < G; ++k) {
      mask_rows(x + r0 * I, I, r1 - r0, I, a.masks.input + k * B * I, B, r0, xm.data(), I);
      multiply_rows<T, Eigen::RowMajor>(r1 - r0, xm.data(), I, a.w.w_ih + k * H * I, I, H, I,
                                        gates + r0 * GH + k * H, GH);
    }
  });
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

// Training's steps in segments of `length` steps from time 0, whole units (step_unit) but the
// last; at least one segment, with no steps when T is 0. All the steps are one segment, unless
// the workspace keeps checkpoints (a segment at a time) or backward cuts them into chunks.
struct Segments {
  Index T, length;
  Index count() const { return T > 0 && length > 0 ? (T + length - 1) / length : 1; }
  Index t0(Index j) const { return std::min(T, j * length); }  // segment j: times [t0, t1)
  Index t1(Index j) const { return std::min(T, (j + 1) * length); }
  // Its steps [s0, s1): with reverse, step s is time T - 1 - s.
  Index s0(Index j, bool reverse) const { return reverse ? T - t1(j) : t0(j); }
  Index s1(Index j, bool reverse) const { return reverse ? T - t0(j) : t1(j); }
  // The i-th segment in step order.
  Index in_step_order(Index i, bool reverse) const { return reverse ? count() - 1 - i : i; }
};

Segments training_segments(const Dims& d, const Workspace& ws) {
  return {d.T, ws.checkpointed() ? ws.steps() : d.T};
}

// only: with checkpoints, the one segment (in time order) to recompute, from a.state0 at its
// start, into the workspace, with no outputs; -1 runs every step.
template <typename T>
void forward(const ForwardArgs<T>& a, Index only = -1) {
  const Layout& layout = a.cell->layout();
  const Index steps = a.d.T, B = a.d.B, H = a.d.H, GH = layout.gates * H;
  if (B == 0 || H == 0) return;  // every output is empty: no steps to take

  const Segments segments = a.ws ? training_segments(a.d, *a.ws) : Segments{steps, steps};
  const Index first_step = only < 0 ? 0 : segments.s0(only, a.reverse);
  ForwardBuffers<T> buf;
  buf.states.resize(layout.states.size());
  for (std::size_t k = 0; k < buf.states.size(); ++k) {
    for (auto& s : buf.states[k]) s.resize(B, H);
    init_state(buf.states[k][first_step % 2], a.state0[k]);  // a step reads the buffer of its parity
  }
  buf.saved.resize(layout.saved.size());
  for (std::size_t k = 0; k < layout.saved.size(); ++k)
    if (!a.ws && layout.saved[k].in_inference) buf.saved[k].resize(B, layout.saved[k].width * H);
  buf.bias = input_bias(a);
  buf.own_bias = own_biases(a);
  const Split split = choose_split(B, H, GH, steps);
  StopPoll poll(a.stop, B, GH, H, a.d.I);
  // Training packs as for all its steps, so that a segment's products are those of the steps in
  // one run (how a product is made depends on the steps it is packed for).
  auto unroll = [&](T* gates, Index t_first, Index s0, Index s1, bool step_by_step) {
    run_slices(
        split, B, H,
        [&](const Slice& sl) {
          return products_for<T>(layout, a.d, a.w.w_hh, step_by_step ? a.w.w_ih : nullptr, true,
                                 a.masks.recurrent != nullptr, sl, a.ws ? steps : s1 - s0);
        },
        [&](const Slice& sl, SliceProducts<T>& p, const Split& used) {
          forward_slice<T>(a, gates, t_first, s0, s1, buf, p, sl, used, poll);
        });
    poll.throw_if_stopped();
  };

  // Where each thread has rows of the batch of its own (or one thread has them all), it projects
  // its rows step by step, with w_ih packed once, into gates still in its cache when the
  // recurrent product and the cell read them: into the workspace when training, into one step's
  // buffer for inference. bench/NOTES.md, "Inputs projected step by step".
  // Otherwise the projection is a product over many rows: for training over a segment's steps
  // (all of them, without checkpoints) into the workspace, which keeps its gates for BPTT; for
  // inference over a chunk of steps into a chunk's buffer, reused chunk after chunk and call
  // after call.
  const bool step_by_step = projects_step_by_step(a, split);
  if (a.ws) {
    const Workspace& ws = *a.ws;
    for (Index i = 0; i < segments.count(); ++i) {  // in step order
      const Index j = segments.in_step_order(i, a.reverse);
      if (only >= 0 && j != only) continue;
      const Index s0 = segments.s0(j, a.reverse), s1 = segments.s1(j, a.reverse), t0 = segments.t0(j);
      if (ws.checkpointed() && only < 0)
        for (std::size_t k = 0; k < buf.states.size(); ++k)
          std::copy_n(buf.states[k][s0 % 2].data(), B * H, ws.checkpoint<T>(static_cast<int>(k), j));
      if (!step_by_step) project_inputs<T>(a, buf.bias, t0, segments.t1(j), ws.gates<T>());
      unroll(ws.gates<T>(), t0, s0, s1, step_by_step);
    }
    return;
  }
  if (step_by_step) {
    buf.step_gates.resize(B, GH);
    return unroll(nullptr, 0, 0, steps, true);
  }
  const Chunks chunks = chunks_of(steps, B, GH, sizeof(T), /*backward=*/false);
  Buffer<T> chunk_gates(static_cast<size_t>(chunks.largest() * B * GH));
  for (Index k = 0; k < chunks.count; ++k) {  // one, with no steps, for the final state
    const Index s0 = chunks.begin(k), s1 = chunks.begin(k + 1);
    const Index t0 = chunks.first_time(k, a.reverse);
    project_inputs<T>(a, buf.bias, t0, t0 + (s1 - s0), chunk_gates.data());
    unroll(chunk_gates.data(), t0, s0, s1, false);
  }
}

// ---------------------------------------------------------------------------------------------
// Backpropagation through time.

// The bias gradients are column sums of the gate gradients over every step and row. Each slice
// adds its rows up in the time loop, a step at a time, while they are still in cache, instead
// of reading them all back from memory after the loop (bench/NOTES.md, "Bias sums in the time
// loop (ColumnSums)"). Rows go in order into a partial sum, which is added to the total every
// kBlock rows or so, so that the rounding error grows with the block length and the number of
// blocks rather than with the rows (T*B of them); the slices' sums are added in slice order.
template <typename T>
class ColumnSums {
  using Sum = Eigen::Array<T, 1, Eigen::Dynamic>;
  static constexpr Index kBlock = 256;

 public:
  explicit ColumnSums(Index cols) : total_(Sum::Zero(cols)), partial_(Sum::Zero(cols)) {}
  Index size() const { return total_.size(); }

  // One step of a slice: the tile of each of the first `blocks` blocks of g (see gate), into
  // columns k*H + j0 onwards for block k.
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
    Eigen::Map<Sum> sum(out, slices.front().size());
    sum.setZero();
    for (const ColumnSums& s : slices) sum += s.total_ + s.partial_;
  }

 private:
  Sum total_, partial_;
  Index pending_ = 0;
};

// Per slice, the sums behind the bias gradients: of the gate gradients (b_ih, and b_hh where it
// enters the same pre-activation) and, per product into an array of the cell's own, of that
// array's gradient (its blocks of b_hh).
// The cell's parameters' gradients are summed the same way, from the rows the cell wrote.
template <typename T>
struct BiasSums {
  std::vector<ColumnSums<T>> gates;               // [slice]
  std::vector<std::vector<ColumnSums<T>>> own;    // [product][slice], empty for a product into the gates
  std::vector<std::vector<ColumnSums<T>>> params;  // [parameter][slice]
};

template <typename T>
struct BackwardBuffers {
  std::vector<std::array<Matrix<T>, 2>> d;  // (B, H) per state: gradients w.r.t. the state after the current step
  Matrix<T> dh_total;                       // (B, H) that plus the output's gradient
  std::array<Matrix<T>, 2> scratch;         // (B, H) each, the cell's
  std::vector<Matrix<T>> d_saved;           // (B, H) per saved array that is a product's input
  Matrix<T> masked;                         // (B, H) one block's share of a masked product's gradient
  std::vector<Matrix<T>> d_params;          // (B, width*H) per parameter: one step's rows' shares
  std::vector<Index> uncovered;             // gate blocks in no product
  Matrix<T> zoned;                          // (B, H) with zoneout: h's share of dh where kept
};

// Steps [s0, s1), from the last back; the workspace holds the steps from time ws_t0 on.
// With biases, each step's gate gradients are added to the slice's sums.
template <typename T>
void backward_slice(const BackwardArgs<T>& a, Index s0, Index s1, Index ws_t0, BackwardBuffers<T>& buf,
                    SliceProducts<T>& p, BiasSums<T>& sums, const Slice& sl, const Split& split, StopPoll& poll) {
  const Layout& layout = a.cell->layout();
  const Workspace& ws = *a.ws;
  const Index steps = a.d.T, B = a.d.B, H = a.d.H, G = layout.gates, GH = G * H;
  const Index b0 = sl.b0, j0 = sl.j0;
  const Tile tile{sl.b1 - b0, sl.j1 - j0, H, GH, H};
  const Padding padding = a.padding.from_row(b0);
  const Index first = b0 * H + j0;
  const int states = static_cast<int>(layout.states.size()), saved = static_cast<int>(layout.saved.size());
  const std::vector<Product> products = products_of(layout);
  ColumnSums<T>* gate_sums = sums.gates.empty() ? nullptr : &sums.gates[sl.k];
  StepGrad<T> grad{tile, nullptr};
  grad.scratch = {buf.scratch[0].data() + first, buf.scratch[1].data() + first};
  for (int k = 0; k < saved; ++k) grad.d_saved[k] = buf.d_saved[k].size() ? buf.d_saved[k].data() + first : nullptr;
  grad.params = params_at(a.w, layout, j0);
  for (std::size_t k = 0; k < layout.params.size(); ++k)
    grad.d_params[k] = buf.d_params[k].data() + b0 * buf.d_params[k].cols() + j0;

  for (Index s = s1 - 1; s >= s0; --s) {
    if (poll.before(steps - 1 - s, split, sl)) return;
    const Index t = a.reverse ? steps - 1 - s : s;
    const Index row = t * B + b0, ws_row = (t - ws_t0) * B + b0;  // in (T*B, ...) buffers, in the workspace's
    const int now = (steps - 1 - s) % 2;
    T* dh_prev = buf.d[0][1 - now].data() + first;
    T* dh_total = buf.dh_total.data() + first;
    T* g_t = ws.gates<T>() + ws_row * GH + j0;
    state(dh_total, tile) = state(buf.d[0][now].data() + first, tile);
    if (a.dy) {
      state(dh_total, tile) += state(a.dy + row * H + j0, tile);
      // a padded output is a constant
      keep_padded(state(dh_total, tile), state(buf.d[0][now].data() + first, tile), padding, t);
    }
    T* zoned = buf.zoned.size() ? buf.zoned.data() + first : nullptr;  // h's share where kept
    if (zoned) zone_out_grad(a.zoneout, t, B, b0, j0, tile, dh_total, zoned);
    grad.gates = g_t;
    for (int k = 0; k < states; ++k) {
      grad.state[k] = ws.state_prev<T>(k) + ws_row * H + j0;
      grad.d_next[k] = k == 0 ? dh_total : buf.d[k][now].data() + first;
      grad.d_state[k] = buf.d[k][1 - now].data() + first;
    }
    for (int k = 0; k < saved; ++k) grad.saved[k] = ws.saved<T>(k) + ws_row * layout.saved[k].width * H + j0;

    std::size_t end = products.size();  // one past the stage's last product
    for (int stage = static_cast<int>(layout.stages.size()) - 1; stage >= 0; --stage) {
      const auto& stage_products = layout.stages[stage];
      const std::size_t begin = end - stage_products.size();
      a.cell->backward(stage, grad);
      for (const Product& r : stage_products) {  // padding passes no gradient to the weights
        for (Index k = 0; k < r.blocks; ++k) {
          zero_padded(gate(g_t, tile, r.first + k), padding, t);
          if (r.output != kGates) zero_padded(gate(grad.saved[r.output], own_tile(tile, r), k), padding, t);
        }
        if (r.input != kState) state(buf.d_saved[r.input].data() + first, tile).setZero();
      }
      step_barrier(split, sl);  // the products read every unit's gradients
      for (std::size_t q = begin; q < end; ++q) {
        const Product& r = products[q];
        const bool own = r.output != kGates;
        const T* d = own ? ws.saved<T>(r.output) + ws_row * r.blocks * H : ws.gates<T>() + ws_row * GH + r.first * H;
        const Index ld_d = own ? r.blocks * H : GH;
        T* out = r.input == kState ? dh_prev : buf.d_saved[r.input].data() + first;
        if (!a.masks.recurrent) p.backward[q][0]->accumulate(d, ld_d, out, H);
        for (Index k = 0; a.masks.recurrent && k < r.blocks; ++k) {  // d in += (d_k . w_k) * mask_k
          T* part = buf.masked.data() + first;
          state(part, tile).setZero();
          p.backward[q][k]->accumulate(d + k * H, ld_d, part, H);
          state(out, tile) += state(static_cast<const T*>(part), tile) *
                              state(a.masks.recurrent + (r.first + k) * B * H + first, tile);
        }
      }
      end = begin;
    }
    for (Index k : buf.uncovered) zero_padded(gate(g_t, tile, k), padding, t);
    if (gate_sums) gate_sums->add(g_t, tile, G, j0);
    for (std::size_t q = 0; q < products.size(); ++q)
      if (!sums.own[q].empty())
        sums.own[q][sl.k].add(grad.saved[products[q].output], own_tile(tile, products[q]), products[q].blocks, j0);
    for (std::size_t k = 0; k < layout.params.size(); ++k) {  // padding passes no gradient to them
      const int width = layout.params[k].width;
      for (Index w = 0; w < width; ++w) zero_padded(gate(grad.d_params[k], wide_tile(tile, width), w), padding, t);
      sums.params[k][sl.k].add(grad.d_params[k], wide_tile(tile, width), width, j0);
    }
    if (p.input_grad) {  // dx_t (rows, I) = d_gates (rows, G*H) . w_ih
      T* dx = a.dx + row * a.d.I;
      MatrixMap<T>(dx, tile.rows, a.d.I).setZero();
      p.input_grad->accumulate(ws.gates<T>() + ws_row * GH, GH, dx, a.d.I);
    }
    if (zoned) state(dh_prev, tile) += state(static_cast<const T*>(zoned), tile);
    // Padding passes the state gradients through exactly: set after the products, so that not
    // even a zero row times an inf in w_hh can touch them. (At a padded step the gradient the
    // step received is dh_total's before zoneout.)
    keep_padded(state(dh_prev, tile), state(static_cast<const T*>(buf.d[0][now].data() + first), tile), padding, t);
    for (int k = 1; k < states; ++k) keep_padded(state(grad.d_state[k], tile), state(grad.d_next[k], tile), padding, t);
  }
  if (s0 > 0) return;  // more chunks to come
  for (int k = 0; k < states; ++k)
    state(a.d_state0[k] + first, tile) = state(buf.d[k][steps % 2].data() + first, tile);
}

// The gate columns in order, each range with the product whose rows of w_hh it is (-1: none).
struct ColumnRange {
  Index c0, c1;
  int product;
};
std::vector<ColumnRange> column_ranges(const Layout& layout, Index H) {
  std::vector<ColumnRange> ranges;
  const std::vector<Product> products = products_of(layout);
  for (std::size_t q = 0; q < products.size(); ++q)
    ranges.push_back({products[q].first * H, (products[q].first + products[q].blocks) * H, static_cast<int>(q)});
  std::sort(ranges.begin(), ranges.end(), [](const ColumnRange& x, const ColumnRange& y) { return x.c0 < y.c0; });
  std::vector<ColumnRange> all;
  Index c = 0;
  for (const ColumnRange& r : ranges) {
    if (r.c0 > c) all.push_back({c, r.c0, -1});
    all.push_back(r);
    c = r.c1;
  }
  if (c < layout.gates * H) all.push_back({c, layout.gates * H, -1});
  return all;
}

// The weight gradients, and `with_dx` the input gradient, from rows [first, first + rows) of
// the (T*B, ...) buffers (a segment of steps), which are the workspace's from row ws_first, as
// products over all those rows at once. The weight gradients are set from the first segment
// and added to from the others (`add`), unit by unit in the order of BPTT's steps: the sums do
// not depend on the segments.
//   dx rows [r0, r1):          d_gates[r0:r1] . w_ih                    (rows, I)
//   rows [g0, g1) of dw_ih:    d_gates[:, g0:g1]^T . x                  (n, I)
//   ... of dw_hh:              d[:, g0:g1]^T . in                       (n, H)
// where d and in are each product's: the gate gradients or its own array's gradient, and
// h_prev or the array the cell made its input.
// Each thread takes a share of dw's rows (d_gates' columns) and of dx's rows, as products of its
// own (on two threads or more, each single-threaded): its dw_ih and dw_hh share the packing of
// its columns of d_gates (add_gradient_products). One share a thread, not more: each share
// packs all of x and h_prev. Eigen's own threaded GEMM spends much of its time on products
// this size keeping its threads in step (bench/NOTES.md, "Weight gradients shared out by gate
// columns").
template <typename T>
void gradient_products(const BackwardArgs<T>& a, Index first, Index ws_first, Index rows, bool add, bool with_dx) {
  const Layout& layout = a.cell->layout();
  const Workspace& ws = *a.ws;
  const Index I = a.d.I, H = a.d.H, GH = layout.gates * H, unit = step_unit(a.d.B) * a.d.B;
  const T* x = a.x + first * I;
  const T* d_gates = ws.gates<T>() + ws_first * GH;
  const std::vector<Product> products = products_of(layout);
  const std::vector<ColumnRange> ranges = column_ranges(layout, H);

  auto input_rows = [&](Index r0, Index r1) {  // dx (rows, I) = d (rows, G*H) . w_ih, row by row
    const T* d = d_gates + r0 * GH;
    MatrixMap<T> dx(a.dx + (first + r0) * I, r1 - r0, I);
    dx.setZero();
    if (!a.masks.input)
      return multiply_rows<T, Eigen::ColMajor>(r1 - r0, d, GH, a.w.w_ih, I, I, GH, dx.data(), I);
    Matrix<T> part(r1 - r0, I);  // with masks, the sum over blocks of (d_k . w_ih_k) * mask_k
    for (Index k = 0; k < layout.gates; ++k) {
      part.setZero();
      multiply_rows<T, Eigen::ColMajor>(r1 - r0, d + k * H, GH, a.w.w_ih + k * H * I, I, I, H, part.data(), I);
      add_mask_rows(part.data(), I, r1 - r0, I, a.masks.input + k * a.d.B * I, a.d.B, r0, dx.data(), I);
    }
  };
  const bool masked = a.masks.input || a.masks.recurrent;
  // Columns [c0, c1) of one range, within gate block `block` where masked (else -1): the products
  // read x and the range's input times that block's masks.
  auto columns = [&](const ColumnRange& range, Index c0, Index c1, Index block, Matrix<T>& xm, Matrix<T>& hm) {
    const T* x_in = x;
    if (a.masks.input) {
      xm.resize(rows, I);
      mask_rows(x, I, rows, I, a.masks.input + block * a.d.B * I, a.d.B, 0, xm.data(), I);
      x_in = xm.data();
    }
    const GradientProduct<T> input_side{d_gates + c0, GH, x_in, I, a.dw_ih + c0 * I};
    const bool descending = !a.reverse;  // BPTT's order
    if (range.product < 0) return add_gradient_products<T>(rows, c1 - c0, {input_side}, unit, descending);
    const Product& r = products[range.product];
    const T* in = r.input == kState ? ws.state_prev<T>(0) + ws_first * H : ws.saved<T>(r.input) + ws_first * H;
    if (a.masks.recurrent) {
      hm.resize(rows, H);
      mask_rows(in, H, rows, H, a.masks.recurrent + block * a.d.B * H, a.d.B, 0, hm.data(), H);
      in = hm.data();
    }
    if (r.output == kGates)
      return add_gradient_products<T>(rows, c1 - c0, {input_side, {d_gates + c0, GH, in, H, a.dw_hh + c0 * H}},
                                      unit, descending);
    const Index width = r.blocks * H;
    const T* own = ws.saved<T>(r.output) + ws_first * width + (c0 - range.c0);
    add_gradient_products<T>(rows, c1 - c0, {input_side, {own, width, in, H, a.dw_hh + c0 * H}}, unit, descending);
  };
  auto gate_columns = [&](Index g0, Index g1) {
    if (!add) {
      std::fill(a.dw_ih + g0 * I, a.dw_ih + g1 * I, T(0));
      std::fill(a.dw_hh + g0 * H, a.dw_hh + g1 * H, T(0));
    }
    Matrix<T> xm, hm;  // this thread's masked inputs, one block at a time
    for (const ColumnRange& range : ranges) {
      const Index c0 = std::max(range.c0, g0), c1 = std::min(range.c1, g1);
      if (c0 >= c1) continue;
      if (!masked) {
        columns(range, c0, c1, -1, xm, hm);
        continue;
      }
      for (Index k = c0 / H; k * H < c1; ++k)
        columns(range, std::max(c0, k * H), std::min(c1, (k + 1) * H), k, xm, hm);
    }
  };

  const double work = double(rows) * GH * ((with_dx ? 2 : 1) * I + H);  // multiply-adds
  const int threads = threads_for(work);
  // Column cuts on multiples of 16.
  auto column = [&](int k) { return k == threads ? GH : std::min(GH, (GH * k / threads + 15) / 16 * 16); };
  run_shares(threads, [&](int k) {  // thread k's columns of dw and rows of dx
    gate_columns(column(k), column(k + 1));
    if (with_dx) input_rows(row_cut(rows, k, threads), row_cut(rows, k + 1, threads));
  });
}

// db_ih (G*H,) and db_hh (G*H,), those asked for, from the slices' sums.
template <typename T>
void bias_gradients(const BackwardArgs<T>& a, const BiasSums<T>& sums) {
  if (!sums.gates.empty()) {
    Row<T> db(sums.gates.front().size());
    ColumnSums<T>::total(sums.gates, db.data());
    if (a.db_ih) std::copy_n(db.data(), db.size(), a.db_ih);
    if (a.db_hh) std::copy_n(db.data(), db.size(), a.db_hh);
  }
  const std::vector<Product> products = products_of(a.cell->layout());
  for (std::size_t q = 0; q < products.size(); ++q)
    if (!sums.own[q].empty()) ColumnSums<T>::total(sums.own[q], a.db_hh + products[q].first * a.d.H);
  for (std::size_t k = 0; k < sums.params.size(); ++k) ColumnSums<T>::total(sums.params[k], a.d_params[k]);
}

// With no rows or no units, the gradients are zero (or empty): no steps to take.
template <typename T>
void zero_gradients(const BackwardArgs<T>& a) {
  const Index T_ = a.d.T, B = a.d.B, I = a.d.I, H = a.d.H, GH = a.cell->layout().gates * H;
  std::fill_n(a.dx, T_ * B * I, T(0));
  std::fill_n(a.dw_ih, GH * I, T(0));
  std::fill_n(a.dw_hh, GH * H, T(0));
  if (a.db_ih) std::fill_n(a.db_ih, GH, T(0));
  if (a.db_hh) std::fill_n(a.db_hh, GH, T(0));
  for (std::size_t k = 0; k < a.cell->layout().states.size(); ++k) std::fill_n(a.d_state0[k], B * H, T(0));
  const auto& params = a.cell->layout().params;
  for (std::size_t k = 0; k < params.size(); ++k) std::fill_n(a.d_params[k], params[k].width * H, T(0));
}

// The segments BPTT takes in turn: the workspace's with checkpoints, else one, or beyond
// kTrainingChunkingBytes of gates, chunks (see chunks_of) rounded to whole units.
Segments backward_segments(const Dims& d, Index GH, std::size_t bytes, const Workspace& ws) {
  if (ws.checkpointed()) return training_segments(d, ws);
  const Chunks chunks = chunks_of(d.T, d.B, GH, bytes, /*backward=*/true);
  if (chunks.count == 1) return {d.T, d.T};
  const Index unit = step_unit(d.B);
  return {d.T, (chunks.largest() + unit - 1) / unit * unit};
}

// Segment j's forward again, from its checkpoint, into the workspace.
template <typename T>
void recompute(const BackwardArgs<T>& a, Index j) {
  ForwardArgs<T> f{a.cell, a.d, a.x, {}, a.w, a.padding, a.reverse, a.masks, nullptr, {}, a.ws, a.stop, a.zoneout};
  for (std::size_t k = 0; k < a.cell->layout().states.size(); ++k)
    f.state0[k] = a.ws->template checkpoint<T>(static_cast<int>(k), j);
  forward<T>(f, j);
}

template <typename T>
void backward(const BackwardArgs<T>& a) {
  const Layout& layout = a.cell->layout();
  const Index steps = a.d.T, B = a.d.B, H = a.d.H, GH = layout.gates * H;
  if (B == 0 || H == 0) return zero_gradients(a);
  const std::vector<Product> products = products_of(layout);

  BackwardBuffers<T> buf;
  buf.d.resize(layout.states.size());
  for (std::size_t k = 0; k < buf.d.size(); ++k) {
    for (auto& d : buf.d[k]) d.resize(B, H);
    init_state(buf.d[k][0], a.d_state_n[k]);
  }
  buf.dh_total.resize(B, H);
  for (auto& s : buf.scratch) s.resize(B, H);
  buf.d_saved.resize(layout.saved.size());
  if (a.masks.recurrent) buf.masked.resize(B, H);
  if (a.zoneout.on()) buf.zoned.resize(B, H);
  std::vector<bool> covered(layout.gates, false);
  for (const Product& r : products) {
    if (r.input != kState) buf.d_saved[r.input].resize(B, H);
    for (int k = 0; k < r.blocks; ++k) covered[r.first + k] = true;
  }
  for (int k = 0; k < layout.gates; ++k)
    if (!covered[k]) buf.uncovered.push_back(k);
  for (const Param& q : layout.params) buf.d_params.emplace_back(B, q.width * H);
  const Split split = choose_split(B, H, GH, steps);
  StopPoll poll(a.stop, B, GH, H, a.d.I);
  const Workspace& ws = *a.ws;
  const Segments segments = backward_segments(a.d, GH, sizeof(T), ws);
  // Where forward projected the inputs step by step, each step's input gradient is likewise
  // taken in the time loop, from gate gradients just made and still in cache, instead of by a
  // GEMM that reads them all back afterwards (bench/NOTES.md, "Input gradient in the time loop").
  const bool dx_in_loop = projects_step_by_step(a, split);
  BiasSums<T> sums;
  sums.own.resize(products.size());
  for (const Param& q : layout.params) sums.params.emplace_back(split.threads, ColumnSums<T>(q.width * H));
  for (int k = 0; k < split.threads; ++k) {
    if (a.db_ih || a.db_hh) sums.gates.emplace_back(GH);
    for (std::size_t q = 0; q < products.size(); ++q)
      if (a.db_hh && products[q].output != kGates) sums.own[q].emplace_back(products[q].blocks * H);
  }
  const Index last = segments.count() - 1;
  for (Index i = last; i >= 0; --i) {  // in step order from the last back (one, with no steps, for dh0)
    const Index j = segments.in_step_order(i, a.reverse);
    const Index s0 = segments.s0(j, a.reverse), s1 = segments.s1(j, a.reverse), t0 = segments.t0(j);
    const Index ws_t0 = ws.checkpointed() ? t0 : 0;
    if (ws.checkpointed() && i != last) recompute(a, j);  // the forward left the last one in the workspace
    run_slices(
        split, B, H,
        [&](const Slice& sl) {
          return products_for<T>(layout, a.d, a.w.w_hh, dx_in_loop ? a.w.w_ih : nullptr, false,
                                 a.masks.recurrent != nullptr, sl, steps);
        },
        [&](const Slice& sl, SliceProducts<T>& p, const Split& used) {
          backward_slice<T>(a, s0, s1, ws_t0, buf, p, sums, sl, used, poll);
        });
    poll.throw_if_stopped();
    gradient_products<T>(a, t0 * B, (t0 - ws_t0) * B, (s1 - s0) * B, /*add=*/i != last, !dx_in_loop);
  }
  bias_gradients(a, sums);
}

}  // namespace

template <typename T>
void rnn_forward(const ForwardArgs<T>& a) {
  forward<T>(a);
}

template <typename T>
void rnn_backward(const BackwardArgs<T>& a) {
  backward<T>(a);
}

template void rnn_forward<float>(const ForwardArgs<float>&);
template void rnn_forward<double>(const ForwardArgs<double>&);
template void rnn_backward<float>(const BackwardArgs<float>&);
template void rnn_backward<double>(const BackwardArgs<double>&);

}  // namespace fastrnn
