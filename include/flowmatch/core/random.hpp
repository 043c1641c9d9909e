#pragma once
/// \file
/// Seedable, reproducible random numbers: xoshiro256++ bits, 24- and 53-bit uniforms, and
/// standard normals by the Marsaglia-Tsang ziggurat (about 1-2 ns a draw: never visible in a
/// profile of a training step).
///
/// The whole state is four 64-bit words (`state()` / `set_state()`), so a checkpoint can save it
/// and a resumed run continues with exactly the same stream.

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/types.hpp"

namespace flowmatch {

namespace detail {

/// Ziggurat tables for the standard normal with 256 layers (Marsaglia and Tsang, 2000), laid out
/// for a 52-bit uniform: layer 0 is the base strip (with the tail beyond r), layers 255..1 go up.
struct ZigguratTables {
  static constexpr int kLayers = 256;
  static constexpr double kR = 3.6541528853610088;         // right edge of the base layer
  static constexpr double kArea = 0.00492867323399;        // common area of every layer
  static constexpr double kScale = 4503599627370496.0;     // 2^52
  std::array<std::uint64_t, kLayers> k{};                  // fast-accept thresholds
  std::array<double, kLayers> w{};                         // layer widths / 2^52
  std::array<double, kLayers> f{};                         // exp(-x_i^2 / 2)

  ZigguratTables() {
    double dn = kR;
    double tn = dn;
    const double q = kArea / std::exp(-0.5 * dn * dn);
    k[0] = static_cast<std::uint64_t>((dn / q) * kScale);
    k[1] = 0;
    w[0] = q / kScale;
    w[kLayers - 1] = dn / kScale;
    f[0] = 1.0;
    f[kLayers - 1] = std::exp(-0.5 * dn * dn);
    for (int i = kLayers - 2; i >= 1; --i) {
      dn = std::sqrt(-2.0 * std::log(kArea / dn + std::exp(-0.5 * dn * dn)));
      k[i + 1] = static_cast<std::uint64_t>((dn / tn) * kScale);
      tn = dn;
      f[i] = std::exp(-0.5 * dn * dn);
      w[i] = dn / kScale;
    }
  }

  static const ZigguratTables& get() {
    static const ZigguratTables tables;
    return tables;
  }
};

__extension__ typedef unsigned __int128 uint128;  // GCC and Clang; __extension__ keeps -Wpedantic quiet

inline std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace detail

/// xoshiro256++ (Blackman and Vigna): a fast 64-bit generator with a 2^256 - 1 period, seeded
/// through splitmix64 so that nearby seeds give unrelated streams. Satisfies
/// std::uniform_random_bit_generator, so it also drives `<random>`'s distributions.
class Rng {
 public:
  using result_type = std::uint64_t;
  using State = std::array<std::uint64_t, 4>;

  explicit Rng(std::uint64_t seed = 0) { this->seed(seed); }

  void seed(std::uint64_t seed) {
    std::uint64_t x = seed;
    for (auto& word : s_) word = detail::splitmix64(x);
  }

  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return std::numeric_limits<result_type>::max(); }

  result_type operator()() { return next(); }

  result_type next() {
    const std::uint64_t result = rotl(s_[0] + s_[3], 23) + s_[0];
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  /// Uniform on [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  /// Uniform on the grid {0, 2^-24, ..., 1 - 2^-24}: the same law as PyTorch's float
  /// `torch.rand`. Every value is exactly representable in float and is strictly below 1.
  double uniform24() { return static_cast<double>(next() >> 40) * 0x1.0p-24; }

  /// Uniform integer in [0, n) (n >= 1), by Lemire's multiply-shift (bias below 2^-32 for n < 2^32).
  std::uint64_t below(std::uint64_t n) {
    return static_cast<std::uint64_t>((static_cast<detail::uint128>(next()) * n) >> 64);
  }

  /// A standard normal draw by the 256-layer ziggurat.
  double normal() {
    const auto& z = detail::ZigguratTables::get();
    for (;;) {
      std::uint64_t r = next();
      const int layer = static_cast<int>(r & 0xff);
      r >>= 8;
      const bool negative = (r & 1) != 0;
      const std::uint64_t mag = (r >> 1) & 0x000fffffffffffffULL;
      double x = static_cast<double>(mag) * z.w[layer];
      if (mag < z.k[layer]) return negative ? -x : x;  // inside the layer's rectangle: ~99%
      if (layer == 0) {
        // Tail beyond r: Marsaglia's exponential rejection.
        for (;;) {
          const double xx = -std::log1p(-uniform()) / detail::ZigguratTables::kR;
          const double yy = -std::log1p(-uniform());
          if (yy + yy > xx * xx) {
            const double v = detail::ZigguratTables::kR + xx;
            return negative ? -v : v;
          }
        }
      }
      if ((z.f[layer - 1] - z.f[layer]) * uniform() + z.f[layer] < std::exp(-0.5 * x * x)) {
        return negative ? -x : x;
      }
    }
  }

  /// Fills any writable Eigen expression with independent standard normals.
  template <class Derived>
  void fill_normal(const Eigen::MatrixBase<Derived>& out_) {
    auto& out = detail::writable(out_);
    using S = typename Derived::Scalar;
    for (Index j = 0; j < out.cols(); ++j)
      for (Index i = 0; i < out.rows(); ++i) out(i, j) = static_cast<S>(normal());
  }

  /// Fills any writable Eigen expression with uniforms on [0, 1).
  template <class Derived>
  void fill_uniform(const Eigen::MatrixBase<Derived>& out_) {
    auto& out = detail::writable(out_);
    using S = typename Derived::Scalar;
    for (Index j = 0; j < out.cols(); ++j)
      for (Index i = 0; i < out.rows(); ++i) out(i, j) = static_cast<S>(uniform());
  }

  const State& state() const { return s_; }

  /// Restores a state from state(). The all-zero state is a fixed point of xoshiro and is refused.
  void set_state(const State& s) {
    if (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0)
      detail::throw_invalid("flowmatch::Rng::set_state", "state", 0,
                            "the all-zero state is not a valid xoshiro256++ state");
    s_ = s;
  }

  /// Advances the generator by 2^128 draws (xoshiro256++'s jump polynomial): 2^128 streams that
  /// never overlap, each 2^128 draws long. flowmatch::distributed derives its per-shard streams so.
  void jump() { apply_jump({0x180ec6d33cfd0abaULL, 0xd5a61266f0c9392cULL, 0xa9582618e03fc9aaULL, 0x39abdc4529b1661cULL}); }
  /// Advances the generator by 2^192 draws: 2^64 starting points, each 2^64 jump()s apart.
  void long_jump() {
    apply_jump({0x76e15d3efefdcbbfULL, 0xc5004e441c522fb3ULL, 0x77710069854ee241ULL, 0x39109bb02acbe635ULL});
  }

  friend bool operator==(const Rng& a, const Rng& b) { return a.s_ == b.s_; }

 private:
  static constexpr std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  void apply_jump(const State& poly) {
    State acc{};
    for (const std::uint64_t word : poly)
      for (int b = 0; b < 64; ++b) {
        if (word & (std::uint64_t{1} << b))
          for (int i = 0; i < 4; ++i) acc[static_cast<std::size_t>(i)] ^= s_[static_cast<std::size_t>(i)];
        next();
      }
    s_ = acc;
  }
  State s_{};
};

}  // namespace flowmatch

