// Embedding tapegrad in a C++ program, no Python anywhere: minimise the Rosenbrock function
// of two variables by gradient descent with backtracking, gradients from the tape.
#include <cmath>
#include <cstdio>

#include <tapegrad/tapegrad.hpp>

using tapegrad::Var;

template <class T>
T rosenbrock(const T& x, const T& y) {
  return pow(1.0 - x, 2.0) + 100.0 * pow(y - x * x, 2.0);
}

int main() {
  // The quick start of the README.
  {
    tapegrad::Var x = 3.0;
    auto y = x * x;
    auto g = tapegrad::grad(y, {x});
    std::printf("d(x*x)/dx at 3 = %g\n", g[0]);
    if (g[0] != 6.0) return 1;
  }

  tapegrad::Tape tape;  // a tape of our own, rewound every iteration
  tapegrad::ScopedTape scope(tape);
  double px = -1.2, py = 1.0;
  for (int it = 0; it < 20000; ++it) {
    tape.clear();
    Var x = px, y = py;
    Var f = rosenbrock(x, y);
    const auto g = tapegrad::grad(f, {x, y});
    double step = 1e-3;
    while (step > 1e-12 && rosenbrock(px - step * g[0], py - step * g[1]) > f.value() - 0.5 * step * (g[0] * g[0] + g[1] * g[1]))
      step *= 0.5;
    px -= step * g[0];
    py -= step * g[1];
  }
  std::printf("minimum found at (%.6f, %.6f), f = %.3e; tape: %zu records\n", px, py,
              rosenbrock(px, py), tape.stats().records);
  return (std::fabs(px - 1.0) < 1e-3 && std::fabs(py - 1.0) < 1e-3) ? 0 : 1;
}
