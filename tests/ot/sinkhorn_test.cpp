// Sinkhorn's plan (marginals, cost against the exact assignment) and its rounding to a pairing.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include <flowmatch/core/random.hpp>
#include <flowmatch/ot/assignment.hpp>
#include <flowmatch/ot/sinkhorn.hpp>

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

bool is_permutation(const std::vector<Index>& p) {
  std::vector<char> seen(p.size(), 0);
  for (Index j : p) {
    if (j < 0 || j >= static_cast<Index>(p.size()) || seen[static_cast<std::size_t>(j)]) return false;
    seen[static_cast<std::size_t>(j)] = 1;
  }
  return true;
}

Matrix<double> squared_distances(const Matrix<double>& a, const Matrix<double>& b) {
  Matrix<double> c(a.cols(), b.cols());
  for (Index i = 0; i < a.cols(); ++i)
    for (Index j = 0; j < b.cols(); ++j) c(i, j) = (a.col(i) - b.col(j)).squaredNorm();
  return c;
}

}  // namespace

TEST_CASE("Sinkhorn plan has uniform marginals and its cost is not below the exact assignment", "[ot][sinkhorn]") {
  Rng rng(5);
  const Index n = 64;
  Matrix<double> a(2, n), b(2, n);
  rng.fill_normal(a);
  rng.fill_normal(b);
  b.array() += 2.0;
  const Matrix<double> c = squared_distances(a, b);
  const double exact = assignment_cost(c, solve_assignment(c)) / static_cast<double>(n);  // per pair
  Matrix<double> plan;
  SinkhornWorkspace sws;
  double previous = std::numeric_limits<double>::infinity();
  for (double reg : {3.0, 1.0, 0.3}) {  // max cost ~50: plain Sinkhorn slows down below ~0.3
    INFO("reg = " << reg);
    const SinkhornResult res = sinkhorn(c, reg, plan, sws, 20000, 1e-9);
    CHECK(res.marginal_error <= 1e-9);
    CHECK((plan.rowwise().sum().array() * n - 1.0).abs().maxCoeff() < 1e-8);
    CHECK((plan.colwise().sum().array() * n - 1.0).abs().maxCoeff() < 1e-8);
    CHECK(plan.minCoeff() >= 0.0);
    // The assignment is optimal over all doubly stochastic plans: <P, C> >= exact / n * n.
    const double entropic = (plan.array() * c.array()).sum();
    CHECK(entropic >= exact - 1e-9);
    CHECK(entropic <= previous + 1e-9);  // less entropy, lower transport cost
    previous = entropic;
    // A pairing rounded from the plan is a permutation whose cost is not below the exact one.
    std::vector<Index> q;
    PlanPairingWorkspace pws;
    pairing_from_plan(plan, rng, q, pws);
    CHECK(is_permutation(q));
    double rounded = 0.0;
    for (Index i = 0; i < n; ++i) rounded += c(i, q[static_cast<std::size_t>(i)]);
    CHECK(rounded / static_cast<double>(n) >= exact - 1e-12);
  }
  CHECK(previous - exact < 0.05 * exact);  // small reg: close to the exact cost
}

TEST_CASE("Sinkhorn refuses a bad regularisation, naming it", "[ot][sinkhorn][errors]") {
  Matrix<double> c(2, 2), plan;
  c << 0, 1000, 1000, 0;
  SinkhornWorkspace ws;
  CHECK_THROWS_WITH(sinkhorn(c, 0.0, plan, ws), Catch::Contains("'reg' = 0"));
  CHECK_THROWS_AS(sinkhorn(c, -1.0, plan, ws), InvalidArgument);
  Matrix<double> far(2, 2);
  far << 0, 1e6, 0, 1e6;
  CHECK_THROWS_WITH(sinkhorn(far, 1e-3, plan, ws), Catch::Contains("'reg'") && Catch::Contains("underflows"));
}

}  // namespace FLOWMATCH_TEST_FILE_ID
