// The facts of build_info.h.
#include "build_info.h"

#include <Eigen/Core>

#ifndef FASTRNN_ISA
#define FASTRNN_ISA "unknown"
#endif

namespace fastrnn {

std::string eigen_version() {
  return std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
         std::to_string(EIGEN_MINOR_VERSION);
}

std::string simd_instruction_sets() { return Eigen::SimdInstructionSetsInUse(); }

bool has_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

std::string isa_level() { return FASTRNN_ISA; }

std::string compiler() {
#ifdef __VERSION__
  return __VERSION__;
#else
  return "";
#endif
}

}  // namespace fastrnn
