// Tapes on several threads at once, a leaf tensor shared by them, and the unlock hooks around
// long kernels. Run under ThreadSanitizer by scripts/test.sh (TAPEGRAD_SANITIZE_THREAD).
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <random>
#include <thread>
#include <vector>

#include "cases.hpp"
#include "tapegrad/tapegrad.hpp"

using namespace tapegrad;
using testing::random_tensor;

namespace {
constexpr int kThreads = 4;

// A scalar program on this thread's tape: its value and gradient.
std::pair<double, double> scalar_program(double x0) {
  Tape tape;
  ScopedTape scope(tape);
  const Var x = x0;
  Var y = x;
  for (int i = 0; i < 200; ++i) y = sin(y) * 0.5 + exp(x * 0.01) * y * 0.25;
  return {y.value(), grad(y, {x})[0]};
}

// f(k) on kThreads threads, started together (each waits until all are running).
template <class F>
void on_threads(F f) {
  std::atomic<int> ready{0};
  std::vector<std::thread> ts;
  for (int k = 0; k < kThreads; ++k)
    ts.emplace_back([&, k] {
      ++ready;
      while (ready.load() < kThreads) std::this_thread::yield();
      f(k);
    });
  for (std::thread& t : ts) t.join();
}
}  // namespace

TEST_CASE("threads: a tape per thread gives the serial results") {
  std::vector<std::pair<double, double>> serial, parallel(kThreads);
  for (int k = 0; k < kThreads; ++k) serial.push_back(scalar_program(0.1 * (k + 1)));
  on_threads([&](int k) { parallel[static_cast<std::size_t>(k)] = scalar_program(0.1 * (k + 1)); });
  for (int k = 0; k < kThreads; ++k) {
    CHECK(parallel[static_cast<std::size_t>(k)].first == serial[static_cast<std::size_t>(k)].first);
    CHECK(parallel[static_cast<std::size_t>(k)].second == serial[static_cast<std::size_t>(k)].second);
  }
}

TEST_CASE("threads: one leaf tensor shared by several threads' tapes accumulates every gradient") {
  std::mt19937 rng(7);
  Tensor W = random_tensor({24, 24}, rng, -0.3, 0.3);
  W.requires_grad_();
  std::vector<Tensor> X;
  for (int k = 0; k < kThreads; ++k) X.push_back(random_tensor({16, 24}, rng));
  const auto loss = [&](int k) { return sum(tanh(matmul(X[static_cast<std::size_t>(k)], W)) * 0.5); };
  // serial: the sum of the threads' gradients
  std::vector<double> want(24 * 24, 0.0);
  for (int k = 0; k < kThreads; ++k) {
    Tape tape;
    ScopedTape scope(tape);
    const Tensor g = grad({loss(k)}, {W})[0];
    const std::vector<double> v = g.to_vector();
    for (std::size_t i = 0; i < v.size(); ++i) want[i] += v[i];
  }
  constexpr int kReps = 20;
  W.zero_grad();
  on_threads([&](int k) {
    Tape tape;
    ScopedTape scope(tape);
    for (int rep = 0; rep < kReps; ++rep) {
      loss(k).backward();  // W recorded on this thread's tape (its record cache is locked), and
      tape.clear();        // every thread delivers into W.grad (locked)
    }
  });
  const std::vector<double> got = W.grad().to_vector();
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(kReps * want[i]).epsilon(1e-12));
}

TEST_CASE("threads: the transformations and grad mode are per thread") {
  std::vector<double> h(kThreads);
  on_threads([&](int k) {
    const auto f = [](const Tensor& x) { return sum(x * x * x); };
    const Tensor x = Tensor::full({2}, 1.0 + k);
    NoGrad ng;  // this thread only: the transformations enable what they need
    h[static_cast<std::size_t>(k)] = hessian(f)(x).to_vector()[0];
  });
  for (int k = 0; k < kThreads; ++k) CHECK(h[static_cast<std::size_t>(k)] == 6.0 * (1.0 + k));
  CHECK(grad_enabled());
}

namespace {
std::atomic<int> g_released{0}, g_acquired{0};
thread_local int tls_held = 1;  // as a host lock would be: held by the caller
void count_release() {
  ++g_released;
  --tls_held;
}
void count_acquire() {
  ++g_acquired;
  ++tls_held;
}
}  // namespace

TEST_CASE("threads: the unlock hooks run around long kernels only, balanced, on the calling thread") {
  set_unlock_hooks({count_release, count_acquire});
  std::mt19937 rng(3);
  const Tensor A = random_tensor({128, 128}, rng), small = random_tensor({8, 8}, rng);
  on_threads([&](int) {
    Tape tape;
    ScopedTape scope(tape);
    Tensor B = A * 1.0;
    B.requires_grad_();
    const Tensor l = sum(tanh(matmul(B, A)));  // a 128^3 product (unlocked), a 128^2 loop (not)
    l.backward();                              // and the product's vjp (unlocked)
    (void)matmul(small, small);                // 8^3: keeps the lock
    CHECK(tls_held == 1);
  });
  set_unlock_hooks({});
  CHECK(g_released.load() == g_acquired.load());
  CHECK(g_released.load() >= kThreads * 2);
  const int before = g_released.load();
  (void)matmul(A, A);  // no hooks installed: nothing called
  CHECK(g_released.load() == before);
}
