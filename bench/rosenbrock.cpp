// Bench (c): the gradient of the Rosenbrock function of n variables written as a scalar loop,
// recorded and swept from fresh inputs each time. Prints ns per recorded operation,
// gradient time / plain double evaluation time, and tape bytes per operation.
//
//   build/cpp/bench/bench_rosenbrock [n] [repeats]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "tapegrad/tapegrad.hpp"

using tapegrad::Tape;
using tapegrad::Var;

template <class T>
T rosenbrock(const std::vector<T>& x) {
  T f{};
  for (std::size_t i = 0; i + 1 < x.size(); ++i) {
    T a = x[i + 1] - x[i] * x[i];
    T b = 1.0 - x[i];
    f += 100.0 * a * a + b * b;
  }
  return f;
}

template <class F>
double best_seconds(int repeats, F&& f) {
  double best = 1e300;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
  }
  return best;
}

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1000000;
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 20;
  std::vector<double> x0(n);
  for (std::size_t i = 0; i < n; ++i) x0[i] = 0.5 + 0.3 * std::sin(double(i));

  volatile double sink = 0;
  const double t_plain = best_seconds(repeats, [&] { sink = sink + rosenbrock(x0); });

  Tape tape;
  tapegrad::ScopedTape scope(tape);
  std::vector<Var> x(n);
  std::vector<double> g(n);
  const double t_grad = best_seconds(repeats, [&] {
    tape.clear();
    for (std::size_t i = 0; i < n; ++i) x[i] = x0[i];  // fresh inputs: new leaves
    Var f = rosenbrock(x);
    tape.reverse(f.index());
    for (std::size_t i = 0; i < n; ++i) g[i] = tape.adjoint(x[i].index());
    sink = sink + f.value();
  });
  const auto s = tape.stats();

  // check one component against the closed form
  const std::size_t k = n / 2;
  const double want = -400.0 * x0[k] * (x0[k + 1] - x0[k] * x0[k]) - 2.0 * (1.0 - x0[k]) +
                      200.0 * (x0[k] - x0[k - 1] * x0[k - 1]);
  if (std::abs(g[k] - want) > 1e-9 * std::abs(want)) {
    std::printf("WRONG gradient: %.17g vs %.17g\n", g[k], want);
    return 1;
  }
  const double ops = double(s.records - n);  // operations, leaves not counted
  std::printf("rosenbrock n=%zu: %zu records (%zu leaves), %zu constants\n", n, s.records, n, s.constants);
  std::printf("  plain double evaluation    %8.3f ms\n", t_plain * 1e3);
  std::printf("  record + reverse sweep     %8.3f ms   (%.1fx plain)\n", t_grad * 1e3, t_grad / t_plain);
  std::printf("  per recorded operation     %8.3f ns\n", t_grad / ops * 1e9);
  const std::size_t rec_bytes = sizeof(tapegrad::Record) + sizeof(double);
  std::printf("  tape bytes, (var, var) op  %8zu    (%zu record + %zu value)\n", rec_bytes,
              sizeof(tapegrad::Record), sizeof(double));
  std::printf("  tape bytes, op with const  %8zu    (+ %zu in the constant pool)\n", rec_bytes + sizeof(double),
              sizeof(double));
  std::printf("  tape bytes per op, here    %8.2f\n", double(s.bytes_in_use - rec_bytes * n) / ops);
  std::printf("  adjoint bytes per record   %8zu    (the sweep's workspace, reported apart)\n", sizeof(double));
  return 0;
}
