// Which instruction-set levels this CPU runs, for the choice of a level's kernels at import
// (fastrnn/_core.py); compiled for the baseline, in the bindings.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace fastrnn {

// Which x86-64 levels this CPU (and its operating system) can run, best last; empty elsewhere.
std::vector<std::pair<std::string, bool>> cpu_levels();

}  // namespace fastrnn
