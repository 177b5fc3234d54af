// The levels of cpu.h.
#include "cpu.h"

namespace fastrnn {

std::vector<std::pair<std::string, bool>> cpu_levels() {
  std::vector<std::pair<std::string, bool>> levels;
#if defined(__x86_64__) || defined(_M_X64)
  bool v3 = false, v4 = false;
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
  __builtin_cpu_init();
  v3 = __builtin_cpu_supports("x86-64-v3");  // every feature of the level,
  v4 = __builtin_cpu_supports("x86-64-v4");  // and the OS saving its registers
#elif defined(__GNUC__) || defined(__clang__)
  __builtin_cpu_init();
  v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi") &&
       __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("avx") && __builtin_cpu_supports("popcnt");
  v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
       __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
       __builtin_cpu_supports("avx512vl");
#endif
  levels = {{"x86-64", true}, {"x86-64-v3", v3}, {"x86-64-v4", v4}};
#endif
  return levels;
}

}  // namespace fastrnn
