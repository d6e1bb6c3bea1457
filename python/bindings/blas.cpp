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
}

}  // namespace

void register_blas(py::module_& m) {
  m.def("_use_blas", &use_blas, py::arg("path"), py::arg("prefix"),
        "Installs the cblas_sgemm/cblas_dgemm of the shared library at path (symbols prefixed by prefix).");
}

}  // namespace tgpy
