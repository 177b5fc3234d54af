// fastrnn._bindings: the pybind11 module over the kernels, compiled once for every level. Each
// level's kernels come from their own module as a table (level.h), wrapped here as a Kernels
// object; fastrnn/_core.py chooses the level and re-exports its Kernels' methods. fastrnn.ops
// checks every argument and words the messages (src/fastrnn/_args.py); the checks here keep only
// the kernels' invariants, each array's dtype, shape and layout, so that nothing reaching them
// can read or write out of bounds. Shapes and their meaning are those of sequence.h.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "cell.h"
#include "cpu.h"
#include "level.h"
#include "memory.h"
#include "sequence.h"
#include "workspace.h"

namespace py = pybind11;
using fastrnn::Cell;
using fastrnn::Dims;
using fastrnn::Level;
using fastrnn::Workspace;
using fastrnn::Zoneout;

namespace {

// One level's kernels, from the capsule its module holds.
struct Kernels {
  const Level* level;
};

Kernels kernels_of(const py::capsule& capsule) {
  const auto* level = static_cast<const Level*>(PyCapsule_GetPointer(capsule.ptr(), "fastrnn.Level"));
  if (!level) throw py::error_already_set();
  if (level->abi != fastrnn::kLevelAbi || level->size != sizeof(Level))
    throw std::runtime_error("fastrnn: a kernels module of another build; reinstall fastrnn");
  level->attach({&fastrnn::allocate, &fastrnn::release});
  return {level};
}

// The level in use (fastrnn._core's choice), which makes the cells that Python constructs and
// unpickles; set once.
const Level* level_in_use = nullptr;

const Level& in_use() {
  if (!level_in_use) throw std::runtime_error("fastrnn: no kernels level chosen (import fastrnn._core)");
  return *level_in_use;
}

void use(const Kernels& k) {
  if (level_in_use && level_in_use != k.level)
    throw std::runtime_error("fastrnn: another kernels level is already in use in this process");
  level_in_use = k.level;
}

using Shape = std::vector<py::ssize_t>;

std::string shape_str(const Shape& shape) {
  std::string s = "(";
  for (size_t k = 0; k < shape.size(); ++k) s += (k ? ", " : "") + std::to_string(shape[k]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

// The data of `obj`, a C-contiguous T array of `shape`; nullptr for None where that is allowed.
template <typename T>
T* data_of(const py::handle& obj, const char* name, const Shape& shape, bool optional = false) {
  if (obj.is_none() && optional) return nullptr;
  auto fail = [&] {
    return py::value_error(std::string(name) + " must be a C-contiguous " + std::string(py::str(py::dtype::of<T>())) +
                           " array of shape " + shape_str(shape));
  };
  if (!py::isinstance<py::array>(obj)) throw fail();
  auto arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().equal(py::dtype::of<T>()) || Shape(arr.shape(), arr.shape() + arr.ndim()) != shape ||
      !(arr.flags() & py::array::c_style))
    throw fail();
  return static_cast<T*>(const_cast<void*>(arr.data()));
}

// A new C-order array in a block from fastrnn::allocate (64-byte aligned, reused; memory.h).
template <typename T>
py::array_t<T> empty(const Shape& shape) {
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

// Sizes from x: (T, B, I) and w_hh: (G*H, H).
Dims dims_of(const py::array& x, const py::array& w_hh) {
  if (x.ndim() != 3 || w_hh.ndim() != 2) throw py::value_error("x must be 3-D and w_hh 2-D");
  return {x.shape(0), x.shape(1), x.shape(2), w_hh.shape(1)};
}

// The cell's parameters (Layout::params), one (width*H,) array each in the layout's order.
template <typename T>
void params_of(fastrnn::Weights<T>& w, const py::sequence& given, const Cell& cell, const Dims& d) {
  const auto& params = cell.layout().params;
  if (given.size() != params.size())
    throw py::value_error("params must hold " + std::to_string(params.size()) + " arrays for cell '" + cell.kind() + "'");
  for (size_t k = 0; k < params.size(); ++k) {
    const py::object p = given[k];
    w.params[k] = data_of<T>(p, params[k].name.c_str(), {params[k].width * d.H});
  }
}

// The arguments forward and backward share: x, the weights, lengths or mask, direction, the
// products' masks: (G, B, H) and (G, B, I), or None, and the cell's parameters.
template <typename T, typename Args>
void common_args(Args& a, const std::shared_ptr<Cell>& cell, const py::array& x, const py::array& w_ih,
                 const py::array& w_hh, const py::object& b_ih, const py::object& b_hh, const py::object& lengths,
                 const py::object& mask, bool reverse, const py::object& recurrent_masks,
                 const py::object& input_masks, const py::sequence& params, const Zoneout& zoneout) {
  a.cell = cell.get();
  if (!(zoneout.rate >= 0 && zoneout.rate < 1)) throw py::value_error("zoneout must be in [0, 1)");
  a.zoneout = zoneout;
  a.d = dims_of(x, w_hh);
  const Dims& d = a.d;
  const py::ssize_t GH = cell->layout().gates * d.H;
  a.x = data_of<T>(x, "x", {d.T, d.B, d.I});
  a.w = {data_of<T>(w_ih, "w_ih", {GH, d.I}), data_of<T>(w_hh, "w_hh", {GH, d.H}),
         data_of<T>(b_ih, "b_ih", {GH}, true), data_of<T>(b_hh, "b_hh", {GH}, true)};
  params_of<T>(a.w, params, *cell, d);
  a.padding.lengths = data_of<int64_t>(lengths, "lengths", {d.B}, true);
  a.padding.mask = data_of<uint8_t>(mask, "mask", {d.T, d.B}, true);
  if (a.padding.lengths && a.padding.mask) throw py::value_error("give lengths or mask, not both");
  a.padding.B = d.B;
  a.reverse = reverse;
  const py::ssize_t G = cell->layout().gates;
  a.masks.recurrent = data_of<T>(recurrent_masks, "recurrent_masks", {G, d.B, d.H}, true);
  a.masks.input = data_of<T>(input_masks, "input_masks", {G, d.B, d.I}, true);
}

// One array a state, None where absent.
template <typename T>
std::vector<const T*> states_of(const py::sequence& given, const char* name, const Cell& cell, const Dims& d) {
  const size_t n = cell.layout().states.size();
  if (given.size() != n) throw py::value_error(std::string(name) + " must hold " + std::to_string(n) + " states");
  std::vector<const T*> out;
  for (size_t k = 0; k < n; ++k) {
    const py::object s = given[k];
    out.push_back(data_of<T>(s, name, {d.B, d.H}, true));
  }
  return out;
}

// Ctrl-C in a kernel call: Python runs signal handlers on the main thread only, between
// bytecodes, so a call from the main thread asks for them itself now and then (fastrnn::Stop).
// When a handler raises (KeyboardInterrupt), the call gives up and raises that; a handler that
// returns lets it go on. A call from another thread is never stopped.
class SignalStop {
 public:
  SignalStop() {
    auto threading = py::module_::import("threading");
    if (threading.attr("current_thread")().is(threading.attr("main_thread")())) stop_ = {&SignalStop::requested, this};
  }
  const fastrnn::Stop& stop() const { return stop_; }
  // After the call stopped, with the GIL: raises what the handler raised.
  [[noreturn]] void raise() const { throw *error_; }

 private:
  static bool requested(void* self) {
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() == 0) return false;
    static_cast<SignalStop*>(self)->error_ = std::make_unique<py::error_already_set>();  // takes the error
    return true;
  }

  fastrnn::Stop stop_;
  std::unique_ptr<py::error_already_set> error_;
};

template <typename T>
py::tuple forward_impl(const Level& level, const std::shared_ptr<Cell>& cell, const py::array& x, const py::sequence& states0,
                       const py::array& w_ih, const py::array& w_hh, const py::object& b_ih, const py::object& b_hh,
                       const py::object& lengths, bool reverse, bool training, const py::object& mask,
                       const py::object& recurrent_masks, const py::object& input_masks,
                       const py::sequence& params, int64_t checkpoint_every, bool sequences, const Zoneout& zoneout) {
  fastrnn::ForwardArgs<T> a{};
  common_args<T>(a, cell, x, w_ih, w_hh, b_ih, b_hh, lengths, mask, reverse, recurrent_masks, input_masks, params,
                 zoneout);
  const Dims& d = a.d;
  const std::vector<const T*> s0 = states_of<T>(states0, "initial states", *cell, d);
  py::list states_n;
  for (size_t k = 0; k < s0.size(); ++k) {
    a.state0[k] = s0[k];
    auto s = empty<T>({d.B, d.H});
    a.state_n[k] = s.mutable_data();
    states_n.append(s);
  }
  py::object y = py::none();
  if (sequences) {
    auto ys = empty<T>({d.T, d.B, d.H});
    a.y = ys.mutable_data();
    y = ys;
  }
  if (checkpoint_every < 0) throw py::value_error("checkpoint_every must be 0 (none) or more");
  std::shared_ptr<Workspace> ws;
  if (training) ws = std::make_shared<Workspace>(cell, d, sizeof(T), checkpoint_every);
  a.ws = ws.get();
  SignalStop signals;
  a.stop = signals.stop();
  try {
    py::gil_scoped_release release;
    if constexpr (std::is_same_v<T, float>) level.forward_float(a);
    else level.forward_double(a);
  } catch (const fastrnn::Stopped&) {
    signals.raise();
  }
  return py::make_tuple(y, states_n, ws ? py::cast(ws) : py::none());
}

template <typename T>
py::tuple backward_impl(const Level& level, const std::shared_ptr<Cell>& cell, const py::array& x, const py::array& w_ih,
                        const py::array& w_hh, const py::object& b_ih, const py::object& b_hh,
                        const py::object& lengths, bool reverse, const std::shared_ptr<Workspace>& ws,
                        const py::object& dy, const py::sequence& d_states_n, const py::object& mask,
                        const py::object& recurrent_masks, const py::object& input_masks,
                        const py::sequence& params, const Zoneout& zoneout) {
  fastrnn::BackwardArgs<T> a{};
  common_args<T>(a, cell, x, w_ih, w_hh, b_ih, b_hh, lengths, mask, reverse, recurrent_masks, input_masks, params,
                 zoneout);
  const Dims& d = a.d;
  const Dims& wd = ws->dims();
  if (!ws->cell()->same_as(*cell) || wd.T != d.T || wd.B != d.B || wd.H != d.H || ws->value_bytes() != sizeof(T))
    throw py::value_error("workspace is not from a forward of this cell, these sizes and this dtype");
  a.ws = ws.get();
  a.dy = data_of<T>(dy, "dy", {d.T, d.B, d.H}, true);
  const std::vector<const T*> dn = states_of<T>(d_states_n, "final state gradients", *cell, d);
  const py::ssize_t GH = cell->layout().gates * d.H;
  py::list d_states0;
  for (size_t k = 0; k < dn.size(); ++k) {
    a.d_state_n[k] = dn[k];
    auto s = empty<T>({d.B, d.H});
    a.d_state0[k] = s.mutable_data();
    d_states0.append(s);
  }
  auto dx = empty<T>({d.T, d.B, d.I}), dw_ih = empty<T>({GH, d.I}), dw_hh = empty<T>({GH, d.H});
  a.dx = dx.mutable_data();
  a.dw_ih = dw_ih.mutable_data();
  a.dw_hh = dw_hh.mutable_data();
  py::object db_ih = py::none(), db_hh = py::none();
  if (a.w.b_ih) {
    auto db = empty<T>({GH});
    a.db_ih = db.mutable_data();
    db_ih = db;
  }
  if (a.w.b_hh) {
    auto db = empty<T>({GH});
    a.db_hh = db.mutable_data();
    db_hh = db;
  }
  py::list d_params;
  for (size_t k = 0; k < cell->layout().params.size(); ++k) {
    auto dp = empty<T>({cell->layout().params[k].width * d.H});
    a.d_params[k] = dp.mutable_data();
    d_params.append(dp);
  }
  SignalStop signals;
  a.stop = signals.stop();
  try {
    py::gil_scoped_release release;
    if constexpr (std::is_same_v<T, float>) level.backward_float(a);
    else level.backward_double(a);
  } catch (const fastrnn::Stopped&) {
    signals.raise();
  }
  return py::make_tuple(dx, d_states0, dw_ih, dw_hh, db_ih, db_hh, d_params);
}

bool is_dtype(const py::array& x, const py::dtype& dt) { return x.dtype().equal(dt); }

py::tuple forward(const Kernels& k, const std::shared_ptr<Cell>& cell, const py::array& x, const py::sequence& states0,
                  const py::array& w_ih, const py::array& w_hh, const py::object& b_ih, const py::object& b_hh,
                  const py::object& lengths, bool reverse, bool training, const py::object& mask,
                  const py::object& recurrent_masks, const py::object& input_masks, const py::sequence& params,
                  int64_t checkpoint_every, bool sequences, double zoneout, uint64_t zoneout_seed) {
  const Zoneout z{zoneout, zoneout_seed};
  if (is_dtype(x, py::dtype::of<float>()))
    return forward_impl<float>(*k.level, cell, x, states0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, training, mask,
                               recurrent_masks, input_masks, params, checkpoint_every, sequences, z);
  if (is_dtype(x, py::dtype::of<double>()))
    return forward_impl<double>(*k.level, cell, x, states0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, training, mask,
                                recurrent_masks, input_masks, params, checkpoint_every, sequences, z);
  throw py::value_error("x must have dtype float32 or float64");
}

py::tuple backward(const Kernels& k, const std::shared_ptr<Cell>& cell, const py::array& x, const py::array& w_ih,
                   const py::array& w_hh, const py::object& b_ih, const py::object& b_hh, const py::object& lengths,
                   bool reverse, const std::shared_ptr<Workspace>& workspace, const py::object& dy,
                   const py::sequence& d_states_n, const py::object& mask, const py::object& recurrent_masks,
                   const py::object& input_masks, const py::sequence& params, double zoneout,
                   uint64_t zoneout_seed) {
  const Zoneout z{zoneout, zoneout_seed};
  if (is_dtype(x, py::dtype::of<float>()))
    return backward_impl<float>(*k.level, cell, x, w_ih, w_hh, b_ih, b_hh, lengths, reverse, workspace, dy, d_states_n, mask,
                                recurrent_masks, input_masks, params, z);
  if (is_dtype(x, py::dtype::of<double>()))
    return backward_impl<double>(*k.level, cell, x, w_ih, w_hh, b_ih, b_hh, lengths, reverse, workspace, dy, d_states_n, mask,
                                 recurrent_masks, input_masks, params, z);
  throw py::value_error("x must have dtype float32 or float64");
}

// ---------------------------------------------------------------------------------------------
// Cells and workspaces as Python objects.

std::shared_ptr<Cell> make_cell(const std::string& kind, const std::string& activation,
                                const std::string& recurrent) {
  return in_use().make_cell(kind, activation, recurrent);
}

const char* activation_name(fastrnn::Activation a) { return in_use().activation_name(a); }

py::dtype dtype_of(const Workspace& ws) {
  return ws.value_bytes() == sizeof(float) ? py::dtype::of<float>() : py::dtype::of<double>();
}

// Array k of the workspace as an ndarray (steps, B, width): a view that keeps `self` alive, or a copy.
py::array workspace_array(const py::object& self, const Workspace& ws, size_t k, bool copy) {
  const Workspace::Array& arr = ws.arrays()[k];
  const Dims& d = ws.dims();
  const auto vb = static_cast<py::ssize_t>(ws.value_bytes());
  const Shape shape{arr.steps, d.B, arr.width}, strides{d.B * arr.width * vb, arr.width * vb, vb};
  if (copy) return py::array(dtype_of(ws), shape, strides, arr.data.data());
  return py::array(dtype_of(ws), shape, strides, arr.data.data(), self);
}

size_t workspace_index(const Workspace& ws, const std::string& name) {
  for (size_t k = 0; k < ws.arrays().size(); ++k)
    if (ws.arrays()[k].name == name) return k;
  throw py::key_error(name);
}

py::tuple workspace_state(const Workspace& ws) {
  const Cell& cell = *ws.cell();
  py::list arrays;
  for (size_t k = 0; k < ws.arrays().size(); ++k) arrays.append(workspace_array(py::none(), ws, k, true));
  const Dims& d = ws.dims();
  return py::make_tuple(cell.kind(), activation_name(cell.activation()),
                        activation_name(cell.recurrent_activation()), py::dtype(dtype_of(ws)), d.T, d.B, d.I,
                        d.H, arrays, ws.every());
}

std::shared_ptr<Workspace> workspace_from_state(const py::tuple& state) {
  if (state.size() != 10) throw py::value_error("not a workspace's state");
  auto cell = make_cell(state[0].cast<std::string>(), state[1].cast<std::string>(), state[2].cast<std::string>());
  const py::dtype dtype = state[3].cast<py::dtype>();
  const Dims d{state[4].cast<int64_t>(), state[5].cast<int64_t>(), state[6].cast<int64_t>(),
               state[7].cast<int64_t>()};
  auto ws = std::make_shared<Workspace>(cell, d, dtype.itemsize(), state[9].cast<int64_t>());
  const py::list arrays = state[8].cast<py::list>();
  if (arrays.size() != ws->arrays().size() || !(dtype.equal(py::dtype::of<float>()) || dtype.equal(py::dtype::of<double>())))
    throw py::value_error("not a workspace's state");
  for (size_t k = 0; k < arrays.size(); ++k) {
    const Workspace::Array& arr = ws->arrays()[k];
    const Shape shape{arr.steps, d.B, arr.width};
    const void* src = dtype.equal(py::dtype::of<float>())
                          ? static_cast<const void*>(data_of<float>(arrays[k], "workspace array", shape))
                          : static_cast<const void*>(data_of<double>(arrays[k], "workspace array", shape));
    std::memcpy(arr.data.data(), src, static_cast<size_t>(arr.steps * d.B * arr.width) * dtype.itemsize());
  }
  return ws;
}

// ---------------------------------------------------------------------------------------------

py::array matmul(const Kernels& k, const py::array& a, const py::array& b, bool ta, bool tb) {
  if (a.ndim() != 2 || b.ndim() != 2 || !a.dtype().equal(b.dtype())) throw py::value_error("matmul takes 2-D arrays of one dtype");
  const py::ssize_t ar = a.shape(0), ac = a.shape(1), br = b.shape(0), bc = b.shape(1);
  if ((ta ? ar : ac) != (tb ? bc : br)) throw py::value_error("matmul: inner sizes differ");
  auto run = [&](auto zero) -> py::array {
    using T = decltype(zero);
    const T* pa = data_of<T>(a, "a", {ar, ac});
    const T* pb = data_of<T>(b, "b", {br, bc});
    auto out = empty<T>({ta ? ac : ar, tb ? br : bc});
    T* pc = out.mutable_data();
    {
      py::gil_scoped_release release;
      if constexpr (std::is_same_v<T, float>) k.level->matmul_float(pa, ar, ac, ta, pb, br, bc, tb, pc);
      else k.level->matmul_double(pa, ar, ac, ta, pb, br, bc, tb, pc);
    }
    return out;
  };
  if (is_dtype(a, py::dtype::of<float>())) return run(float(0));
  if (is_dtype(a, py::dtype::of<double>())) return run(double(0));
  throw py::value_error("matmul takes float32 or float64 arrays");
}

void set_num_threads(const Kernels& k, int n) {
  py::gil_scoped_release release;  // while an earlier call finishes
  k.level->set_num_threads(n);
}

py::dict build_info(const Kernels& k) {
  const fastrnn::BuildFacts facts = k.level->build_facts();
  py::dict info;
  info["eigen"] = facts.eigen;
  info["simd"] = facts.simd;
  info["openmp"] = facts.openmp;
  info["threads"] = k.level->get_num_threads();
  info["isa"] = facts.isa;
  if (!facts.compiler.empty()) info["compiler"] = facts.compiler;
  return info;
}

// Which ISA levels this CPU (and its operating system) can run, before any level is loaded.
py::dict cpu_supports() {
  py::dict levels;
  for (const auto& [level, ok] : fastrnn::cpu_levels()) levels[py::str(level)] = ok;
  return levels;
}

}  // namespace

PYBIND11_MODULE(_bindings, m) {
  m.doc() = "fastrnn C++ kernels. Use fastrnn.ops, which documents the arguments.";

  py::class_<Cell, std::shared_ptr<Cell>>(m, "Cell", "A cell kind with its activations, and its layout.")
      .def(py::init(&make_cell), py::arg("kind"), py::arg("activation") = "tanh",
           py::arg("recurrent_activation") = "sigmoid")
      .def_property_readonly("kind", &Cell::kind)
      .def_property_readonly("activation", [](const Cell& c) { return activation_name(c.activation()); })
      .def_property_readonly("recurrent_activation",
                             [](const Cell& c) { return activation_name(c.recurrent_activation()); })
      .def_property_readonly("gates", [](const Cell& c) { return c.layout().gates; })
      .def_property_readonly("states", [](const Cell& c) { return c.layout().states; })
      .def_property_readonly(
          "params",
          [](const Cell& c) {
            std::vector<std::pair<std::string, int>> params;
            for (const auto& p : c.layout().params) params.emplace_back(p.name, p.width);
            return params;
          },
          "(name, width in blocks of H) of each (width*H,) parameter vector of the cell's own")
      .def_property_readonly(
          "workspace",
          [](const Cell& c) {  // (name, width in blocks of H) of each array a training forward keeps
            std::vector<std::pair<std::string, int>> arrays{{"gates", c.layout().gates}};
            for (const auto& s : c.layout().states) arrays.emplace_back(s + "_prev", 1);
            for (const auto& s : c.layout().saved) arrays.emplace_back(s.name, s.width);
            return arrays;
          },
          "(name, width in blocks of H) of each (T, B, width*H) array a training forward keeps")
      .def(py::pickle(
          [](const Cell& c) {
            return py::make_tuple(c.kind(), activation_name(c.activation()),
                                  activation_name(c.recurrent_activation()));
          },
          [](const py::tuple& s) {
            return make_cell(s[0].cast<std::string>(), s[1].cast<std::string>(), s[2].cast<std::string>());
          }))
      .def("__repr__", [](const Cell& c) {
        return "Cell('" + c.kind() + "', '" + activation_name(c.activation()) + "', '" +
               activation_name(c.recurrent_activation()) + "')";
      });

  py::class_<Workspace, std::shared_ptr<Workspace>>(
      m, "Workspace",
      "What a training forward keeps for BPTT: arrays (T, B, width) by name, which backward overwrites.")
      .def("__getitem__",
           [](const py::object& self, const std::string& name) {
             const auto& ws = self.cast<const Workspace&>();
             return workspace_array(self, ws, workspace_index(ws, name), false);
           })
      .def("__contains__",
           [](const Workspace& ws, const std::string& name) {
             for (const auto& a : ws.arrays())
               if (a.name == name) return true;
             return false;
           })
      .def("__len__", [](const Workspace& ws) { return ws.arrays().size(); })
      .def("keys",
           [](const Workspace& ws) {
             std::vector<std::string> names;
             for (const auto& a : ws.arrays()) names.push_back(a.name);
             return names;
           })
      .def("__iter__", [](const py::object& self) { return self.attr("keys")().attr("__iter__")(); })
      .def("values",
           [](const py::object& self) {
             const auto& ws = self.cast<const Workspace&>();
             py::list out;
             for (size_t k = 0; k < ws.arrays().size(); ++k) out.append(workspace_array(self, ws, k, false));
             return out;
           })
      .def("items",
           [](const py::object& self) {
             const auto& ws = self.cast<const Workspace&>();
             py::list out;
             for (size_t k = 0; k < ws.arrays().size(); ++k)
               out.append(py::make_tuple(ws.arrays()[k].name, workspace_array(self, ws, k, false)));
             return out;
           })
      .def_property_readonly("cell", [](const Workspace& ws) { return std::const_pointer_cast<Cell>(ws.cell()); })
      .def_property_readonly("checkpoint_every", &Workspace::every, "as given to forward (0: none)")
      .def_property_readonly("steps", &Workspace::steps, "the steps its per-step arrays hold: T, or a segment's")
      .def_property_readonly("nbytes", [](const Workspace& ws) {
        std::size_t n = 0;
        for (const auto& a : ws.arrays()) n += static_cast<std::size_t>(a.steps * ws.dims().B * a.width) * ws.value_bytes();
        return n;
      }, "bytes of its arrays")
      .def(py::pickle(&workspace_state, &workspace_from_state));

  py::class_<Kernels>(m, "Kernels", "One instruction-set level's kernels, from its module's `level` capsule.")
      .def(py::init(&kernels_of), py::arg("level"))
      .def("forward", &forward, py::arg("cell"), py::arg("x"), py::arg("states"), py::arg("w_ih"), py::arg("w_hh"),
           py::arg("b_ih"), py::arg("b_hh"), py::arg("lengths"), py::arg("reverse"), py::arg("training"),
           py::arg("mask") = py::none(), py::arg("recurrent_masks") = py::none(), py::arg("input_masks") = py::none(),
           py::arg("params") = py::list(), py::arg("checkpoint_every") = 0, py::arg("sequences") = true,
           py::arg("zoneout") = 0.0, py::arg("zoneout_seed") = 0,
           "Forward unroll -> (y or None, final states, Workspace or None). Arrays must be C-contiguous, of x's "
           "dtype; states: one (B, H) array or None for each of the cell's states; mask: (T, B) uint8 or None; "
           "recurrent_masks: (G, B, H), input_masks: (G, B, I), or None: gate block k's products read "
           "their input times mask k; params: one (width*H,) array for each of the cell's params; "
           "checkpoint_every: 0 keeps every step for BPTT, n > 0 a checkpoint every n steps (rounded up to "
           "whole units of steps, Workspace.steps), the rest recomputed; sequences: False returns no y; "
           "zoneout in [0, 1): of h, drawn from zoneout_seed when training, its expectation otherwise.")
      .def("backward", &backward, py::arg("cell"), py::arg("x"), py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"),
           py::arg("b_hh"), py::arg("lengths"), py::arg("reverse"), py::arg("workspace"), py::arg("dy"),
           py::arg("d_states"), py::arg("mask") = py::none(), py::arg("recurrent_masks") = py::none(),
           py::arg("input_masks") = py::none(), py::arg("params") = py::list(), py::arg("zoneout") = 0.0,
           py::arg("zoneout_seed") = 0,
           "BPTT -> (dx, initial state gradients, dw_ih, dw_hh, db_ih or None, db_hh or None, [d param, ...]). "
           "Overwrites the workspace's gates (and the products' own arrays). zoneout, zoneout_seed: the forward's.")
      .def("cell_kinds", [](const Kernels& k) { return k.level->cell_kinds(); })
      .def("activations", [](const Kernels& k) { return k.level->activations(); })
      .def("matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("transpose_a"), py::arg("transpose_b"),
           "op(a) @ op(b) for C-contiguous 2-D arrays of one dtype, on the kernels' threads.")
      .def("set_num_threads", &set_num_threads, py::arg("n"))
      .def("get_num_threads", [](const Kernels& k) { return k.level->get_num_threads(); })
      .def("build_info", &build_info)
      .def(
          "plan",
          [](const Kernels& k, const Cell& cell, int64_t T, int64_t B, int64_t H) {
            if (T < 0 || B < 0 || H < 0) throw py::value_error("T, B and H must be >= 0");
            const fastrnn::Plan p = k.level->plan(T, B, H, cell.layout().gates * H);
            return py::make_tuple(p.threads, p.by_units);
          },
          py::arg("cell"), py::arg("T"), py::arg("B"), py::arg("H"),
          "(threads, split by hidden units) of a call of T steps of B rows and H units, at the current "
          "thread count: how the kernels would share it out.");

  m.def("use", &use, py::arg("kernels"), "Makes these kernels' level the one that makes cells; once a process.");
  m.def("cpu_supports", &cpu_supports);
  m.def("cached_bytes", &fastrnn::cached_bytes);
  m.def("empty_cache", &fastrnn::empty_cache);
  m.def("set_cache_limit", &fastrnn::set_cache_limit, py::arg("nbytes"));
  m.def("cache_limit", &fastrnn::cache_limit);
}
