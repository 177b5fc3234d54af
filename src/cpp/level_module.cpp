// fastrnn._kernels_<level>: a module whose one attribute, `level`, is a capsule of this level's
// table (level.h) for the bindings (fastrnn._bindings.Kernels). Python's C API alone: the
// pybind11 glue is compiled once, in the bindings.
#include <Python.h>

namespace fastrnn {
struct Level;
}
extern "C" const fastrnn::Level* fastrnn_level();

#ifndef FASTRNN_MODULE
#define FASTRNN_MODULE _kernels_native
#endif
#define FASTRNN_STR2(x) #x
#define FASTRNN_STR(x) FASTRNN_STR2(x)
#define FASTRNN_CAT2(a, b) a##b
#define FASTRNN_CAT(a, b) FASTRNN_CAT2(a, b)

namespace {
PyModuleDef module_def = {PyModuleDef_HEAD_INIT, FASTRNN_STR(FASTRNN_MODULE),
                          "The fastrnn kernels of one instruction-set level, for fastrnn._bindings.", -1, nullptr,
                          nullptr, nullptr, nullptr, nullptr};
}

PyMODINIT_FUNC FASTRNN_CAT(PyInit_, FASTRNN_MODULE)(void) {
  PyObject* module = PyModule_Create(&module_def);
  if (!module) return nullptr;
  PyObject* level = PyCapsule_New(const_cast<fastrnn::Level*>(fastrnn_level()), "fastrnn.Level", nullptr);
  if (!level || PyModule_AddObject(module, "level", level) < 0) {
    Py_XDECREF(level);
    Py_DECREF(module);
    return nullptr;
  }
  return module;
}
