// The 16-bit floating types of tensor storage: IEEE binary16 (float16) and bfloat16.
//
// Each is 16 bits of storage that reads as a float and is written from any number, rounded
// to nearest even: arithmetic on them is float arithmetic (a + b converts both to float), so
// kernels written for float and double run on them unchanged, computing in float32 and
// storing 16 bits. Every conversion to a 16-bit type, from float and from double, rounds once
// to nearest even, as IEEE says (NumPy's float16 does; PyTorch's bfloat16 and ml_dtypes'
// before 0.7 round a double twice, through float).
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

/// double -> float rounded to odd: truncated toward zero, with the last bit set when the
/// conversion was inexact (and the largest float, made odd, past float's range). A second
/// rounding of the result to nearest even, to a format at least two bits narrower than float
/// (float16's 10 mantissa bits, bfloat16's 7), is then the one correct rounding of the double:
/// the odd bit keeps a value that was not a tie from looking like one.
inline float double_to_float_odd(double d) noexcept {
  const float f = static_cast<float>(d);
  const double back = static_cast<double>(f);
  if (back == d || d != d) return f;  // exact, or NaN
  std::uint32_t u = bits_of_float(f);
  if (back - back != 0.0) return float_of_bits((u & 0x80000000u) | 0x7f7fffffu);  // rounded up to inf
  if ((back < 0 ? -back : back) > (d < 0 ? -d : d)) u -= 1;  // rounded away from zero: one step back
  return float_of_bits(u | 1u);
}

/// double -> binary16 bits, rounded once.
inline std::uint16_t double_to_half(double d) noexcept { return float_to_half(double_to_float_odd(d)); }

/// bfloat16 bits -> float (exact).
inline float bfloat16_to_float(std::uint16_t b) noexcept { return float_of_bits(static_cast<std::uint32_t>(b) << 16); }

/// float -> bfloat16 bits, rounded to nearest even (NaN stays a quiet NaN with its sign).
inline std::uint16_t float_to_bfloat16(float x) noexcept {
  const std::uint32_t u = bits_of_float(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
  return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/// double -> bfloat16 bits, rounded once (PyTorch and ml_dtypes before 0.7 round twice, through
/// float: 1 + 2^-8 + 2^-60 goes to 1 there, to 1 + 2^-7 here, as IEEE says).
inline std::uint16_t double_to_bfloat16(double d) noexcept { return float_to_bfloat16(double_to_float_odd(d)); }

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
/// it once (not through float).
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
