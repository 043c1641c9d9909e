// Exact assignment (Jonker-Volgenant) against brute force, Sinkhorn's plan and its rounding.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include <flowmatch/core/assignment.hpp>
#include <flowmatch/core/random.hpp>
#include <flowmatch/core/sinkhorn.hpp>

using namespace flowmatch;

namespace {

double brute_force(const Matrix<double>& c) {
  std::vector<Index> p(static_cast<std::size_t>(c.rows()));
  std::iota(p.begin(), p.end(), Index{0});
  double best = std::numeric_limits<double>::infinity();
  do {
    double s = 0.0;
    for (Index i = 0; i < c.rows(); ++i) s += c(i, p[static_cast<std::size_t>(i)]);
    best = std::min(best, s);
  } while (std::next_permutation(p.begin(), p.end()));
  return best;
}

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

TEST_CASE("solve_assignment equals brute force on small problems", "[assignment]") {
  Rng rng(11);
  AssignmentWorkspace ws;
  std::vector<Index> p;
  for (int trial = 0; trial < 60; ++trial) {
    const Index n = 1 + trial % 8;
    Matrix<double> c(n, n);
    if (trial % 3 == 0) {
      for (Index k = 0; k < c.size(); ++k) c.data()[k] = std::floor(rng.uniform() * 4.0);  // many ties
    } else if (trial % 3 == 1) {
      rng.fill_uniform(c);
      c = (c.array() - 0.5).matrix() * 100.0;  // negative costs too
    } else {
      Matrix<double> a(2, n), b(2, n);
      rng.fill_normal(a);
      rng.fill_normal(b);
      c = squared_distances(a, b);
    }
    INFO("trial " << trial << ", n = " << n);
    const double cost = solve_assignment(c, p, ws);
    CHECK(is_permutation(p));
    double recomputed = 0.0;
    for (Index i = 0; i < n; ++i) recomputed += c(i, p[static_cast<std::size_t>(i)]);
    CHECK(cost == Approx(recomputed).margin(1e-12));
    CHECK(cost == Approx(brute_force(c)).margin(1e-9));
  }
}

TEST_CASE("solve_assignment: known answers, row-major input and the allocating overload", "[assignment]") {
  Matrix<double> c(3, 3);
  c << 4, 1, 3, 2, 0, 5, 3, 2, 2;  // scipy's documentation example: rows -> columns 1, 0, 2, cost 5
  const std::vector<Index> p = solve_assignment(c);
  CHECK(p == std::vector<Index>{1, 0, 2});
  RowMajorMatrix<float> cf = c.cast<float>();
  std::vector<Index> q;
  AssignmentWorkspace ws;
  CHECK(solve_assignment(cf, q, ws) == 5.0);
  CHECK(q == p);
  // Identity is optimal for a matrix with a zero diagonal and positive elsewhere.
  Matrix<double> d = Matrix<double>::Constant(50, 50, 1.0);
  d.diagonal().setZero();
  std::vector<Index> r = solve_assignment(d);
  for (Index i = 0; i < 50; ++i) CHECK(r[static_cast<std::size_t>(i)] == i);
}

TEST_CASE("solve_assignment refuses bad cost matrices", "[assignment][errors]") {
  Matrix<double> rect(2, 3);
  rect.setZero();
  CHECK_THROWS_AS(solve_assignment(rect), DimensionMismatch);
  CHECK_THROWS_AS(solve_assignment(Matrix<double>(0, 0)), InvalidArgument);
  Matrix<double> c = Matrix<double>::Zero(3, 3);
  c(1, 2) = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(solve_assignment(c), Catch::Contains("'cost(1, 2)'"));
}

TEST_CASE("Sinkhorn plan has uniform marginals and its cost is not below the exact assignment", "[assignment][sinkhorn]") {
  Rng rng(5);
  const Index n = 64;
  Matrix<double> a(2, n), b(2, n);
  rng.fill_normal(a);
  rng.fill_normal(b);
  b.array() += 2.0;
  const Matrix<double> c = squared_distances(a, b);
  std::vector<Index> p;
  AssignmentWorkspace ws;
  const double exact = solve_assignment(c, p, ws) / static_cast<double>(n);  // per pair
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

TEST_CASE("Sinkhorn refuses a bad regularisation, naming it", "[assignment][sinkhorn][errors]") {
  Matrix<double> c(2, 2), plan;
  c << 0, 1000, 1000, 0;
  SinkhornWorkspace ws;
  CHECK_THROWS_WITH(sinkhorn(c, 0.0, plan, ws), Catch::Contains("'reg' = 0"));
  CHECK_THROWS_AS(sinkhorn(c, -1.0, plan, ws), InvalidArgument);
  Matrix<double> far(2, 2);
  far << 0, 1e6, 0, 1e6;
  CHECK_THROWS_WITH(sinkhorn(far, 1e-3, plan, ws), Catch::Contains("'reg'") && Catch::Contains("underflows"));
}
