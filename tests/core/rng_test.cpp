// flowmatch::Rng: reproducibility, state round trips, the xoshiro256++ / splitmix64 reference,
// and the statistics of normal() (the ziggurat, tail included), uniform24() and fill_normal().

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>
#include <vector>

#include <flowmatch/core/random.hpp>

#include "support/stats.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;
using test::kSigmas;

namespace {

// Independent transcription of Vigna's reference C code (splitmix64.c, xoshiro256plusplus.c).
std::uint64_t reference_splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

struct ReferenceXoshiro {
  std::uint64_t s[4];
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t next() {
    const std::uint64_t result = rotl(s[0] + s[3], 23) + s[0];
    const std::uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
  }
};

}  // namespace

static_assert(std::uniform_random_bit_generator<Rng>);

TEST_CASE("Rng seeds through splitmix64 and steps as xoshiro256++", "[core][rng]") {
  // splitmix64 from 0: its first four outputs are the published test values.
  const Rng zero(0);
  CHECK(zero.state()[0] == 0xe220a8397b1dcdafULL);
  CHECK(zero.state()[1] == 0x6e789e6aa1b965f4ULL);
  CHECK(zero.state()[2] == 0x06c45d188009454fULL);
  CHECK(zero.state()[3] == 0xf88bb8a8724c81ecULL);

  for (std::uint64_t seed : {0ULL, 1ULL, 42ULL, 0xdeadbeefcafef00dULL}) {
    Rng rng(seed);
    ReferenceXoshiro ref{};
    std::uint64_t x = seed;
    for (auto& w : ref.s) w = reference_splitmix64(x);
    bool all_equal = true;
    for (int i = 0; i < 1000; ++i) all_equal = all_equal && (rng.next() == ref.next());
    CHECK(all_equal);
    CHECK(rng() == ref.next());  // operator() is next()
  }
}

TEST_CASE("Rng: the same seed gives the same stream, different seeds differ", "[core][rng]") {
  Rng a(123), b(123), c(124), d(0);
  CHECK(a == b);
  CHECK_FALSE(a == c);
  int same_ab = 0, same_ac = 0, same_ad = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::uint64_t va = a.next();
    same_ab += va == b.next();
    same_ac += va == c.next();
    same_ad += va == d.next();
  }
  CHECK(same_ab == 1000);
  CHECK(same_ac == 0);
  CHECK(same_ad == 0);

  // The derived draws too.
  Rng e(7), f(7);
  for (int i = 0; i < 1000; ++i) {
    REQUIRE(e.normal() == f.normal());
    REQUIRE(e.uniform() == f.uniform());
    REQUIRE(e.uniform24() == f.uniform24());
  }
  // seed() restarts a stream.
  Rng g(99);
  const std::uint64_t first = g.next();
  g.next();
  g.seed(99);
  CHECK(g.next() == first);
}

TEST_CASE("Rng: state() / set_state() round trip continues the stream identically", "[core][rng]") {
  Rng a(2024);
  for (int i = 0; i < 137; ++i) a.normal();  // somewhere in the middle of the stream
  const Rng::State saved = a.state();

  std::vector<double> from_a;
  for (int i = 0; i < 500; ++i) {
    from_a.push_back(a.normal());
    from_a.push_back(a.uniform());
    from_a.push_back(static_cast<double>(a.next() >> 11));
  }

  Rng b(1);  // any other generator
  b.set_state(saved);
  CHECK(b.state() == saved);
  std::vector<double> from_b;
  for (int i = 0; i < 500; ++i) {
    from_b.push_back(b.normal());
    from_b.push_back(b.uniform());
    from_b.push_back(static_cast<double>(b.next() >> 11));
  }
  CHECK(from_a == from_b);
  CHECK(a == b);
}

TEST_CASE("Rng::set_state refuses the all-zero state", "[core][rng]") {
  Rng rng(5);
  const Rng::State before = rng.state();
  CHECK_THROWS_AS(rng.set_state(Rng::State{0, 0, 0, 0}), InvalidArgument);
  CHECK_THROWS_WITH(rng.set_state(Rng::State{0, 0, 0, 0}), Catch::Contains("argument 'state'"));
  CHECK(rng.state() == before);  // unchanged by the refused call
  CHECK_NOTHROW(rng.set_state(Rng::State{0, 0, 0, 1}));
}

TEST_CASE("Rng::normal has the moments of N(0, 1)", "[core][rng][statistical]") {
  constexpr int n = 1'000'000;
  Rng rng(31337);
  std::vector<double> v(n);
  for (double& x : v) x = rng.normal();
  const test::Moments m = test::moments(v);
  const double N = n;
  // Standard errors under N(0, 1): mean 1/sqrt(n), variance sqrt(2/n), skewness sqrt(6/n),
  // excess kurtosis sqrt(24/n).
  CHECK(std::abs(m.mean) < kSigmas / std::sqrt(N));
  CHECK(std::abs(m.variance - 1.0) < kSigmas * std::sqrt(2.0 / N));
  CHECK(std::abs(m.skewness) < kSigmas * std::sqrt(6.0 / N));
  CHECK(std::abs(m.excess_kurtosis) < kSigmas * std::sqrt(24.0 / N));
}

TEST_CASE("Rng::normal matches the normal CDF, in the body and beyond the ziggurat's base", "[core][rng][statistical]") {
  constexpr double r = 3.6541528853610088;  // the ziggurat's base edge: beyond it is the tail algorithm
  constexpr std::int64_t n = 10'000'000;
  Rng rng(8);
  // Histogram on fixed edges, plus the tail counts.
  const std::vector<double> edges = {-4.5, -r, -3.0, -2.5, -2.0, -1.5, -1.0, -0.5, 0.0,
                                     0.5,  1.0, 1.5,  2.0,  2.5,  3.0,  r,    4.5};
  std::vector<std::int64_t> counts(edges.size() + 1, 0);
  std::int64_t above_r = 0, below_minus_r = 0, above_2 = 0, far_tail = 0;
  double max_abs = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double x = rng.normal();
    const auto bin = std::upper_bound(edges.begin(), edges.end(), x) - edges.begin();
    ++counts[static_cast<std::size_t>(bin)];
    above_r += x > r;
    below_minus_r += x < -r;
    above_2 += x > 2.0;
    far_tail += std::abs(x) > 4.5;
    max_abs = std::max(max_abs, std::abs(x));
  }
  const double N = static_cast<double>(n);
  const auto check_count = [&](std::int64_t count, double p) {
    INFO("count " << count << ", expected " << N * p << " +- " << test::binomial_sd(N, p));
    CHECK(std::abs(static_cast<double>(count) - N * p) < kSigmas * test::binomial_sd(N, p));
  };
  const double p_tail = 1.0 - test::normal_cdf(r);  // 1.29e-4: about 1290 draws each side
  check_count(above_r, p_tail);
  check_count(below_minus_r, p_tail);
  check_count(above_r + below_minus_r, 2.0 * p_tail);  // P(|x| > r)
  check_count(above_2, 1.0 - test::normal_cdf(2.0));
  check_count(far_tail, 2.0 * (1.0 - test::normal_cdf(4.5)));  // deep inside the tail algorithm
  for (std::size_t b = 0; b < counts.size(); ++b) {
    const double lo = b == 0 ? -INFINITY : edges[b - 1];
    const double hi = b == edges.size() ? INFINITY : edges[b];
    INFO("bin [" << lo << ", " << hi << ")");
    check_count(counts[b], test::normal_cdf(hi) - test::normal_cdf(lo));
  }
  // The tail really produces values far beyond r: P(|x| > 4.8) = 1.6e-6, so 1e7 draws hold about
  // 16 of them (none: probability 1e-7); P(|x| > 7) = 2.6e-12 (some: probability 3e-5).
  CHECK(max_abs > 4.8);
  CHECK(max_abs < 7.0);
}

TEST_CASE("Rng::normal beyond the ziggurat's base has the shape of the normal tail", "[core][rng][statistical]") {
  // Given |x| > r, the excess e = |x| - r of a standard normal has mean lambda - r and variance
  // 1 + r lambda - lambda^2, with lambda = phi(r) / (1 - Phi(r)) (truncated normal moments):
  // 0.2429 and 0.2312^2. The tail algorithm alone produces these draws (2.6e-4 of all draws:
  // about 10300 in 4e7), so this checks its shape, not only its mass: accepting with exp(-e^2)
  // instead of exp(-e^2 / 2) would give a mean excess of 0.2230, 8.7 standard errors away.
  constexpr double r = 3.6541528853610088;
  constexpr std::int64_t n = 40'000'000;
  const double tail = 0.5 * std::erfc(r / std::numbers::sqrt2);
  const double lambda = std::exp(-0.5 * r * r) / std::sqrt(2.0 * std::numbers::pi) / tail;
  const double mean_excess = lambda - r;
  const double var_excess = 1.0 + r * lambda - lambda * lambda;
  Rng rng(2718);
  std::vector<double> excess;
  excess.reserve(12000);
  for (std::int64_t i = 0; i < n; ++i) {
    const double x = std::abs(rng.normal());
    if (x > r) excess.push_back(x - r);
  }
  const double count = static_cast<double>(excess.size());
  CHECK(std::abs(count - 2.0 * tail * n) < kSigmas * test::binomial_sd(double(n), 2.0 * tail));
  const test::Moments m = test::moments(excess);
  INFO("tail draws " << count << ", mean excess " << m.mean << " (expected " << mean_excess << "), sd "
                     << std::sqrt(m.variance) << " (expected " << std::sqrt(var_excess) << ")");
  CHECK(std::abs(m.mean - mean_excess) < kSigmas * std::sqrt(var_excess / count));
  // The variance of the excess (0.0535; 0.0427 with the wrong acceptance): its standard error is
  // sqrt((mu4 - var^2) / n) = 0.133 / sqrt(n) for this distribution (computed by quadrature).
  CHECK(std::abs(m.variance - var_excess) < kSigmas * 0.14 / std::sqrt(count));
}

TEST_CASE("Rng::uniform24 lies on the 2^-24 grid below 1", "[core][rng]") {
  Rng rng(77);
  constexpr int n = 200'000;
  double sum = 0.0, lo = 1.0, hi = 0.0;
  bool on_grid = true, in_range = true, float_exact = true;
  for (int i = 0; i < n; ++i) {
    const double u = rng.uniform24();
    const double scaled = u * 16777216.0;
    on_grid = on_grid && scaled == std::floor(scaled);
    in_range = in_range && u >= 0.0 && u < 1.0;
    float_exact = float_exact && static_cast<double>(static_cast<float>(u)) == u;
    sum += u;
    lo = std::min(lo, u);
    hi = std::max(hi, u);
  }
  CHECK(on_grid);
  CHECK(in_range);
  CHECK(float_exact);
  CHECK(std::abs(sum / n - 0.5) < kSigmas * std::sqrt(1.0 / 12.0 / n));
  CHECK(lo < 1e-4);
  CHECK(hi > 1.0 - 1e-4);
  CHECK(hi <= 1.0 - 0x1.0p-24);

  // It is the top 24 bits of next().
  Rng a(3), b(3);
  for (int i = 0; i < 100; ++i) REQUIRE(a.uniform24() == static_cast<double>(b.next() >> 40) * 0x1.0p-24);
}

TEST_CASE("Rng::uniform and Rng::below", "[core][rng]") {
  Rng rng(4);
  constexpr int n = 200'000;
  double sum = 0.0;
  bool in_range = true;
  std::vector<std::int64_t> counts(7, 0);
  bool below_in_range = true;
  for (int i = 0; i < n; ++i) {
    const double u = rng.uniform();
    in_range = in_range && u >= 0.0 && u < 1.0;
    sum += u;
    const std::uint64_t k = rng.below(7);
    below_in_range = below_in_range && k < 7;
    if (k < 7) ++counts[k];
  }
  CHECK(in_range);
  CHECK(std::abs(sum / n - 0.5) < kSigmas * std::sqrt(1.0 / 12.0 / n));
  CHECK(below_in_range);
  for (std::int64_t c : counts)
    CHECK(std::abs(static_cast<double>(c) - n / 7.0) < kSigmas * test::binomial_sd(n, 1.0 / 7.0));
  Rng one(9);
  for (int i = 0; i < 100; ++i) REQUIRE(one.below(1) == 0);
}

TEST_CASE("Rng::fill_normal writes a block column by column and nothing else", "[core][rng]") {
  Eigen::MatrixXd m = Eigen::MatrixXd::Zero(5, 7);
  Rng rng(11), ref(11);
  rng.fill_normal(m.block(1, 2, 3, 4));
  for (Eigen::Index j = 0; j < 7; ++j)
    for (Eigen::Index i = 0; i < 5; ++i) {
      const bool inside = i >= 1 && i < 4 && j >= 2 && j < 6;
      if (!inside) CHECK(m(i, j) == 0.0);
    }
  for (Eigen::Index j = 2; j < 6; ++j)  // column-major order of draws
    for (Eigen::Index i = 1; i < 4; ++i) CHECK(m(i, j) == ref.normal());
  CHECK(rng == ref);  // exactly 12 draws consumed

  // A row of a float matrix, and a whole matrix: float is the rounded double draw.
  Eigen::MatrixXf f = Eigen::MatrixXf::Zero(3, 4);
  Rng rf(12), rref(12);
  rf.fill_normal(f.row(1));
  for (Eigen::Index j = 0; j < 4; ++j) {
    CHECK(f(1, j) == static_cast<float>(rref.normal()));
    CHECK(f(0, j) == 0.0f);
    CHECK(f(2, j) == 0.0f);
  }

  // Many blocks: the statistics are those of N(0, 1).
  Eigen::MatrixXd big(64, 4000);
  Rng rb(13);
  for (Eigen::Index j = 0; j < big.cols(); j += 500) rb.fill_normal(big.middleCols(j, 500));
  const double N = static_cast<double>(big.size());
  const double mean = big.mean();
  const double var = (big.array() - mean).square().mean();
  CHECK(std::abs(mean) < kSigmas / std::sqrt(N));
  CHECK(std::abs(var - 1.0) < kSigmas * std::sqrt(2.0 / N));

  // fill_uniform likewise.
  Eigen::MatrixXd u = Eigen::MatrixXd::Constant(4, 4, -1.0);
  Rng ru(14), ruref(14);
  ru.fill_uniform(u.topLeftCorner(2, 3));
  for (Eigen::Index j = 0; j < 3; ++j)
    for (Eigen::Index i = 0; i < 2; ++i) CHECK(u(i, j) == ruref.uniform());
  CHECK(u(2, 0) == -1.0);
  CHECK(u(0, 3) == -1.0);
}

TEST_CASE("Rng::jump and long_jump: xoshiro256's published polynomials", "[core][rng]") {
  // From the state (0, 0, 0, 1): the values the reference C code (prng.di.unimi.it) gives, as
  // tabulated by an independent implementation (DSCF-1224/xoshiro-fortran, test/README.md).
  Rng a;
  a.set_state({0, 0, 0, 1});
  a.jump();
  CHECK(a.state() == Rng::State{0x934D05E8B2076310ULL, 0xEABDD0BF76A1BE51ULL, 0x75DD6A992ACCB1E8ULL, 0xC660C602A7330187ULL});
  Rng b;
  b.set_state({0, 0, 0, 1});
  b.long_jump();
  CHECK(b.state() == Rng::State{0x4AA11F0B3241CDBFULL, 0xB6A17239B35B197FULL, 0x504952572E3F844BULL, 0x2628DF68616FD3A0ULL});
  // The jump is linear over GF(2) and commutes with stepping: jump(next^k(s)) = next^k(jump(s)).
  Rng c(7), d(7);
  c.jump();
  for (int i = 0; i < 5; ++i) d.next();
  d.jump();
  for (int i = 0; i < 5; ++i) c.next();
  CHECK(c == d);
  // Streams a jump apart differ from the first draw on.
  Rng e(7), f(7);
  f.jump();
  int same = 0;
  for (int i = 0; i < 1000; ++i) same += e.next() == f.next();
  CHECK(same == 0);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
