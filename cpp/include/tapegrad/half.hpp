// The 16-bit floating types of tensor storage: IEEE binary16 (float16) and bfloat16.
//
// Each is 16 bits of storage that reads as a float and is written from any number, rounded
// to nearest even: arithmetic on them is float arithmetic (a + b converts both to float), so
// kernels written for float and double run on them unchanged, computing in float32 and
// storing 16 bits. Conversions are bit-exact with NumPy's float16 and with ml_dtypes' and
// PyTorch's bfloat16 (a double goes to bfloat16 through float, as theirs do; to float16
// directly, as NumPy's does).
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace tapegrad {

namespace detail {
inline float float_of_bits(std::uint32_t u) noexcept {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline std::uint32_t bits_of_float(float f) noexcept {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

/// binary16 bits -> float (exact).
inline float half_to_float(std::uint16_t h) noexcept {
  constexpr std::uint32_t shifted_exp = 0x7c00u << 13;
  std::uint32_t o = static_cast<std::uint32_t>(h & 0x7fffu) << 13;  // exponent and mantissa
  const std::uint32_t exp = shifted_exp & o;
  o += (127u - 15u) << 23;  // rebias the exponent
  if (exp == shifted_exp) {
    o += (128u - 16u) << 23;  // inf and NaN keep an all-ones exponent
  } else if (exp == 0) {  // zero and subnormals: renormalise through a float subtraction
    o += 1u << 23;
    o = bits_of_float(float_of_bits(o) - float_of_bits(113u << 23));
  }
  return float_of_bits(o | (static_cast<std::uint32_t>(h & 0x8000u) << 16));
}

/// float -> binary16 bits, rounded to nearest even (NaN stays a quiet NaN with its sign).
inline std::uint16_t float_to_half(float x) noexcept {
  std::uint32_t f = bits_of_float(x);
  const std::uint32_t sign = f & 0x80000000u;
  f ^= sign;
  std::uint32_t o;
  if (f >= ((127u + 16u) << 23)) {  // 2^16 and above (or inf, NaN): inf or NaN
    o = f > (255u << 23) ? 0x7e00u : 0x7c00u;
  } else if (f < (113u << 23)) {  // a subnormal half or zero: align the mantissa by an add
    constexpr std::uint32_t magic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
    o = bits_of_float(float_of_bits(f) + float_of_bits(magic)) - magic;
  } else {
    const std::uint32_t odd = (f >> 13) & 1u;
    f += ((15u - 127u) << 23) + 0xfffu + odd;  // rebias, and round to nearest even
    o = f >> 13;
  }
  return static_cast<std::uint16_t>(o | (sign >> 16));
}

/// double -> binary16 bits, rounded once (to float rounding to odd first, which float's 13
/// spare bits make exact for the second rounding).
inline std::uint16_t double_to_half(double d) noexcept {
  float f = static_cast<float>(d);
  const double back = static_cast<double>(f);
  if (back != d && d == d && back - back == 0.0) {  // inexact, not NaN, f finite
    std::uint32_t u = bits_of_float(f);
    if ((back < 0 ? -back : back) > (d < 0 ? -d : d)) u -= 1;  // toward zero
    f = float_of_bits(u | 1u);
  } else if (back != d && d == d) {  // rounded up to inf: the largest float, made odd
    f = float_of_bits((bits_of_float(f) & 0x80000000u) | 0x7f7fffffu);
  }
  return float_to_half(f);
}

/// bfloat16 bits -> float (exact).
inline float bfloat16_to_float(std::uint16_t b) noexcept { return float_of_bits(static_cast<std::uint32_t>(b) << 16); }

/// float -> bfloat16 bits, rounded to nearest even (NaN stays a quiet NaN with its sign).
inline std::uint16_t float_to_bfloat16(float x) noexcept {
  const std::uint32_t u = bits_of_float(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
  return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

inline std::uint16_t double_to_bfloat16(double d) noexcept { return float_to_bfloat16(static_cast<float>(d)); }

/// 16 bits of storage that read as a float and are written from any number (a float rounded
/// by FromFloat, other numbers by FromDouble): float16 and bfloat16 below.
template <std::uint16_t (*FromFloat)(float), std::uint16_t (*FromDouble)(double), float (*ToFloat)(std::uint16_t)>
struct Float16Storage {
  std::uint16_t bits = 0;
  Float16Storage() = default;
  template <class U, std::enable_if_t<std::is_arithmetic_v<U>, int> = 0>
  Float16Storage(U v) noexcept  // NOLINT: numbers convert implicitly, as to float
      : bits(std::is_same_v<U, float> ? FromFloat(static_cast<float>(v)) : FromDouble(static_cast<double>(v))) {}
  operator float() const noexcept { return ToFloat(bits); }  // NOLINT
  static Float16Storage from_bits(std::uint16_t b) noexcept {
    Float16Storage h;
    h.bits = b;
    return h;
  }
  Float16Storage& operator+=(float v) noexcept { return *this = Float16Storage(static_cast<float>(*this) + v); }
  Float16Storage& operator-=(float v) noexcept { return *this = Float16Storage(static_cast<float>(*this) - v); }
  Float16Storage& operator*=(float v) noexcept { return *this = Float16Storage(static_cast<float>(*this) * v); }
  Float16Storage& operator/=(float v) noexcept { return *this = Float16Storage(static_cast<float>(*this) / v); }
};
}  // namespace detail

/// IEEE binary16 storage: 1 sign bit, 5 exponent bits, 10 mantissa bits (NumPy's float16). A
/// double rounds to it once (not through float).
using float16 = detail::Float16Storage<detail::float_to_half, detail::double_to_half, detail::half_to_float>;
/// bfloat16 storage: float32's sign and 8 exponent bits, 7 mantissa bits. A double rounds to
/// it through float, as ml_dtypes' and PyTorch's do.
using bfloat16 =
    detail::Float16Storage<detail::float_to_bfloat16, detail::double_to_bfloat16, detail::bfloat16_to_float>;

static_assert(sizeof(float16) == 2 && sizeof(bfloat16) == 2, "16-bit storage types");

/// Whether T is one of the 16-bit storage types.
template <class T>
inline constexpr bool is_half_v = std::is_same_v<T, float16> || std::is_same_v<T, bfloat16>;
/// The type a kernel computes T in: float for the 16-bit types, T otherwise.
template <class T>
using compute_t = std::conditional_t<is_half_v<T>, float, T>;

}  // namespace tapegrad
