// fastrnn._core: the pybind11 module. Checks every array it is handed, allocates the outputs,
// releases the GIL and calls the sequence driver. The friendly argument handling (None for
// zeros, any memory layout, messages in the user's terms) lives in src/fastrnn/ops.py; the
// checks here make sure that nothing reaching the kernels can read or write out of bounds.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "build_info.h"
#include "memory.h"
#include "sequence.h"
#include "threads.h"

namespace py = pybind11;
using fastrnn::Dims;
using fastrnn::Mode;

namespace {

void set_num_threads(int n) {
  py::gil_scoped_release release;  // while an earlier call finishes
  fastrnn::set_num_threads(n);
}

std::string shape_str(const std::vector<py::ssize_t>& shape) {
  std::string s = "(";
  for (size_t k = 0; k < shape.size(); ++k) s += (k ? ", " : "") + std::to_string(shape[k]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

// The data pointer of `obj` after checking it is a C-contiguous T array of the given shape,
// or nullptr when `obj` is None and that is allowed.
template <typename T>
T* checked(const py::object& obj, const char* name, const std::vector<py::ssize_t>& shape,
           bool allow_none = false, bool writeable = false) {
  if (obj.is_none()) {
    if (allow_none) return nullptr;
    throw py::type_error(std::string(name) + " must be an array, got None");
  }
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy.ndarray");
  auto arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().equal(py::dtype::of<T>()))
    throw py::type_error(std::string(name) + " must have dtype " +
                         std::string(py::str(py::dtype::of<T>())) + ", got " +
                         std::string(py::str(arr.dtype())));
  std::vector<py::ssize_t> got(arr.shape(), arr.shape() + arr.ndim());
  if (got != shape)
    throw py::value_error(std::string(name) + " must have shape " + shape_str(shape) + ", got " +
                          shape_str(got));
  if (!(arr.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
  if (writeable && !arr.writeable()) throw py::value_error(std::string(name) + " must be writeable");
  return static_cast<T*>(const_cast<void*>(arr.data()));
}

const int64_t* checked_lengths(const py::object& obj, py::ssize_t T, py::ssize_t B) {
  if (obj.is_none()) return nullptr;
  const int64_t* p = checked<int64_t>(obj, "lengths", {B});
  for (py::ssize_t b = 0; b < B; ++b)
    if (p[b] < 0 || p[b] > T)
      throw py::value_error("lengths must lie in [0, T] = [0, " + std::to_string(T) + "], got " +
                            std::to_string(p[b]) + " at index " + std::to_string(b));
  return p;
}

struct Shape {
  Mode mode;
  py::ssize_t G, T, B, I, H;
};

// Dimensions from x: (T, B, I) and w_hh: (G*H, H).
Shape read_shape(const std::string& mode_name, const py::array& x, const py::array& w_hh) {
  Shape s;
  try {
    s.mode = fastrnn::parse_mode(mode_name);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
  s.G = fastrnn::gate_count(s.mode);
  if (x.ndim() != 3) throw py::value_error("x must have shape (T, B, I)");
  if (w_hh.ndim() != 2) throw py::value_error("w_hh must have shape (G*H, H)");
  s.T = x.shape(0);
  s.B = x.shape(1);
  s.I = x.shape(2);
  s.H = w_hh.shape(1);
  return s;
}

// A new C-order array in a block from fastrnn::allocate (64-byte aligned, reused; memory.h).
template <typename T>
py::array_t<T> empty(std::vector<py::ssize_t> shape) {
  size_t count = 1;
  for (auto n : shape) {
    if (n != 0 && count > (SIZE_MAX / 2 / sizeof(T)) / static_cast<size_t>(n)) throw std::bad_alloc();
    count *= static_cast<size_t>(n);
  }
  std::unique_ptr<void, void (*)(void*)> block(fastrnn::allocate(count * sizeof(T)), fastrnn::release);
  py::capsule owner(block.get(), fastrnn::release);
  T* data = static_cast<T*>(block.release());  // the capsule owns it now
  return py::array_t<T>(shape, data, owner);
}

// The arguments forward and backward share: sizes, x, the weights, lengths, direction.
template <typename T, typename Args>
void check_common(Args& a, const Shape& s, const py::array& x, const py::array& w_ih, const py::array& w_hh,
                  const py::object& b_ih, const py::object& b_hh, const py::object& lengths, bool reverse) {
  const py::ssize_t GH = s.G * s.H;
  a.mode = s.mode;
  a.d = Dims{s.T, s.B, s.I, s.H};
  a.x = checked<T>(x, "x", {s.T, s.B, s.I});
  a.w = {checked<T>(w_ih, "w_ih", {GH, s.I}), checked<T>(w_hh, "w_hh", {GH, s.H}),
         checked<T>(b_ih, "b_ih", {GH}, true), checked<T>(b_hh, "b_hh", {GH}, true)};
  a.lengths = checked_lengths(lengths, s.T, s.B);
  a.reverse = reverse;
}

template <typename T>
py::tuple forward_impl(const Shape& s, const py::array& x, const py::object& h0, const py::object& c0,
                       const py::array& w_ih, const py::array& w_hh, const py::object& b_ih,
                       const py::object& b_hh, const py::object& lengths, bool reverse,
                       bool training) {
  const bool lstm = s.mode == Mode::kLstm, gru = s.mode == Mode::kGru;
  const py::ssize_t GH = s.G * s.H;
  fastrnn::ForwardArgs<T> a{};
  check_common<T>(a, s, x, w_ih, w_hh, b_ih, b_hh, lengths, reverse);
  a.h0 = checked<T>(h0, "h0", {s.B, s.H}, true);
  if (!lstm && !c0.is_none()) throw py::value_error("c0 is only for mode 'lstm'");
  a.c0 = lstm ? checked<T>(c0, "c0", {s.B, s.H}, true) : nullptr;
  a.training = training;

  auto y = empty<T>({s.T, s.B, s.H}), h_n = empty<T>({s.B, s.H});
  py::object c_n = py::none(), workspace = py::none();
  a.y = y.mutable_data();
  a.h_n = h_n.mutable_data();
  if (lstm) {
    auto c = empty<T>({s.B, s.H});
    a.c_n = c.mutable_data();
    c_n = c;
  }
  if (training) {
    py::dict ws;
    auto gates = empty<T>({s.T, s.B, GH}), h_prev = empty<T>({s.T, s.B, s.H});
    a.ws.gates = gates.mutable_data();
    a.ws.h_prev = h_prev.mutable_data();
    ws["gates"] = gates;
    ws["h_prev"] = h_prev;
    if (lstm) {
      auto c_prev = empty<T>({s.T, s.B, s.H});
      a.ws.c_prev = c_prev.mutable_data();
      ws["c_prev"] = c_prev;
    }
    if (gru) {
      auto hn = empty<T>({s.T, s.B, s.H});
      a.ws.hn = hn.mutable_data();
      ws["hn"] = hn;
    }
    workspace = ws;
  }
  {
    py::gil_scoped_release release;
    fastrnn::KernelTurn turn;
    fastrnn::rnn_forward<T>(a);
  }
  return py::make_tuple(y, h_n, c_n, workspace);
}

template <typename T>
py::dict backward_impl(const Shape& s, const py::array& x, const py::array& w_ih,
                       const py::array& w_hh, const py::object& b_ih, const py::object& b_hh,
                       const py::object& lengths, bool reverse, const py::dict& ws,
                       const py::object& dy, const py::object& dh_n, const py::object& dc_n) {
  const bool lstm = s.mode == Mode::kLstm, gru = s.mode == Mode::kGru;
  const py::ssize_t GH = s.G * s.H;
  fastrnn::BackwardArgs<T> a{};
  check_common<T>(a, s, x, w_ih, w_hh, b_ih, b_hh, lengths, reverse);
  // The workspace arrays are held here, not only by the dict, until the kernel is done with them.
  auto item = [&](const char* key) -> py::object {
    PyObject* value = PyDict_GetItemString(ws.ptr(), key);  // the dict's own entry, no __getitem__
    if (!value) throw py::value_error(std::string("workspace has no '") + key + "'");
    return py::reinterpret_borrow<py::object>(value);
  };
  py::object gates = item("gates"), h_prev = item("h_prev");
  py::object c_prev = lstm ? item("c_prev") : py::none(), hn = gru ? item("hn") : py::none();
  a.ws.gates = checked<T>(gates, "workspace['gates']", {s.T, s.B, GH}, false, true);
  a.ws.h_prev = checked<T>(h_prev, "workspace['h_prev']", {s.T, s.B, s.H});
  if (lstm) a.ws.c_prev = checked<T>(c_prev, "workspace['c_prev']", {s.T, s.B, s.H});
  if (gru) a.ws.hn = checked<T>(hn, "workspace['hn']", {s.T, s.B, s.H}, false, true);
  a.dy = checked<T>(dy, "dy", {s.T, s.B, s.H}, true);
  a.dh_n = checked<T>(dh_n, "dh_n", {s.B, s.H}, true);
  if (!lstm && !dc_n.is_none()) throw py::value_error("dc_n is only for mode 'lstm'");
  a.dc_n = lstm ? checked<T>(dc_n, "dc_n", {s.B, s.H}, true) : nullptr;

  py::dict grads;
  auto dx = empty<T>({s.T, s.B, s.I}), dh0 = empty<T>({s.B, s.H});
  auto dw_ih = empty<T>({GH, s.I}), dw_hh = empty<T>({GH, s.H});
  a.dx = dx.mutable_data();
  a.dh0 = dh0.mutable_data();
  a.dw_ih = dw_ih.mutable_data();
  a.dw_hh = dw_hh.mutable_data();
  grads["x"] = dx;
  grads["h0"] = dh0;
  grads["w_ih"] = dw_ih;
  grads["w_hh"] = dw_hh;
  if (lstm) {
    auto dc0 = empty<T>({s.B, s.H});
    a.dc0 = dc0.mutable_data();
    grads["c0"] = dc0;
  }
  grads["b_ih"] = py::none();
  grads["b_hh"] = py::none();
  if (a.w.b_ih) {
    auto db = empty<T>({GH});
    a.db_ih = db.mutable_data();
    grads["b_ih"] = db;
  }
  if (a.w.b_hh) {
    auto db = empty<T>({GH});
    a.db_hh = db.mutable_data();
    grads["b_hh"] = db;
  }
  {
    py::gil_scoped_release release;
    fastrnn::KernelTurn turn;
    fastrnn::rnn_backward<T>(a);
  }
  return grads;
}

bool is_dtype(const py::array& x, const py::dtype& dt) { return x.dtype().equal(dt); }

py::tuple forward(const std::string& mode, const py::array& x, const py::object& h0,
                  const py::object& c0, const py::array& w_ih, const py::array& w_hh,
                  const py::object& b_ih, const py::object& b_hh, const py::object& lengths,
                  bool reverse, bool training) {
  Shape s = read_shape(mode, x, w_hh);
  if (is_dtype(x, py::dtype::of<float>()))
    return forward_impl<float>(s, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, training);
  if (is_dtype(x, py::dtype::of<double>()))
    return forward_impl<double>(s, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, training);
  throw py::type_error("x must have dtype float32 or float64");
}

py::dict backward(const std::string& mode, const py::array& x, const py::array& w_ih,
                  const py::array& w_hh, const py::object& b_ih, const py::object& b_hh,
                  const py::object& lengths, bool reverse, const py::dict& workspace,
                  const py::object& dy, const py::object& dh_n, const py::object& dc_n) {
  Shape s = read_shape(mode, x, w_hh);
  if (is_dtype(x, py::dtype::of<float>()))
    return backward_impl<float>(s, x, w_ih, w_hh, b_ih, b_hh, lengths, reverse, workspace, dy,
                                dh_n, dc_n);
  if (is_dtype(x, py::dtype::of<double>()))
    return backward_impl<double>(s, x, w_ih, w_hh, b_ih, b_hh, lengths, reverse, workspace, dy,
                                 dh_n, dc_n);
  throw py::type_error("x must have dtype float32 or float64");
}

// c = op(a) @ op(b) for C-contiguous 2-D arrays, op transposing where asked: the model layers'
// products (Dense) run here, on the kernels' threads, rather than on a second thread pool of
// NumPy's BLAS that would fight the kernels' threads for the same cores.
template <typename T>
py::array_t<T> matmul_impl(const py::array& a, const py::array& b, bool ta, bool tb) {
  using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Map = Eigen::Map<const RowMat>;
  if (a.ndim() != 2 || b.ndim() != 2) throw py::value_error("matmul takes 2-D arrays");
  const py::ssize_t ar = a.shape(0), ac = a.shape(1), br = b.shape(0), bc = b.shape(1);
  const py::ssize_t m = ta ? ac : ar, k = ta ? ar : ac, n = tb ? br : bc;
  if ((tb ? bc : br) != k) throw py::value_error("matmul: inner sizes differ");
  Map A(checked<T>(a, "a", {ar, ac}), ar, ac), B(checked<T>(b, "b", {br, bc}), br, bc);
  auto out = empty<T>({m, n});
  {
    py::gil_scoped_release release;
    fastrnn::KernelTurn turn;
    Eigen::Map<RowMat> C(out.mutable_data(), m, n);
    if (!ta && !tb) C.noalias() = A * B;
    else if (ta && !tb) C.noalias() = A.transpose() * B;
    else if (!ta && tb) C.noalias() = A * B.transpose();
    else C.noalias() = A.transpose() * B.transpose();
  }
  return out;
}

py::array matmul(const py::array& a, const py::array& b, bool ta, bool tb) {
  if (is_dtype(a, py::dtype::of<float>())) return matmul_impl<float>(a, b, ta, tb);
  if (is_dtype(a, py::dtype::of<double>())) return matmul_impl<double>(a, b, ta, tb);
  throw py::type_error("a must have dtype float32 or float64");
}

py::dict build_info() {
  py::dict info;
  info["eigen"] = fastrnn::eigen_version();
  info["simd"] = fastrnn::simd_instruction_sets();
  info["openmp"] = fastrnn::has_openmp();
  info["threads"] = fastrnn::get_num_threads();
  info["isa"] = fastrnn::isa_level();
  if (!fastrnn::compiler().empty()) info["compiler"] = fastrnn::compiler();
  return info;
}

// Which ISA levels this CPU (and its operating system) can run; asked of the baseline module.
py::dict cpu_supports() {
  py::dict levels;
  for (const auto& [level, ok] : fastrnn::cpu_levels()) levels[py::str(level)] = ok;
  return levels;
}

}  // namespace

#ifndef FASTRNN_MODULE
#define FASTRNN_MODULE _kernels_native
#endif

PYBIND11_MODULE(FASTRNN_MODULE, m) {
  fastrnn::wait_for_kernels_at_fork();  // after the block cache's handler (memory.cpp)
  m.doc() = "fastrnn C++ kernels. Use fastrnn.ops, which documents the arguments.";
  m.def("forward", &forward, py::arg("mode"), py::arg("x"), py::arg("h0"), py::arg("c0"),
        py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"), py::arg("b_hh"), py::arg("lengths"),
        py::arg("reverse"), py::arg("training"),
        "Forward unroll -> (y, h_n, c_n, workspace). Arrays must be C-contiguous, of x's dtype.");
  m.def("backward", &backward, py::arg("mode"), py::arg("x"), py::arg("w_ih"), py::arg("w_hh"),
        py::arg("b_ih"), py::arg("b_hh"), py::arg("lengths"), py::arg("reverse"),
        py::arg("workspace"), py::arg("dy"), py::arg("dh_n"), py::arg("dc_n"),
        "BPTT -> dict of gradients. Overwrites workspace['gates'] (and 'hn').");
  m.def("matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("transpose_a"), py::arg("transpose_b"),
        "op(a) @ op(b) for C-contiguous 2-D arrays of one dtype, on the kernels' threads.");
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.def("get_num_threads", &fastrnn::get_num_threads);
  m.def("build_info", &build_info);
  m.def("cpu_supports", &cpu_supports);
  m.def("cached_bytes", &fastrnn::cached_bytes);
  m.def("empty_cache", &fastrnn::empty_cache);
  m.def("set_cache_limit", &fastrnn::set_cache_limit, py::arg("nbytes"));
  m.def("cache_limit", &fastrnn::cache_limit);
}
