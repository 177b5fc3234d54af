// c = op(a) op(b) for row-major matrices, op transposing where asked: the model layers' products
// (Dense), run on the kernels' threads rather than on a second thread pool of NumPy's BLAS that
// would fight them for the same cores.
#pragma once

#include <cstdint>

namespace fastrnn {

// a: (ar, ac), b: (br, bc), c: (m, n) with m = ta ? ac : ar, n = tb ? br : bc; the inner sizes
// agree (checked by the caller).
template <typename T>
void matmul(const T* a, int64_t ar, int64_t ac, bool ta, const T* b, int64_t br, int64_t bc, bool tb, T* c);

}  // namespace fastrnn
