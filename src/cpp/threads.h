// Threads: how the time loop is shared out between them (Split, choose_split), how the threads of
// a split by hidden units meet each step (StepBarrier), and the rules the kernel calls of a
// process keep (one at a time; one thread in a child forked after calls on several).
#pragma once

#include <Eigen/Core>
#include <atomic>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace fastrnn {

using Eigen::Index;

// Each thread owns a slice of every step: batch rows [b0, b1) by hidden units [j0, j1).
// Splitting the batch is best: rows are independent through time, so threads never wait for
// each other. A batch too small to split (down to B = 1) is split by hidden units instead:
// each thread then reads only its units' rows of w_hh, and the threads meet once or more a
// step, since every unit's next step needs the whole state.
struct Slice {
  Index b0, b1, j0, j1;
  int k;  // which slice of the split: 0 .. threads - 1
};

// Threads split by units meet once per step (step_barrier). Each thread counts the meetings it
// has reached in a cache line of its own and waits for every other count to catch up, so the
// last thread's arrival reaches the others in one transfer of a line: several times quicker
// than OpenMP's barrier. A waiting thread spins for milliseconds before it yields its core, as
// GNU OpenMP's do, so that a team tends to run all at once on a busy machine; with more threads
// than processors, or inside another parallel region, OpenMP's barrier is kept, since a thread
// would spin for one that needs its core. bench/NOTES.md, "StepBarrier".
class StepBarrier {
 public:
  explicit StepBarrier(int threads) : counts_(threads), spin_(threads <= processors() && !nested()) {}

  void wait(int k) noexcept {
    if (!spin_) {
#pragma omp barrier
      return;
    }
    const Index n = counts_[k].n.load(std::memory_order_relaxed) + 1;
    counts_[k].n.store(n, std::memory_order_release);  // publishes this thread's step
    long spins = 0;
    for (const Count& other : counts_) {
      for (; other.n.load(std::memory_order_acquire) < n; ++spins) {
        if (spins < kSpins) pause();
        else std::this_thread::yield();
      }
    }
  }

 private:
  static constexpr long kSpins = 1 << 18;  // some milliseconds (bench/NOTES.md, "StepBarrier")

  // 128 bytes: two 64-byte lines, which some CPUs fetch in pairs.
  struct alignas(128) Count {
    std::atomic<Index> n{0};  // meetings reached
  };

  static int processors() noexcept {
#ifdef _OPENMP
    return omp_get_num_procs();
#else
    return 1;
#endif
  }

  static bool nested() noexcept {
#ifdef _OPENMP
    return omp_in_parallel();
#else
    return false;
#endif
  }

  static void pause() noexcept {
#if defined(__x86_64__) || defined(_M_X64)
    _mm_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
  }

  std::vector<Count> counts_;
  bool spin_;
};

struct Split {
  int threads = 1;
  bool by_units = false;
  StepBarrier* barrier = nullptr;  // the meeting of a region's threads, set by run_slices

  Slice slice(int k, Index B, Index H) const {
    if (!by_units) return {B * k / threads, B * (k + 1) / threads, 0, H, k};
    // Unit ranges start on multiples of 16, so each thread's columns stay SIMD-aligned.
    auto cut = [&](int i) { return i == threads ? H : (H * i / threads) / 16 * 16; };
    return {0, B, cut(k), cut(k + 1), k};
  }
};

// A thread is only worth starting for a few million multiply-adds of its own (in the weight
// gradients too), with two exceptions below: rows of the batch of its own, or a large share of
// each step. bench/NOTES.md, "kMinWork, kMinRowsWork, kMinRows".
constexpr double kMinWork = 4e6;
// ... or, with rows of the batch of its own, which it runs through time without waiting for the
// other threads, for a million.
constexpr double kMinRowsWork = 1e6;
// A slice of the batch has a few rows at least.
constexpr Index kMinRows = 4;
// ... or, split by units, for a quarter of a million multiply-adds of its own in one step: a
// step's product then reads a megabyte of w_hh a thread (float32, one row), far longer than the
// threads' meeting. This is for few steps (T = 1: text generated a step at a time), where
// kMinWork would keep the weights on one thread; lower, the gain came and went with the load of
// the machine. bench/NOTES.md, "kMinStepWork".
constexpr double kMinStepWork = 2.5e5;

// For `steps` steps of B rows, H units and GH gate columns. A thread takes kMinRows rows of the
// batch and kMinRowsWork of the recurrent products' multiply-adds at least; where the batch is
// too small to split, 64 units and kMinWork (or kMinStepWork of each step's).
Split choose_split(Index B, Index H, Index GH, Index steps);

// Whether each thread's slice holds rows of the batch, enough of them for the input products to
// go step by step inside the time loop.
inline bool inputs_step_by_step(const Split& split, Index B) {
  return !split.by_units && B / split.threads >= kMinRows;
}

// The meeting of the threads split by units (a split by rows never meets).
inline void step_barrier(const Split& split, const Slice& sl) {
  if (split.by_units) split.barrier->wait(sl.k);
}

// Runs body(slice, resources, split) for every slice of `split`, one thread each, in one
// parallel region for the whole run of the time loop (a sequence, or a chunk of one). Each
// slice's resources come from make(slice), all made first, so that nothing can throw between
// the bodies' barriers; each thread then calls resources.pack() for its own. OpenMP may hand out
// fewer threads than asked for (OMP_THREAD_LIMIT, OMP_DYNAMIC, a call from inside another
// parallel region): then the whole run goes on this thread alone, after the region.
template <typename Make, typename Body>
void run_slices(const Split& split, Index B, Index H, Make make, Body body) {
  if (split.threads > 1) {
    std::vector<decltype(make(split.slice(0, B, H)))> resources;
    for (int k = 0; k < split.threads; ++k) resources.push_back(make(split.slice(k, B, H)));
    std::optional<StepBarrier> barrier;
    Split team = split;
    if (split.by_units) team.barrier = &barrier.emplace(split.threads);
    bool full_team = true;
#pragma omp parallel num_threads(split.threads)
    {
#ifdef _OPENMP
      const int k = omp_get_thread_num();
      if (omp_get_num_threads() == split.threads) {
        resources[k].pack();
        body(split.slice(k, B, H), resources[k], team);
      } else if (k == 0) {
        full_team = false;
      }
#endif
    }
    if (full_team) return;
  }
  const Slice whole{0, B, 0, H, 0};
  auto r = make(whole);
  r.pack();
  body(whole, r, Split{});
}

// Runs share(k) for k = 0 .. threads - 1, one thread each; one share runs on this thread, outside
// any OpenMP region: inside a region of one thread, Eigen's GEMM would start a nested team of new
// threads, which wait for a core while the idle threads of the last team still spin on it
// (bench/NOTES.md, "Weight gradients shared out by gate columns"). An exception may not leave an
// OpenMP region: the first is carried out and rethrown.
template <typename Share>
void run_shares(int threads, Share share) {
  if (threads == 1) return share(0);
  std::exception_ptr error;
#pragma omp parallel for schedule(static, 1) num_threads(threads)
  for (int k = 0; k < threads; ++k) {
    try {
      share(k);
    } catch (...) {
#pragma omp critical
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

// One kernel call at a time: each already uses every thread it is given, so calls from several
// threads take turns instead of oversubscribing the cores. A call's turn lasts as long as this
// object. The thread count changes only between calls (set_num_threads takes a turn too), since
// a call reads it more than once: a count changed halfway would give a result of neither count.
class KernelTurn {
 public:
  KernelTurn();

 private:
  std::lock_guard<std::mutex> lock_;
};

// Threads used by the GEMMs and the element-wise work; waits for the call under way. Throws
// std::runtime_error for n > 1 in a process forked after the kernels ran on several threads:
// GNU OpenMP's thread pool does not survive a fork (a child entering a parallel region would
// wait for the pool's threads for ever), so such a child runs on one thread.
void set_num_threads(int n);
int get_num_threads();

// Makes a fork wait for the kernel call under way (if any), so that the child never inherits
// the turn's mutex locked by a thread it does not have. Call once, after the block cache exists
// (memory.h): handlers registered later run first, and the call may still need the cache.
void wait_for_kernels_at_fork();

}  // namespace fastrnn
