// The 16-bit storage dtypes (float16, bfloat16): conversions bit-exact against a brute-force
// nearest-value search, kernels that compute in float32 and store 16 bits, matrix products
// and sums that accumulate in float32, and autocast.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "tapegrad/tapegrad.hpp"

using namespace tapegrad;

namespace {

// Every finite non-negative value of a 16-bit format (by bits), sorted by value: the
// brute-force rounding reference.
struct Table16 {
  std::vector<std::pair<double, std::uint16_t>> finite;
  double overflow = 0;  // half-way past the largest finite value: infinity from there on
  std::uint16_t inf = 0;
  // The nearest value of x by the IEEE rule: nearest, ties to the even mantissa, overflow
  // past the midpoint of the largest finite value and the next power of two to inf.
  std::uint16_t nearest(double x) const {
    const std::uint16_t sign = std::signbit(x) ? 0x8000u : 0u;
    const double a = std::fabs(x);
    if (a >= overflow) return static_cast<std::uint16_t>(sign | inf);
    auto it = std::lower_bound(finite.begin(), finite.end(), std::make_pair(a, std::uint16_t(0)));
    if (it == finite.end()) return static_cast<std::uint16_t>(sign | finite.back().second);  // (max, overflow)
    const auto hi = *it;
    const auto lo = *(it - (it == finite.begin() ? 0 : 1));
    std::uint16_t r;
    if (hi.first == a) r = hi.second;
    else if (a - lo.first < hi.first - a) r = lo.second;
    else if (a - lo.first > hi.first - a) r = hi.second;
    else r = (lo.second & 1u) ? hi.second : lo.second;
    return static_cast<std::uint16_t>(r | sign);
  }
};

// Both formats: the patterns below infinity's are the finite non-negative values, in order.
template <class H>
Table16 make_table(std::uint16_t inf) {
  Table16 t;
  t.inf = inf;
  for (std::uint32_t b = 0; b < inf; ++b)
    t.finite.emplace_back(static_cast<double>(H::from_bits(static_cast<std::uint16_t>(b))), static_cast<std::uint16_t>(b));
  const double top = t.finite.back().first, below = t.finite[t.finite.size() - 2].first;
  t.overflow = top + (top - below) / 2;
  return t;
}

const Table16& half_table() {
  static const Table16 t = make_table<float16>(0x7c00u);
  return t;
}

double value_of_bf16_bits(std::uint16_t b) { return static_cast<double>(bfloat16::from_bits(b)); }

// The nearest bfloat16 of a float x (ties to even) by comparing the two neighbours.
std::uint16_t bf16_nearest(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  const auto lo = static_cast<std::uint16_t>(u >> 16);
  const auto hi = static_cast<std::uint16_t>(lo + 1);
  const double a = std::fabs(static_cast<double>(x)), dl = std::fabs(std::fabs(value_of_bf16_bits(lo)) - a);
  const double dh = std::fabs(std::fabs(value_of_bf16_bits(hi)) - a);
  if ((hi & 0x7f80u) == 0x7f80u && (lo & 0x7f80u) != 0x7f80u) {  // hi is inf: past the midpoint?
    const double mid = std::fabs(value_of_bf16_bits(lo)) + std::ldexp(1.0, 127 - 8);
    return a >= mid ? hi : lo;
  }
  if (dl < dh) return lo;
  if (dh < dl) return hi;
  return (lo & 1u) ? hi : lo;
}

std::vector<double> values(const Tensor& t) { return t.to_vector(); }

}  // namespace

TEST_CASE("float16: every value converts to float and back to its own bits") {
  for (std::uint32_t b = 0; b < 0x10000u; ++b) {
    const auto h = static_cast<std::uint16_t>(b);
    const float f = float16::from_bits(h);
    if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu)) {
      CHECK(std::isnan(f));
      CHECK((float16(f).bits & 0x7e00u) == 0x7e00u);  // a quiet NaN
      continue;
    }
    REQUIRE(float16(f).bits == h);
  }
  CHECK(static_cast<float>(float16::from_bits(0x3c00u)) == 1.0f);
  CHECK(static_cast<float>(float16::from_bits(0x7bffu)) == 65504.0f);
  CHECK(static_cast<float>(float16::from_bits(0x0001u)) == std::ldexp(1.0f, -24));
}

TEST_CASE("float16: floats and doubles round to the nearest value, ties to even") {
  const Table16& t = half_table();
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> exponent(-27.0, 17.0), unit(-1.0, 1.0);
  for (int i = 0; i < 200000; ++i) {
    const double d = unit(rng) * std::exp2(exponent(rng));
    const float f = static_cast<float>(d);
    REQUIRE(float16(f).bits == t.nearest(static_cast<double>(f)));
    REQUIRE(float16(d).bits == t.nearest(d));  // rounded once, not through float
  }
  // exact midpoints: ties go to the even neighbour
  for (std::size_t k = 0; k + 1 < t.finite.size(); k += 97) {
    const double mid = 0.5 * (t.finite[k].first + t.finite[k + 1].first);
    REQUIRE(float16(mid).bits == t.nearest(mid));
  }
  // a double just above a midpoint that rounds to the midpoint as a float: once, it rounds up
  const double m = 1.0 + std::ldexp(1.0, -11), above = m + std::ldexp(1.0, -40);
  CHECK(float16(above).bits == 0x3c01u);
  CHECK(float16(static_cast<float>(above)).bits == 0x3c00u);
  CHECK(float16(65519.0).bits == 0x7bffu);
  CHECK(float16(65520.0).bits == 0x7c00u);
  CHECK(float16(1e300).bits == 0x7c00u);
  CHECK(float16(-1e300).bits == 0xfc00u);
  CHECK(float16(std::numeric_limits<double>::infinity()).bits == 0x7c00u);
  CHECK(float16(-0.0).bits == 0x8000u);
}

TEST_CASE("bfloat16: floats round to the nearest value, ties to even, NaN stays NaN") {
  std::mt19937 rng(11);
  std::uniform_int_distribution<std::uint32_t> bits;
  for (int i = 0; i < 400000; ++i) {
    std::uint32_t u = bits(rng);
    float f;
    std::memcpy(&f, &u, 4);
    if (std::isnan(f)) {
      CHECK(std::isnan(static_cast<float>(bfloat16(f))));
      continue;
    }
    REQUIRE(bfloat16(f).bits == bf16_nearest(f));
  }
  CHECK(bfloat16(1.0f).bits == 0x3f80u);
  CHECK(bfloat16(1.0f + std::ldexp(1.0f, -8)).bits == 0x3f80u);  // a tie: to even
  CHECK(bfloat16(1.0f + 3 * std::ldexp(1.0f, -8)).bits == 0x3f82u);  // a tie: to even (up)
  CHECK(std::isinf(static_cast<float>(bfloat16(std::numeric_limits<float>::max()))));
}

TEST_CASE("bfloat16: doubles round once to the nearest value, ties to even (not through float)") {
  static const Table16 table = make_table<bfloat16>(0x7f80u);
  const double overflow = table.overflow;
  CHECK(overflow == std::ldexp(2.0 - std::ldexp(1.0, -8), 127));
  const auto& finite = table.finite;
  auto nearest = [&](double x) { return table.nearest(x); };
  std::mt19937_64 rng(13);
  std::uniform_real_distribution<double> exponent(-136.0, 129.0), unit(-1.0, 1.0);
  for (int i = 0; i < 200000; ++i) {
    const double d = unit(rng) * std::exp2(exponent(rng));
    REQUIRE(bfloat16(d).bits == nearest(d));
  }
  // every tie, and the doubles just beside it (which float rounds onto the tie)
  for (std::size_t k = 0; k + 1 < finite.size(); ++k) {
    const double mid = 0.5 * (finite[k].first + finite[k + 1].first);
    for (double d : {mid, std::nextafter(mid, 0.0), std::nextafter(mid, 1e300), -mid}) REQUIRE(bfloat16(d).bits == nearest(d));
  }
  for (double d : {overflow, std::nextafter(overflow, 0.0), std::nextafter(overflow, 1e300), 1e300, -1e300})
    REQUIRE(bfloat16(d).bits == nearest(d));
  CHECK(bfloat16(1.0039062500000002).bits == 0x3f81u);  // through float it is a tie, and goes to 1
  CHECK(bfloat16(static_cast<float>(1.0039062500000002)).bits == 0x3f80u);
  CHECK(bfloat16(3.3961775292304437e38).bits == 0x7f7fu);  // below the overflow threshold: finite
  CHECK(bfloat16(std::ldexp(1.0, -134) * (1 + std::ldexp(1.0, -40))).bits == 0x0001u);  // above half the least
  CHECK(bfloat16(std::ldexp(1.0, -134)).bits == 0x0000u);  // a tie: to even (zero)
  CHECK(std::isnan(static_cast<float>(bfloat16(std::numeric_limits<double>::quiet_NaN()))));
}

TEST_CASE("16-bit tensors: kernels compute in float32 and store 16 bits") {
  for (DType dt : {DType::Float16, DType::BFloat16}) {
    CAPTURE(dtype_name(dt));
    const Tensor x32 = Tensor::from_values({-2.0, -0.5, 0.0, 0.25, 1.0, 3.0}, {2, 3}, DType::Float32);
    const Tensor x = astype(x32, dt);
    REQUIRE(x.dtype() == dt);
    CHECK(dtype_size(dt) == 2);
    const Tensor y = tanh(x) * x + exp(x);
    REQUIRE(y.dtype() == dt);
    // the reference: float32 arithmetic on the same 16-bit inputs, each op rounded to 16 bits
    const std::vector<double> xs = values(x);
    const std::vector<double> ys = values(y);
    for (std::size_t i = 0; i < xs.size(); ++i) {
      const float xf = static_cast<float>(xs[i]);
      auto round16 = [dt](double v) {
        return dt == DType::Float16 ? static_cast<double>(static_cast<float>(float16(v)))
                                    : static_cast<double>(static_cast<float>(bfloat16(static_cast<float>(v))));
      };
      const double t = round16(std::tanh(static_cast<double>(xf)));
      const double p = round16(static_cast<float>(t) * xf);
      const double e = round16(std::exp(static_cast<double>(xf)));
      CHECK(ys[i] == round16(static_cast<float>(p) + static_cast<float>(e)));
    }
    // promotion: with float32 gives float32; with float64 float64; the two 16-bit ones float32
    CHECK((x + x32).dtype() == DType::Float32);
    CHECK((x + astype(x32, DType::Float64)).dtype() == DType::Float64);
    CHECK(promote(DType::Float16, DType::BFloat16) == DType::Float32);
    CHECK(promote(DType::Int64, dt) == DType::Float64);
    CHECK(promote(DType::Bool, dt) == dt);
    CHECK((x * 2.0).dtype() == dt);  // a number is weak
  }
}

TEST_CASE("16-bit tensors: sums and matrix products accumulate in float32") {
  for (DType dt : {DType::Float16, DType::BFloat16}) {
    CAPTURE(dtype_name(dt));
    // 4096 ones: a 16-bit accumulator stops at 2048 (float16) or 256 (bfloat16)
    const Tensor ones = Tensor::ones({4096}, dt);
    CHECK(sum(ones).item() == 4096.0);
    const Tensor a = Tensor::ones({2, 4096}, dt), b = Tensor::ones({4096, 3}, dt);
    const Tensor c = matmul(a, b);
    REQUIRE(c.dtype() == dt);
    for (double v : values(c)) CHECK(v == 4096.0);
    // and the gradients of a product, through the same kernels
    Tensor w = Tensor::ones({4096, 3}, dt).requires_grad_();
    const Tensor loss = sum(matmul(a, w));
    loss.backward();
    REQUIRE(w.grad().dtype() == dt);
    for (double v : values(w.grad())) CHECK(v == 2.0);
  }
}

TEST_CASE("16-bit tensors: gradients against float64 on the same values") {
  for (DType dt : {DType::Float16, DType::BFloat16}) {
    CAPTURE(dtype_name(dt));
    const std::vector<double> v = {0.5, -1.25, 2.0, 0.75, -0.375, 1.5};
    Tensor x = astype(Tensor::from_values(v, {2, 3}), dt).requires_grad_();
    Tensor x64 = astype(x.detach(), DType::Float64).requires_grad_();
    auto f = [](const Tensor& t) { return sum(softmax(t * t, 1) * sigmoid(t)); };
    f(x).backward();
    f(x64).backward();
    REQUIRE(x.grad().dtype() == dt);
    const double tol = dt == DType::Float16 ? 4e-3 : 3e-2;  // 16-bit storage of each op's result
    const std::vector<double> g = values(x.grad()), g64 = values(x64.grad());
    for (std::size_t i = 0; i < g.size(); ++i) CHECK(std::fabs(g[i] - g64[i]) <= tol * (1 + std::fabs(g64[i])));
  }
}

TEST_CASE("autocast: linear and matmul run in 16 bits, sums in float32, gradients in each input's dtype") {
  const Tensor x = Tensor::from_values({0.5, -1.0, 2.0, 0.25, 1.5, -0.75}, {2, 3}, DType::Float32);
  Tensor w = Tensor::from_values({0.1, 0.2, -0.3, 0.4, -0.5, 0.6}, {2, 3}, DType::Float32).requires_grad_();
  Tensor b = Tensor::from_values({0.01, -0.02}, {2}, DType::Float32).requires_grad_();
  Tensor y, loss;
  {
    AutocastGuard on(DType::BFloat16);
    CHECK(autocast_state().enabled);
    y = linear(x, w, b);
    CHECK(y.dtype() == DType::BFloat16);
    CHECK(matmul(x, transpose(w)).dtype() == DType::BFloat16);
    CHECK(relu(y).dtype() == DType::BFloat16);
    loss = sum(relu(y));
    CHECK(loss.dtype() == DType::Float32);
    CHECK(softmax(y, 1).dtype() == DType::Float32);
    // float64 too (tapegrad's default dtype; PyTorch's autocast leaves it alone)
    CHECK(matmul(astype(x, DType::Float64), astype(transpose(w.detach()), DType::Float64)).dtype() == DType::BFloat16);
    {
      AutocastGuard off(DType::BFloat16, false);
      CHECK(matmul(x, transpose(w)).dtype() == DType::Float32);
    }
    CHECK(autocast_state().enabled);
    loss.backward();  // inside the region: the sweep runs with autocast off
  }
  CHECK_FALSE(autocast_state().enabled);
  REQUIRE(w.grad().dtype() == DType::Float32);
  REQUIRE(b.grad().dtype() == DType::Float32);
  // the reference: the same computation on bfloat16 copies, by hand
  const Tensor xb = astype(x, DType::BFloat16), wb = astype(w.detach(), DType::BFloat16);
  const std::vector<double> yv = values(astype(linear(xb, wb, astype(b.detach(), DType::BFloat16)), DType::Float64));
  const std::vector<double> xv = values(xb), gw = values(w.grad()), gb = values(b.grad());
  for (int o = 0; o < 2; ++o) {
    double gbo = 0;
    for (int i = 0; i < 2; ++i) gbo += yv[static_cast<std::size_t>(i * 2 + o)] > 0 ? 1.0 : 0.0;
    CHECK(gb[static_cast<std::size_t>(o)] == gbo);
    for (int k = 0; k < 3; ++k) {
      double g = 0;
      for (int i = 0; i < 2; ++i)
        if (yv[static_cast<std::size_t>(i * 2 + o)] > 0) g += xv[static_cast<std::size_t>(i * 3 + k)];
      CHECK(gw[static_cast<std::size_t>(o * 3 + k)] == doctest::Approx(g).epsilon(1e-6));
    }
  }
  CHECK_THROWS_AS(set_autocast(true, DType::Float32), ValueError);
}
