// The matrix products behind matmul: a CBLAS found at build time, one installed at run time
// with set_gemm (the Python module installs OpenBLAS's), or a portable kernel.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>
#if defined(__linux__)
#include <dirent.h>
#include <sched.h>

#include <cstring>
#endif

#include "tensor/internal.hpp"

#if defined(TAPEGRAD_HAVE_CBLAS)
#include <cblas.h>
#endif

namespace tapegrad {
namespace {

// The portable kernel: C = alpha op(A) op(B) + beta C, row-major. The i-p-j loop order keeps
// the innermost loop contiguous in B and C, so the compiler vectorises it; transposed
// operands are copied first so that it always is.
template <class T>
void builtin_gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
                  std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  std::vector<T> at, bt;
  if (ta) {  // a is k x m: make it m x k
    at.resize(static_cast<std::size_t>(m * k));
    for (std::int64_t p = 0; p < k; ++p)
      for (std::int64_t i = 0; i < m; ++i) at[static_cast<std::size_t>(i * k + p)] = a[p * lda + i];
    a = at.data();
    lda = k;
  }
  if (tb) {  // b is n x k: make it k x n
    bt.resize(static_cast<std::size_t>(k * n));
    for (std::int64_t j = 0; j < n; ++j)
      for (std::int64_t p = 0; p < k; ++p) bt[static_cast<std::size_t>(p * n + j)] = b[j * ldb + p];
    b = bt.data();
    ldb = n;
  }
  for (std::int64_t i = 0; i < m; ++i) {
    T* __restrict ci = c + i * ldc;
    if (beta == T(0)) std::fill(ci, ci + n, T(0));
    else if (beta != T(1)) for (std::int64_t j = 0; j < n; ++j) ci[j] *= beta;
    for (std::int64_t p = 0; p < k; ++p) {
      const T s = alpha * a[i * lda + p];
      const T* __restrict bp = b + p * ldb;
      for (std::int64_t j = 0; j < n; ++j) ci[j] += s * bp[j];
    }
  }
}

#if defined(TAPEGRAD_HAVE_CBLAS)
void cblas_s(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
             std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb),
              beta, c, static_cast<int>(ldc));
}
void cblas_d(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const double* a,
             std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c, std::int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb),
              beta, c, static_cast<int>(ldc));
}
std::atomic<SgemmFn> g_sgemm{&cblas_s};
std::atomic<DgemmFn> g_dgemm{&cblas_d};
std::atomic<const char*> g_name{"cblas"};
#else
std::atomic<SgemmFn> g_sgemm{&builtin_gemm<float>};
std::atomic<DgemmFn> g_dgemm{&builtin_gemm<double>};
std::atomic<const char*> g_name{"builtin"};
#endif

}  // namespace

void set_gemm_threads(GemmThreadsFn fn, int current) noexcept;

void set_gemm(SgemmFn sgemm, DgemmFn dgemm) noexcept {
  set_gemm_threads(nullptr, 0);  // (the new gemm's threads are its own until it says how to set them)
  g_sgemm.store(sgemm ? sgemm : &builtin_gemm<float>);
  g_dgemm.store(dgemm ? dgemm : &builtin_gemm<double>);
  if (!sgemm || !dgemm) g_name.store("builtin");
}
const char* gemm_backend() noexcept { return g_name.load(); }
void set_gemm_backend_name(const char* name) noexcept { g_name.store(name); }

namespace detail {
int cores() noexcept {
  static const int n = [] {
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }();
  return n;
}

namespace {
std::atomic<int> g_blas_threads{0};   // what the BLAS was last told (0: unknown)
std::atomic<std::int64_t> g_sampled_at{-1000000000};  // steady_clock, in microseconds
std::atomic<int> g_elsewhere{0};
}  // namespace

#if defined(__linux__)
namespace {
// This process's threads in state R (running or runnable): the caller, and the BLAS's workers
// while they spin after a product (OpenBLAS's do for a while), from /proc/self/task/*/stat.
int runnable_here() noexcept {
  int n = 0;
  DIR* d = opendir("/proc/self/task");
  if (!d) return 1;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char path[320], buf[512];
    std::snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
    std::FILE* f = std::fopen(path, "r");
    if (!f) continue;
    const std::size_t len = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[len] = 0;
    const char* close = std::strrchr(buf, ')');  // (the name in parentheses may hold anything)
    if (close && close[1] == ' ' && close[2] == 'R') ++n;
  }
  closedir(d);
  return std::max(n, 1);
}
}  // namespace
#endif

int runnable_elsewhere() noexcept {
#if defined(__linux__)
  // /proc/loadavg's fourth field counts the threads runnable now, system-wide; less the
  // caller and the BLAS's workers that may still spin after the last product, what remains
  // holds cores elsewhere. Read at most every 10 ms (some
  // microseconds each time; products above the threshold take a tenth of a millisecond or more).
  const std::int64_t now = std::chrono::duration_cast<std::chrono::microseconds>(
                               std::chrono::steady_clock::now().time_since_epoch()).count();
  if (now - g_sampled_at.load(std::memory_order_relaxed) < 10000) return g_elsewhere.load(std::memory_order_relaxed);
  g_sampled_at.store(now, std::memory_order_relaxed);
  int elsewhere = 0;
  if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
    double l1, l5, l15;
    int running = 0, total = 0;
    if (std::fscanf(f, "%lf %lf %lf %d/%d", &l1, &l5, &l15, &running, &total) == 5) {
      // The caller, and as many more of this process's runnable threads as the BLAS has
      // workers (they may be spinning); the others (another library's thread pool, other
      // Python threads) hold cores as another process's do.
      const int spinners = std::min(runnable_here() - 1, std::max(0, get_num_threads() - 1));
      elsewhere = std::max(0, running - 1 - spinners);
    }
    std::fclose(f);
  }
  g_elsewhere.store(elsewhere, std::memory_order_relaxed);
  return elsewhere;
#else
  return 0;
#endif
}
}  // namespace detail

namespace {
std::atomic<int> g_max_threads{0};    // set_num_threads (0: the BLAS's own count)
std::atomic<bool> g_explicit{false};  // set_num_threads was called: exactly that many
std::atomic<GemmThreadsFn> g_threads_fn{nullptr};
using detail::g_blas_threads;

// The BLAS's thread count for a product of this size, set only when it changes.
void use_threads(std::int64_t m, std::int64_t n, std::int64_t k) noexcept {
  const GemmThreadsFn fn = g_threads_fn.load(std::memory_order_relaxed);
  if (!fn) return;
  const int want = gemm_threads(m, n, k);
  if (g_blas_threads.exchange(want, std::memory_order_relaxed) != want) fn(want);
}
}  // namespace

void set_num_threads(int n) {
  if (n < 1) throw Error("tapegrad: set_num_threads(" + std::to_string(n) + "): the number of threads must be positive");
  g_max_threads.store(n);
  g_explicit.store(true);
}
int get_num_threads() noexcept {
  const int n = g_max_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : 1;
}
int gemm_threads(std::int64_t m, std::int64_t n, std::int64_t k) noexcept {
  // (in double: m n k may not fit 64 bits)
  const double flops = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  if (flops < static_cast<double>(kParallelFlops)) return 1;
  const int most = get_num_threads();
  if (most == 1 || g_explicit.load(std::memory_order_relaxed)) return most;
  // Above the threshold, and unless set_num_threads fixed the count: the threads the cores
  // other processes leave free (as MKL's dynamic mode, its default).
  const int free_cores = detail::cores() - detail::runnable_elsewhere();
  return std::max(1, std::min(most, free_cores));
}
void set_gemm_threads(GemmThreadsFn fn, int current) noexcept {
  if (current > 0 && g_max_threads.load() == 0) g_max_threads.store(current);
  g_blas_threads.store(current > 0 ? current : 0);
  g_threads_fn.store(fn);
}

namespace detail {
// BLAS takes 32-bit sizes: larger products go to the portable kernel.
constexpr std::int64_t kIntMax = 0x7fffffff;
void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
                 std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  Unlocked unlocked(m * n * std::max<std::int64_t>(k, 1));
  if (std::max({m, n, k, lda, ldb, ldc}) > kIntMax) return builtin_gemm<float>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  use_threads(m, n, k);
  g_sgemm.load()(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const double* a,
                  std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c, std::int64_t ldc) {
  Unlocked unlocked(m * n * std::max<std::int64_t>(k, 1));
  if (std::max({m, n, k, lda, ldb, ldc}) > kIntMax) return builtin_gemm<double>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  use_threads(m, n, k);
  g_dgemm.load()(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

namespace {
// rows x cols of a 16-bit matrix with leading dimension ld, as a contiguous float matrix.
template <class H>
std::vector<float> widened(const H* p, std::int64_t rows, std::int64_t cols, std::int64_t ld) {
  std::vector<float> r(static_cast<std::size_t>(rows * cols));
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j) r[static_cast<std::size_t>(i * cols + j)] = static_cast<float>(p[i * ld + j]);
  return r;
}

template <class H>
void half_gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, H alpha, const H* a, std::int64_t lda,
               const H* b, std::int64_t ldb, H beta, H* c, std::int64_t ldc) {
  const std::vector<float> fa = widened(a, ta ? k : m, ta ? m : k, lda);
  const std::vector<float> fb = widened(b, tb ? n : k, tb ? k : n, ldb);
  const float fbeta = static_cast<float>(beta);
  std::vector<float> fc = fbeta == 0.0f ? std::vector<float>(static_cast<std::size_t>(m * n)) : widened(c, m, n, ldc);
  gemm(ta, tb, m, n, k, static_cast<float>(alpha), fa.data(), ta ? m : k, fb.data(), tb ? k : n, fbeta, fc.data(), n);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) c[i * ldc + j] = H(fc[static_cast<std::size_t>(i * n + j)]);
}
}  // namespace

void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float16 alpha, const float16* a,
          std::int64_t lda, const float16* b, std::int64_t ldb, float16 beta, float16* c, std::int64_t ldc) {
  half_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, bfloat16 alpha, const bfloat16* a,
          std::int64_t lda, const bfloat16* b, std::int64_t ldb, bfloat16 beta, bfloat16* c, std::int64_t ldc) {
  half_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
}  // namespace detail

}  // namespace tapegrad
