// The stepper registry (ode/stepper_registry.hpp): every registered name (the Runge-Kutta steppers
// and the multistep AB2 and AB3) dispatches to the stepper of that name, which converges at its
// order on a small nonlinear ODE; the names are listed in the registry's order; an unknown name
// throws InvalidArgument listing the known ones.

#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <flowmatch/ode/simulator.hpp>
#include <flowmatch/ode/stepper_registry.hpp>

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

// dx/dt = t x^2 has x(t) = 1 / (1/x0 - (t^2 - t0^2)/2): nonlinear and time-dependent.
struct Riccati {
  using Scalar = double;
  Index dim() const { return 1; }
  template <class DX, class DO>
  void drift(const Eigen::MatrixBase<DX>& x, double t, const Eigen::MatrixBase<DO>& out) {
    detail::writable(out) = t * x.cwiseProduct(x);
  }
};

// Max error at t = 1.2 of `St` with `steps` uniform steps from x0 in {0.5, 0.3, -0.7}.
template <class St>
double error_of(Index steps) {
  Riccati ode;
  Matrix<double> x(1, 3);
  x << 0.5, 0.3, -0.7;
  const Matrix<double> x0 = x;
  ODESimulator<Riccati, St>(ode).simulate_inplace(x, 0.0, 1.2, steps);
  double err = 0.0;
  for (Index j = 0; j < 3; ++j) err = std::max(err, std::abs(x(0, j) - 1.0 / (1.0 / x0(0, j) - 0.5 * 1.44)));
  return err;
}

}  // namespace

TEST_CASE("stepper_names lists the fixed-step steppers in the registry's order", "[ode][registry]") {
  const auto names = stepper_names();
  REQUIRE(names.size() == 6);
  CHECK(names[0] == "euler");
  CHECK(names[1] == "midpoint");
  CHECK(names[2] == "heun");
  CHECK(names[3] == "rk4");
  CHECK(names[4] == "ab2");
  CHECK(names[5] == "ab3");
  CHECK(stepper_name_list() == "euler, midpoint, heun, rk4, ab2, ab3");
  CHECK(is_stepper_name("ab3"));
  CHECK(is_stepper_name("rk4"));
  CHECK_FALSE(is_stepper_name("dopri5"));  // adaptive: not in the fixed-step list
  static_assert(std::tuple_size_v<FixedSteppers<float>> == stepper_names().size());
}

TEST_CASE("visit_stepper dispatches each name to its stepper, which converges at its order", "[ode][registry][order]") {
  const std::vector<std::pair<std::string_view, int>> expected{{"euler", 1}, {"midpoint", 2}, {"heun", 2},
                                                              {"rk4", 4},   {"ab2", 2},      {"ab3", 3}};
  for (const auto& [name, order] : expected) {
    INFO("stepper " << name);
    // The stepper type f is called with: its name, order and scalar.
    const std::string_view got = visit_stepper<double>(name, []<class St>(std::type_identity<St>) { return St::name; });
    CHECK(got == name);
    CHECK(visit_stepper<double>(name, []<class St>(std::type_identity<St>) { return St::order; }) == order);
    visit_stepper<float>(name, []<class St>(std::type_identity<St>) { CHECK(std::is_same_v<typename St::Scalar, float>); });
    // Halving the step divides the error by about 2^order.
    const double rate = visit_stepper<double>(name, []<class St>(std::type_identity<St>) {
      return std::log2(error_of<St>(64) / error_of<St>(128));
    });
    INFO("observed order " << rate);
    CHECK(rate > order - 0.2);
    CHECK(rate < order + 0.25);
  }
}

TEST_CASE("visit_stepper refuses an unknown name, listing the known ones", "[ode][registry][errors]") {
  int calls = 0;
  auto count = [&]<class St>(std::type_identity<St>) { ++calls; };
  CHECK_THROWS_AS(visit_stepper<float>("rk5", count), InvalidArgument);
  CHECK_THROWS_WITH(visit_stepper<float>("rk5", count),
                    Catch::Contains("'name' = rk5") && Catch::Contains("euler, midpoint, heun, rk4, ab2, ab3"));
  CHECK_THROWS_AS(visit_stepper<float>("", count), InvalidArgument);
  CHECK_THROWS_AS(visit_stepper<float>("RK4", count), InvalidArgument);  // names are case-sensitive
  CHECK(calls == 0);
  visit_stepper<float>("heun", count);
  CHECK(calls == 1);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
