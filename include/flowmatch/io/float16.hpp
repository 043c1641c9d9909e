#pragma once
/// \file
/// IEEE binary16 (F16, "half") and bfloat16 (BF16) bit patterns to float/double and back, exactly:
/// every F16 and BF16 value (normal, subnormal, signed zero, infinity) is representable in float,
/// so the widening conversions are exact; NaN stays NaN. The narrowing ones round to nearest, ties
/// to even (as numpy and PyTorch do), overflow to infinity, and keep NaN a (quiet) NaN.

#include <bit>
#include <cmath>
#include <cstdint>

namespace flowmatch {

/// The float an F16 bit pattern holds (exact).
inline float f16_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  const std::uint32_t man = h & 0x3ffu;
  if (exp == 0x1f)  // infinity or NaN (the payload kept in the high mantissa bits)
    return std::bit_cast<float>(sign | 0x7f800000u | (man << 13));
  if (exp == 0) {  // zero or subnormal: man * 2^-24, exact in float
    const float v = std::ldexp(static_cast<float>(man), -24);
    return sign ? -v : v;
  }
  return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (man << 13));  // 112 = 127 - 15
}

/// The float a BF16 bit pattern holds (exact: the upper half of a float).
inline float bf16_to_float(std::uint16_t b) { return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16); }

inline double f16_to_double(std::uint16_t h) { return static_cast<double>(f16_to_float(h)); }
inline double bf16_to_double(std::uint16_t b) { return static_cast<double>(bf16_to_float(b)); }

/// Whether an F16 / BF16 bit pattern is an infinity or a NaN.
inline constexpr bool f16_is_finite(std::uint16_t h) { return (h & 0x7c00u) != 0x7c00u; }
inline constexpr bool bf16_is_finite(std::uint16_t b) { return (b & 0x7f80u) != 0x7f80u; }

/// The F16 nearest to `f` (ties to even; beyond the largest finite F16, infinity; NaN -> quiet NaN).
inline std::uint16_t float_to_f16(float f) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u);  // NaN
  if (ax >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // >= 65520: rounds to infinity
  if (ax < 0x38800000u) {  // below 2^-14: an F16 subnormal (or zero); value = ax_float * 2^24 rounded
    const float a = std::bit_cast<float>(ax);
    // a * 2^24 < 1024: nearbyint under the default rounding mode rounds ties to even.
    const float q = std::nearbyint(a * 16777216.0f);
    return static_cast<std::uint16_t>(sign | static_cast<std::uint16_t>(q));
  }
  // A normal F16: rebias the exponent, round the 13 dropped mantissa bits to nearest even (a carry
  // into the exponent is the right result, up to infinity, excluded above).
  std::uint32_t r = ax - (112u << 23);
  r += 0x0fffu + ((r >> 13) & 1u);
  return static_cast<std::uint16_t>(sign | (r >> 13));
}

/// The BF16 nearest to `f` (ties to even; NaN -> quiet NaN).
inline std::uint16_t float_to_bf16(float f) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((x >> 16) | 0x0040u);
  return static_cast<std::uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

}  // namespace flowmatch
