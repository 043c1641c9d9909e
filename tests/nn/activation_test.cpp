// Activation policies: value() against the closed forms, derivative() against central
// differences of value(), and the forward / backward kernels against value() / derivative().

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <flowmatch/nn/activation.hpp>
#include <flowmatch/nn/activation_extra.hpp>

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

static_assert(Activation<SiLU> && Activation<ReLU> && Activation<Tanh>);
namespace {
struct NoBackward {
  static constexpr bool uses_aux = false;
  static constexpr std::string_view name() { return "nobackward"; }
  template <Real S>
  static void forward(const S*, S*, S*, Index) {}
  template <Real S>
  static S value(S z) { return z; }
  template <Real S>
  static S derivative(S) { return S(1); }
};
}  // namespace
static_assert(!Activation<NoBackward>);

namespace {

double closed_form(std::string_view name, double z) {
  if (name == "silu") return z / (1.0 + std::exp(-z));
  if (name == "relu") return z > 0.0 ? z : 0.0;
  return std::tanh(z);
}

// z values on [-8, 8] that avoid 0 (ReLU's kink) by more than the difference step.
std::vector<double> grid() {
  std::vector<double> zs;
  for (int i = -160; i <= 160; ++i)
    if (i != 0) zs.push_back(i / 20.0 + 0.013);
  zs.push_back(-30.0);
  zs.push_back(30.0);
  return zs;
}

}  // namespace

TEST_CASE("Activation names and aux flags", "[nn][activation]") {
  // Compared as std::string: Catch 2 defines StringMaker<std::string_view> in its main(), which a
  // build may compile below C++17 (then a string_view comparison fails to link).
  CHECK(std::string(SiLU::name()) == "silu");
  CHECK(std::string(ReLU::name()) == "relu");
  CHECK(std::string(Tanh::name()) == "tanh");
  CHECK(SiLU::uses_aux);
  CHECK_FALSE(ReLU::uses_aux);
  CHECK_FALSE(Tanh::uses_aux);
}

TEMPLATE_TEST_CASE("Activation value() is the closed form and derivative() its central difference", "[nn][activation]",
                   SiLU, ReLU, Tanh) {
  for (double z : grid()) {
    INFO(TestType::name() << " at z = " << z);
    CHECK(TestType::template value<double>(z) == Approx(closed_form(TestType::name(), z)).epsilon(1e-15).margin(1e-300));
    CHECK(double(TestType::template value<float>(float(z))) == Approx(closed_form(TestType::name(), double(float(z)))).epsilon(1e-6).margin(1e-30));
    // h = 1e-6: truncation h^2 |f'''| / 6 < 1e-12, rounding 1e-16 |f| / h < 1e-9 for |z| <= 8.
    const double h = 1e-6;
    const double numeric = (TestType::template value<double>(z + h) - TestType::template value<double>(z - h)) / (2.0 * h);
    const double tol = 1e-9 * (1.0 + std::abs(z));
    CHECK(std::abs(TestType::template derivative<double>(z) - numeric) < tol);
    CHECK(std::abs(double(TestType::template derivative<float>(float(z))) - TestType::template derivative<double>(double(float(z)))) < 1e-6);
  }
  // Known values.
  CHECK(TestType::template value<double>(0.0) == 0.0);
}

TEST_CASE("Activation derivatives at known points", "[nn][activation]") {
  CHECK(SiLU::derivative<double>(0.0) == 0.5);
  CHECK(Tanh::derivative<double>(0.0) == 1.0);
  CHECK(ReLU::derivative<double>(2.0) == 1.0);
  CHECK(ReLU::derivative<double>(-2.0) == 0.0);
  CHECK(ReLU::derivative<double>(0.0) == 0.0);  // the subgradient PyTorch uses
  CHECK(SiLU::value<double>(-40.0) == Approx(-40.0 * std::exp(-40.0)).epsilon(1e-12));
  CHECK(SiLU::derivative<double>(40.0) == Approx(1.0).epsilon(1e-15));
  CHECK(std::abs(SiLU::derivative<double>(-40.0)) < 1e-15);
}

TEMPLATE_PRODUCT_TEST_CASE("Activation forward / backward kernels equal value() / derivative()", "[nn][activation]",
                           std::pair, ((SiLU, float), (SiLU, double), (ReLU, float), (ReLU, double), (Tanh, float), (Tanh, double))) {
  using Act = typename TestType::first_type;
  using S = typename TestType::second_type;
  const std::vector<double> zs = grid();
  const Index n = static_cast<Index>(zs.size());
  std::vector<S> z(zs.size()), a(zs.size()), aux(zs.size(), S(-7)), g(zs.size());
  for (std::size_t i = 0; i < zs.size(); ++i) z[i] = static_cast<S>(zs[i]);
  Act::template forward<S>(z.data(), a.data(), aux.data(), n);
  const double tol = std::is_same_v<S, float> ? 1e-6 : 1e-14;
  for (std::size_t i = 0; i < zs.size(); ++i) {
    INFO(Act::name() << " at z = " << z[i]);
    CHECK(double(a[i]) == Approx(double(Act::template value<S>(z[i]))).epsilon(tol).margin(1e-30));
    if (Act::uses_aux) {  // SiLU saves sigmoid(z)
      CHECK(double(aux[i]) == Approx(1.0 / (1.0 + std::exp(-double(z[i])))).epsilon(tol).margin(1e-30));
    }
  }
  // backward: g *= f'(z), from what forward saved.
  for (std::size_t i = 0; i < zs.size(); ++i) g[i] = static_cast<S>(0.5 + 0.01 * double(i));
  const std::vector<S> g0 = g;
  Act::template backward<S>(a.data(), aux.data(), g.data(), n);
  for (std::size_t i = 0; i < zs.size(); ++i) {
    INFO(Act::name() << " at z = " << z[i]);
    const double expected = double(g0[i]) * double(Act::template derivative<S>(z[i]));
    CHECK(double(g[i]) == Approx(expected).epsilon(10 * tol).margin(10 * tol * double(g0[i])));
  }
  // In place (a aliases z), on an odd length so vectorised loops have a remainder (whose scalar
  // exp may differ from the vectorised one in the last bit).
  std::vector<S> inplace(z.begin(), z.begin() + 37), aux2(37);
  Act::template forward<S>(inplace.data(), inplace.data(), aux2.data(), 37);
  for (std::size_t i = 0; i < 37; ++i) CHECK(double(inplace[i]) == Approx(double(a[i])).epsilon(tol).margin(1e-30));
}

// ---- The activations of activation_extra.hpp (GELU, GELUTanh, ELU, SELU, LeakyReLU, Softplus) ----

namespace {

constexpr long double kSeluAlpha = 1.6732632423543772848170429916717L;
constexpr long double kSeluScale = 1.0507009873554804934193349852946L;

// PyTorch's definitions, written independently of activation_extra.hpp (literal formulas, in long
// double; where a literal formula cancels, a series or erfc instead).
double reference(std::string_view name, double zd) {
  const long double z = zd;
  if (name == "gelu") {
    // 0.5 z (1 + erf(z / sqrt 2)) cancels for z < 0: Phi(z) = erfc(-z / sqrt 2) / 2 there.
    if (z >= 0) return double(0.5L * z * (1.0L + std::erf(z / std::sqrt(2.0L))));
    return double(0.5L * z * std::erfc(-z / std::sqrt(2.0L)));
  }
  if (name == "gelu_tanh") {
    const long double u = std::sqrt(2.0L / 3.14159265358979323846264338327950288L) * (z + 0.044715L * z * z * z);
    if (u >= -1) return double(0.5L * z * (1.0L + std::tanh(u)));
    // 1 + tanh(u) = 2 e^{2u} / (1 + e^{2u})
    return double(z * std::exp(2 * u) / (1.0L + std::exp(2 * u)));
  }
  if (name == "elu") return double(z > 0 ? z : std::exp(z) - 1.0L);
  if (name == "selu") return double(kSeluScale * (std::max(0.0L, z) + std::min(0.0L, kSeluAlpha * (std::exp(z) - 1.0L))));
  if (name == "leaky_relu") return double(z > 0 ? z : 0.01L * z);
  // softplus, beta 1, threshold 20; log(1 + e^z) = e^z - e^2z / 2 + e^3z / 3 - ... for small e^z.
  if (z > 20) return zd;
  const long double e = std::exp(z);
  if (e < 1e-4L) return double(e - e * e / 2 + e * e * e / 3 - e * e * e * e / 4);
  return double(std::log(1.0L + e));
}

// z values on [-8, 8] (avoiding the kinks at 0 by more than the difference step), far out, and
// either side of Softplus' threshold.
std::vector<double> extra_grid() {
  std::vector<double> zs = grid();
  for (double z : {-30.0, -15.0, 15.0, 19.9, 20.1, 25.0}) zs.push_back(z);
  return zs;
}

// 1 + |z f'(z) / f(z)|: how much a relative error in z (or in an intermediate of that size) grows
// in f(z); the float tolerances are scaled by it.
template <class Act>
double sensitivity(double z) {
  const double f = Act::template value<double>(z);
  if (f == 0.0) return 1.0;
  return 1.0 + std::abs(z * Act::template derivative<double>(z) / f);
}

}  // namespace

static_assert(Activation<GELU> && Activation<GELUTanh> && Activation<ELU> && Activation<SELU> &&
              Activation<LeakyReLU> && Activation<Softplus>);

TEST_CASE("Extra activations: PyTorch's names and aux flags", "[nn][activation]") {
  CHECK(std::string(GELU::name()) == "gelu");
  CHECK(std::string(GELUTanh::name()) == "gelu_tanh");
  CHECK(std::string(ELU::name()) == "elu");
  CHECK(std::string(SELU::name()) == "selu");
  CHECK(std::string(LeakyReLU::name()) == "leaky_relu");
  CHECK(std::string(Softplus::name()) == "softplus");
  CHECK(GELU::uses_aux);
  CHECK(GELUTanh::uses_aux);
  CHECK(Softplus::uses_aux);
  CHECK_FALSE(ELU::uses_aux);
  CHECK_FALSE(SELU::uses_aux);
  CHECK_FALSE(LeakyReLU::uses_aux);
}

TEMPLATE_TEST_CASE("Extra activations: value() is PyTorch's formula and derivative() its central difference",
                   "[nn][activation]", GELU, GELUTanh, ELU, SELU, LeakyReLU, Softplus) {
  for (double z : extra_grid()) {
    INFO(TestType::name() << " at z = " << z);
    // 4e-15 times the sensitivity: an input rounded to double moves f by that much (GELU at -30: 900x).
    CHECK(TestType::template value<double>(z) ==
          Approx(reference(TestType::name(), z)).epsilon(4e-15 * sensitivity<TestType>(z)).margin(1e-300));
    const double zf = double(float(z));
    CHECK(double(TestType::template value<float>(float(z))) ==
          Approx(reference(TestType::name(), zf)).epsilon(1e-6 * sensitivity<TestType>(zf)).margin(1e-30));
    // h = 1e-6: truncation h^2 |f'''| / 6 < 1e-12, rounding 1e-16 |f| / h < 1e-9 (1 + |z|).
    const double h = 1e-6;
    const double numeric = (TestType::template value<double>(z + h) - TestType::template value<double>(z - h)) / (2.0 * h);
    CHECK(std::abs(TestType::template derivative<double>(z) - numeric) < 1e-9 * (1.0 + std::abs(z)));
    CHECK(std::abs(double(TestType::template derivative<float>(float(z))) - TestType::template derivative<double>(zf)) < 1e-6);
  }
  CHECK(TestType::template value<double>(0.0) == (std::is_same_v<TestType, Softplus> ? std::log(2.0) : 0.0));
}

TEST_CASE("Extra activations: values and derivatives PyTorch computes", "[nn][activation]") {
  // Generated with torch 1.13 in float64:
  //   import torch, torch.nn.functional as F
  //   z = torch.tensor([-30.0, -5.0, -1.5, -0.3, 0.0, 0.7, 2.0, 25.0], dtype=torch.float64)
  //   for name, f in [("gelu", F.gelu), ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh")),
  //                   ("elu", F.elu), ("selu", F.selu), ("leaky_relu", F.leaky_relu),
  //                   ("softplus", F.softplus)]:
  //       x = z.clone().requires_grad_(True); y = f(x); y.sum().backward()
  //       print(name, y.tolist(), x.grad.tolist())
  const std::vector<double> z = {-30.0, -5.0, -1.5, -0.3, 0.0, 0.7, 2.0, 25.0};
  struct Expected {
    std::string_view name;
    std::vector<double> value, derivative;
  };
  const std::vector<Expected> expected = {
      {"gelu",
       {-0.0, -1.4332578593401202e-06, -0.10021080190328704, -0.11462657334331421, 0, 0.53062544344384888,
        1.9544997361036416, 25},
       {-4.420938404635643e-195, -7.1469460018034646e-06, -0.1274691922299796, 0.26767223317289013, 0.5,
        0.97661410113365987, 1.0852318010781969, 1}},
      {"gelu_tanh",
       {-0.0, -2.2917961972623857e-07, -0.10042842301976707, -0.11462907645724074, 0, 0.53057013470511671,
        1.954597694087775, 25},
       {0, -1.5463619879596227e-06, -0.12771079315143308, 0.26770454836119817, 0.5, 0.97635721865610403,
        1.0860992566236183, 1}},
      {"elu",
       {-0.99999999999990641, -0.99326205300091452, -0.77686983985157021, -0.25918177931828212, 0, 0.7, 2, 25},
       {9.3576229688401748e-14, 0.006737946999085467, 0.22313016014842982, 0.74081822068171788, 1, 1, 1, 1}},
      {"selu",
       {-1.7580993408472121, -1.7462533606696198, -1.3658143533672527, -0.45566731537912203, 0, 0.73549069114883625,
        2.1014019747109609, 26.267524683887011},
       {1.6451630773416182e-13, 0.011845980177756718, 0.39228498748012403, 1.3024320254682547, 1.7580993408473766,
        1.0507009873554805, 1.0507009873554805, 1.0507009873554805}},
      {"leaky_relu",
       {-0.3, -0.05, -0.015, -0.003, 0, 0.7, 2, 25},
       {0.01, 0.01, 0.01, 0.01, 0.01, 1, 1, 1}},
      {"softplus",
       {9.3576229688397368e-14, 0.0067153484891180684, 0.20141327798275241, 0.55435524446852713, 0.69314718055994529,
        1.1031860488854579, 2.1269280110429727, 25},
       {9.3576229688393001e-14, 0.0066928509242848563, 0.18242552380635632, 0.42555748318834102, 0.5,
        0.66818777216816616, 0.88079707797788243, 1}},
  };
  const auto check = [&](auto act, const Expected& e) {
    using Act = decltype(act);
    REQUIRE(std::string(Act::name()) == std::string(e.name));
    // The kernels on the whole vector: forward, then backward of g = 1.
    const Index n = static_cast<Index>(z.size());
    std::vector<double> a(z.size()), aux(z.size()), g(z.size(), 1.0);
    Act::template forward<double>(z.data(), a.data(), aux.data(), n);
    Act::template backward<double>(a.data(), aux.data(), g.data(), n);
    std::vector<float> zf(z.begin(), z.end()), af(z.size()), auxf(z.size()), gf(z.size(), 1.0f);
    Act::template forward<float>(zf.data(), af.data(), auxf.data(), n);
    Act::template backward<float>(af.data(), auxf.data(), gf.data(), n);
    for (std::size_t i = 0; i < z.size(); ++i) {
      INFO(Act::name() << " at z = " << z[i]);
      // Margin 1e-15 (1 + |z|): PyTorch's literal 0.5 z (1 + erf(z / sqrt 2)) (and the tanh form)
      // carry an absolute error of about eps |z| where 1 + erf cancels (z = -5: 2e-10 relative),
      // and f' taken from a (ELU, SELU: a + alpha) one of about alpha eps (z = -30).
      const double margin = 1e-15 * (1.0 + std::abs(z[i]));
      CHECK(Act::template value<double>(z[i]) == Approx(e.value[i]).epsilon(1e-14).margin(margin));
      CHECK(Act::template derivative<double>(z[i]) == Approx(e.derivative[i]).epsilon(1e-14).margin(margin));
      CHECK(a[i] == Approx(e.value[i]).epsilon(1e-14).margin(margin));
      CHECK(g[i] == Approx(e.derivative[i]).epsilon(1e-14).margin(margin));
      CHECK(double(af[i]) == Approx(e.value[i]).epsilon(1e-6 * sensitivity<Act>(z[i])).margin(1e-30));
      CHECK(double(gf[i]) == Approx(e.derivative[i]).epsilon(1e-6 * sensitivity<Act>(z[i])).margin(1e-7));
    }
  };
  check(GELU{}, expected[0]);
  check(GELUTanh{}, expected[1]);
  check(ELU{}, expected[2]);
  check(SELU{}, expected[3]);
  check(LeakyReLU{}, expected[4]);
  check(Softplus{}, expected[5]);
}

TEMPLATE_PRODUCT_TEST_CASE("Extra activations: forward / backward kernels equal value() / derivative()", "[nn][activation]",
                           std::pair,
                           ((GELU, float), (GELU, double), (GELUTanh, float), (GELUTanh, double), (ELU, float),
                            (ELU, double), (SELU, float), (SELU, double), (LeakyReLU, float), (LeakyReLU, double),
                            (Softplus, float), (Softplus, double))) {
  using Act = typename TestType::first_type;
  using S = typename TestType::second_type;
  const std::vector<double> zs = extra_grid();
  const Index n = static_cast<Index>(zs.size());
  std::vector<S> z(zs.size()), a(zs.size()), aux(zs.size(), S(-7)), g(zs.size());
  for (std::size_t i = 0; i < zs.size(); ++i) z[i] = static_cast<S>(zs[i]);
  Act::template forward<S>(z.data(), a.data(), aux.data(), n);
  const double tol = std::is_same_v<S, float> ? 1e-6 : 1e-14;
  for (std::size_t i = 0; i < zs.size(); ++i) {
    INFO(Act::name() << " at z = " << z[i]);
    const double sens = sensitivity<Act>(double(z[i]));
    CHECK(double(a[i]) == Approx(double(Act::template value<S>(z[i]))).epsilon(tol * sens).margin(1e-30));
  }
  for (std::size_t i = 0; i < zs.size(); ++i) g[i] = static_cast<S>(0.5 + 0.01 * double(i));
  const std::vector<S> g0 = g;
  Act::template backward<S>(a.data(), aux.data(), g.data(), n);
  for (std::size_t i = 0; i < zs.size(); ++i) {
    INFO(Act::name() << " at z = " << z[i]);
    const double expected = double(g0[i]) * double(Act::template derivative<S>(z[i]));
    CHECK(double(g[i]) == Approx(expected).epsilon(10 * tol * sensitivity<Act>(double(z[i]))).margin(10 * tol * double(g0[i])));
  }
  // In place (a aliases z), on an odd length so vectorised loops have a remainder; backward
  // from the in-place forward gives the same gradient.
  std::vector<S> inplace(z.begin(), z.begin() + 37), aux2(37), g2(g0.begin(), g0.begin() + 37);
  Act::template forward<S>(inplace.data(), inplace.data(), aux2.data(), 37);
  Act::template backward<S>(inplace.data(), aux2.data(), g2.data(), 37);
  for (std::size_t i = 0; i < 37; ++i) {
    INFO(Act::name() << " in place at z = " << z[i]);
    // Bit for bit: each value is evaluated the same way wherever it sits (in_padded_blocks).
    CHECK(inplace[i] == a[i]);
    CHECK(g2[i] == g[i]);
  }
  // Position independence: the same values at an odd offset of a longer, misaligned batch (past
  // one 256-value block) give the same bits, forward and backward.
  for (const std::size_t offset : {std::size_t(1), std::size_t(5), std::size_t(251)}) {
    const std::size_t len = offset + zs.size() + 3;
    std::vector<S> zl(len, S(0.25)), al(len), auxl(len), gl(len, S(1));
    std::copy(z.begin(), z.end(), zl.begin() + static_cast<std::ptrdiff_t>(offset));
    std::copy(g0.begin(), g0.end(), gl.begin() + static_cast<std::ptrdiff_t>(offset));
    Act::template forward<S>(zl.data() + 1, al.data() + 1, auxl.data() + 1, static_cast<Index>(len - 1));
    Act::template backward<S>(al.data() + 1, auxl.data() + 1, gl.data() + 1, static_cast<Index>(len - 1));
    for (std::size_t i = 0; i < zs.size(); ++i) {
      INFO(Act::name() << " at offset " << offset << ", z = " << z[i]);
      CHECK(al[offset + i] == a[i]);
      CHECK(gl[offset + i] == g[i]);
    }
  }
}

TEMPLATE_PRODUCT_TEST_CASE("Extra activations: finite with the right limits at extreme inputs", "[nn][activation]",
                           std::pair,
                           ((GELU, float), (GELU, double), (GELUTanh, float), (GELUTanh, double), (ELU, float),
                            (ELU, double), (SELU, float), (SELU, double), (LeakyReLU, float), (LeakyReLU, double),
                            (Softplus, float), (Softplus, double))) {
  using Act = typename TestType::first_type;
  using S = typename TestType::second_type;
  const S denorm = std::numeric_limits<S>::denorm_min();
  const S tiny = std::numeric_limits<S>::min() / S(8);  // a denormal
  std::vector<S> z = {S(3e38),  S(-3e38), S(1e4),  S(-1e4), S(88),    S(-88),  S(100), S(-100),
                      S(0),     S(-0.0),  denorm,  -denorm, tiny,     -tiny,   S(20),  S(-20)};
  if constexpr (std::is_same_v<S, double>) {
    z.push_back(1e300);
    z.push_back(-1e300);
  }
  const Index n = static_cast<Index>(z.size());
  std::vector<S> a(z.size()), aux(z.size()), g(z.size(), S(1));
  Act::template forward<S>(z.data(), a.data(), aux.data(), n);
  Act::template backward<S>(a.data(), aux.data(), g.data(), n);
  const bool selu = std::is_same_v<Act, SELU>;
  const double slope_pos = selu ? double(SELU::kScale) : 1.0;  // f' for large z
  for (std::size_t i = 0; i < z.size(); ++i) {
    const double zi = double(z[i]);
    INFO(Act::name() << " at z = " << zi << ": a = " << double(a[i]) << ", f' = " << double(g[i]));
    CHECK(std::isfinite(double(a[i])));
    CHECK(std::isfinite(double(g[i])));
    CHECK(std::isfinite(double(Act::template value<S>(z[i]))));
    CHECK(std::isfinite(double(Act::template derivative<S>(z[i]))));
    // The kernels agree with value() / derivative() here too. Margin: where e^z underflows,
    // Eigen's vectorised exp returns its smallest value (about 3e-39 in float with SSE only,
    // 5.6e-309 in double) instead of a denormal or 0, so a kernel may give 3e-39 where value() 0.
    const double tiny_margin = std::is_same_v<S, float> ? 1e-37 : 1e-300;
    CHECK(double(a[i]) == Approx(double(Act::template value<S>(z[i]))).epsilon(1e-6).margin(tiny_margin));
    // ELU and SELU take f' from a (a + alpha): an absolute error of alpha eps where a ~ -alpha.
    CHECK(double(g[i]) == Approx(double(Act::template derivative<S>(z[i])))
                              .epsilon(1e-6)
                              .margin(4 * double(std::numeric_limits<S>::epsilon())));
    if (zi >= 88) {  // the linear branch
      CHECK(double(a[i]) == Approx(slope_pos * zi).epsilon(1e-6));
      CHECK(double(g[i]) == Approx(slope_pos).epsilon(1e-6));
    } else if (zi <= -88) {
      const double tail = std::is_same_v<Act, ELU>          ? -1.0
                          : std::is_same_v<Act, SELU>      ? -double(SELU::kScale * SELU::kAlpha)
                          : std::is_same_v<Act, LeakyReLU> ? 0.01 * zi
                                                           : 0.0;  // GELU, GELUTanh, Softplus
      CHECK(double(a[i]) == Approx(tail).epsilon(1e-6).margin(1e-30));
      CHECK(double(g[i]) == Approx(std::is_same_v<Act, LeakyReLU> ? 0.01 : 0.0).margin(1e-30));
      // The sign is right (GELU: -0 or a tiny negative, not a stray positive value).
      if constexpr (std::is_same_v<Act, Softplus>)
        CHECK(double(a[i]) >= 0.0);
      else
        CHECK(double(a[i]) <= 0.0);
    } else if (std::abs(zi) < 1e-30) {  // 0 and denormals: f(z) = f(0) + f'(0) z
      const double f0 = std::is_same_v<Act, Softplus> ? std::log(2.0) : 0.0;
      CHECK(double(a[i]) == Approx(f0).margin(1e-30));
    }
  }
}

}  // namespace FLOWMATCH_TEST_FILE_ID
