// Activation policies: value() against the closed forms, derivative() against central
// differences of value(), and the forward / backward kernels against value() / derivative().

#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <flowmatch/nn/activation.hpp>

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
