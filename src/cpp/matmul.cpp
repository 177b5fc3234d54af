// The products of matmul.h, by Eigen's GEMM.
#include "matmul.h"

#include <Eigen/Core>

namespace fastrnn {

template <typename T>
void matmul(const T* a, int64_t ar, int64_t ac, bool ta, const T* b, int64_t br, int64_t bc, bool tb, T* c) {
  using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Map = Eigen::Map<const RowMat>;
  const Map A(a, ar, ac), B(b, br, bc);
  Eigen::Map<RowMat> C(c, ta ? ac : ar, tb ? br : bc);
  if (!ta && !tb) C.noalias() = A * B;
  else if (ta && !tb) C.noalias() = A.transpose() * B;
  else if (!ta && tb) C.noalias() = A * B.transpose();
  else C.noalias() = A.transpose() * B.transpose();
}

template void matmul<float>(const float*, int64_t, int64_t, bool, const float*, int64_t, int64_t, bool, float*);
template void matmul<double>(const double*, int64_t, int64_t, bool, const double*, int64_t, int64_t, bool,
                             double*);

}  // namespace fastrnn
