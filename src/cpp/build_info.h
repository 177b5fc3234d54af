// Facts about this build of a level's kernels, for `fastrnn info` and the self-check.
#pragma once

#include <string>

namespace fastrnn {

std::string eigen_version();
std::string simd_instruction_sets();
bool has_openmp();
std::string isa_level();  // the level this module was built for (FASTRNN_ISA)
std::string compiler();   // empty when unknown

}  // namespace fastrnn
