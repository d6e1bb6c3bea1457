// Matrix products on OpenBLAS, loaded at run time: tapegrad._core._use_blas(path, prefix) installs
// a library's cblas_sgemm/cblas_dgemm as the core's gemm (tapegrad::set_gemm).
#include <pybind11/pybind11.h>

#include <dlfcn.h>

#include <string>

#include "core.hpp"

namespace py = pybind11;

namespace tgpy {
namespace {

// --- OpenBLAS, loaded at run time --------------------------------------------------------------
// The Python package depends on the scipy-openblas32 wheel and hands its library's path to
// use_blas(); the C++ core has no link-time dependency on it. CBLAS enums: row-major 101,
// no-transpose 111, transpose 112. scipy-openblas32 has 32-bit ints (and a scipy_ prefix).
using CblasSgemm = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
using CblasDgemm = void (*)(int, int, int, int, int, int, double, const double*, int, const double*, int, double,
                            double*, int);
CblasSgemm g_cblas_sgemm = nullptr;
CblasDgemm g_cblas_dgemm = nullptr;
using SetThreads = void (*)(int);
using GetThreads = int (*)();
SetThreads g_set_threads = nullptr;
void blas_threads(int n) { g_set_threads(n); }

void blas_sgemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
                std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  g_cblas_sgemm(101, ta ? 112 : 111, tb ? 112 : 111, int(m), int(n), int(k), alpha, a, int(lda), b, int(ldb), beta, c,
                int(ldc));
}
void blas_dgemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const double* a,
                std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c, std::int64_t ldc) {
  g_cblas_dgemm(101, ta ? 112 : 111, tb ? 112 : 111, int(m), int(n), int(k), alpha, a, int(lda), b, int(ldb), beta, c,
                int(ldc));
}

void use_blas(const std::string& path, const std::string& prefix) {
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) throw tapegrad::Error(std::string("tapegrad: cannot load the BLAS library: ") + dlerror());
  auto s = reinterpret_cast<CblasSgemm>(dlsym(h, (prefix + "cblas_sgemm").c_str()));
  auto d = reinterpret_cast<CblasDgemm>(dlsym(h, (prefix + "cblas_dgemm").c_str()));
  if (!s || !d) throw tapegrad::Error("tapegrad: " + path + " has no " + prefix + "cblas_sgemm/" + prefix + "cblas_dgemm");
  g_cblas_sgemm = s;
  g_cblas_dgemm = d;
  tapegrad::set_gemm(&blas_sgemm, &blas_dgemm);
  tapegrad::set_gemm_backend_name("openblas");
  // OpenBLAS's thread count, set per product from its size (tapegrad::gemm_threads)
  auto set_threads = reinterpret_cast<SetThreads>(dlsym(h, (prefix + "openblas_set_num_threads").c_str()));
  auto get_threads = reinterpret_cast<GetThreads>(dlsym(h, (prefix + "openblas_get_num_threads").c_str()));
  if (set_threads && get_threads) {
    g_set_threads = set_threads;
    tapegrad::set_gemm_threads(&blas_threads, get_threads());
  }
}

}  // namespace

void register_blas(py::module_& m) {
  m.def("_use_blas", &use_blas, py::arg("path"), py::arg("prefix"),
        "Installs the cblas_sgemm/cblas_dgemm of the shared library at path (symbols prefixed by prefix).");
  m.def(
      "set_num_threads",
      [](py::handle n) {
        if (PyBool_Check(n.ptr()) || !PyIndex_Check(n.ptr()))
          throw py::type_error(std::string("tapegrad.set_num_threads: the number of threads must be an int, not ") +
                               Py_TYPE(n.ptr())->tp_name);
        PyObject* i = PyNumber_Index(n.ptr());
        if (!i) throw py::error_already_set();
        int overflow = 0;
        const long long v = PyLong_AsLongLongAndOverflow(i, &overflow);
        Py_DECREF(i);
        if (overflow || v < 1 || v > 1 << 16)
          throw py::value_error("tapegrad.set_num_threads(" + std::string(py::str(n)) +
                                "): the number of threads must be between 1 and 65536");
        tapegrad::set_num_threads(static_cast<int>(v));
      },
      py::arg("n"),
      "The threads a matrix product uses from now on, as torch.set_num_threads: exactly n, so that results "
      "repeat bit for bit (until it is called, a product uses no more threads than the cores other processes "
      "leave free). A product of fewer than 2^20 multiply-adds runs on one thread whatever this says.");
  m.def(
      "_blas_thread_control",
      [](bool on, int threads) {
        if (!g_set_threads) return false;
        if (on) {
          tapegrad::set_gemm_threads(&blas_threads, threads);
        } else {
          tapegrad::set_gemm_threads(nullptr, 0);
          g_set_threads(threads);
        }
        return true;
      },
      py::arg("on"), py::arg("threads"),
      "For bench/bench_load.py's 'before': off, OpenBLAS runs every product on `threads` threads, as before "
      "tapegrad chose a count per product; on, tapegrad chooses again (OpenBLAS told `threads` now).");
  m.def("get_num_threads", &tapegrad::get_num_threads,
        "The threads a large matrix product uses: set_num_threads' n, or OpenBLAS's own count (the most it uses "
        "until set_num_threads is called).");
}

}  // namespace tgpy
