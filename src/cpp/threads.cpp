// The thread rules of threads.h.
#include "threads.h"

#include <algorithm>
#include <stdexcept>

#ifndef _WIN32
#include <pthread.h>
#endif

namespace fastrnn {
namespace {

std::mutex kernel_mutex;
bool ran_on_threads = false;        // under kernel_mutex
bool forked_after_threads = false;  // set in the child, before it runs anything

}  // namespace

Split choose_split(Index B, Index H, Index GH, Index steps) {
  constexpr Index kMinUnits = 64;
  Index threads = Eigen::nbThreads();
#ifdef _OPENMP
  threads = std::min<Index>(threads, omp_get_thread_limit());
#endif
  const double step_work = double(B) * GH * H, work = step_work * steps;
  const Index by_rows = std::min({threads, B / kMinRows, static_cast<Index>(work / kMinRowsWork)});
  if (by_rows >= 2) return {static_cast<int>(by_rows), false};
  if (B / kMinRows >= 2) return {};
  const double units_work = std::max(work / kMinWork, step_work / kMinStepWork);
  const Index by_units = std::min({threads, H / kMinUnits, static_cast<Index>(units_work)});
  if (by_units >= 2) return {static_cast<int>(by_units), true};
  return {};
}

KernelTurn::KernelTurn() : lock_(kernel_mutex) {
  if (get_num_threads() > 1) ran_on_threads = true;
}

void set_num_threads(int n) {
  if (n > 1 && forked_after_threads)
    throw std::runtime_error(
        "this process was forked after the kernels had run on several threads, whose OpenMP "
        "threads do not survive a fork: it runs them on one thread. Start worker processes with "
        "the 'spawn' or 'forkserver' method to use more");
  std::lock_guard<std::mutex> lock(kernel_mutex);
  Eigen::setNbThreads(n);
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
}

int get_num_threads() { return Eigen::nbThreads(); }

void wait_for_kernels_at_fork() {
#ifndef _WIN32
  pthread_atfork([] { kernel_mutex.lock(); }, [] { kernel_mutex.unlock(); },
                 [] {
                   forked_after_threads = ran_on_threads;
                   kernel_mutex.unlock();
                 });
#endif
}

}  // namespace fastrnn
