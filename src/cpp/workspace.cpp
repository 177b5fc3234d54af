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

Workspace::Workspace(std::shared_ptr<const Cell> cell, const Dims& d, std::size_t value_bytes)
    : cell_(std::move(cell)), dims_(d), value_bytes_(value_bytes) {
  const Layout& layout = cell_->layout();
  auto add = [&](std::string name, int64_t width) {
    const std::size_t values = times(times(static_cast<std::size_t>(d.T), static_cast<std::size_t>(d.B)),
                                     static_cast<std::size_t>(width));
    arrays_.push_back({std::move(name), width, Buffer<unsigned char>(times(values, value_bytes))});
  };
  add("gates", layout.gates * d.H);
  for (const std::string& s : layout.states) add(s + "_prev", d.H);
  for (const Saved& s : layout.saved) add(s.name, s.width * d.H);
}

}  // namespace fastrnn
