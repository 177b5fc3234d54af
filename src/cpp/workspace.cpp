// The arrays of workspace.h.
#include "workspace.h"

#include <new>
#include <utility>

namespace fastrnn {
namespace {

// a * b, or std::bad_alloc where that would not fit in a size_t (half of it, to be sure).
std::size_t times(std::size_t a, std::size_t b) {
  if (b != 0 && a > (SIZE_MAX / 2) / b) throw std::bad_alloc();
  return a * b;
}

}  // namespace

Workspace::Workspace(std::shared_ptr<const Cell> cell, const Dims& d, std::size_t value_bytes, int64_t every)
    : cell_(std::move(cell)), dims_(d), value_bytes_(value_bytes), every_(std::max<int64_t>(every, 0)),
      steps_(every_ > 0 ? segment_steps(d.T, d.B, every_) : d.T) {
  const Layout& layout = cell_->layout();
  auto add = [&](std::string name, int64_t steps, int64_t width) {
    const std::size_t values = times(times(static_cast<std::size_t>(steps), static_cast<std::size_t>(d.B)),
                                     static_cast<std::size_t>(width));
    arrays_.push_back({std::move(name), steps, width, Buffer<unsigned char>(times(values, value_bytes))});
  };
  add("gates", steps_, layout.gates * d.H);
  for (const std::string& s : layout.states) add(s + "_prev", steps_, d.H);
  for (const Saved& s : layout.saved) add(s.name, steps_, s.width * d.H);
  if (!checkpointed()) return;
  const int64_t segments = steps_ > 0 ? (d.T + steps_ - 1) / steps_ : 1;
  for (const std::string& s : layout.states) add(s + "_checkpoints", segments, d.H);
}

}  // namespace fastrnn
