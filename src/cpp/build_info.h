// Facts about this build and this CPU, for `fastrnn info`, the self-check and the choice of the
// instruction-set level (fastrnn/_core.py).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace fastrnn {

std::string eigen_version();
std::string simd_instruction_sets();
bool has_openmp();
std::string isa_level();  // the level this module was built for (FASTRNN_ISA)
std::string compiler();   // empty when unknown

// Which x86-64 levels this CPU (and its operating system) can run, best last; empty elsewhere.
std::vector<std::pair<std::string, bool>> cpu_levels();

}  // namespace fastrnn
