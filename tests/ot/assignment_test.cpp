// The exact assignment solver against brute force over every permutation (square and
// rectangular, negative costs, ties), a size-2000 problem, reuse of the solver, bad input.

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <limits>
#include <numeric>
#include <vector>

#include <flowmatch/core/random.hpp>
#include <flowmatch/ot/assignment.hpp>

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

// Minimum over all injective maps rows -> columns, by trying every permutation of the columns.
double brute_force(const Matrix<double>& c) {
  std::vector<Index> cols(static_cast<std::size_t>(c.cols()));
  std::iota(cols.begin(), cols.end(), 0);
  double best = std::numeric_limits<double>::infinity();
  do {
    double total = 0.0;
    for (Index i = 0; i < c.rows(); ++i) total += c(i, cols[static_cast<std::size_t>(i)]);
    best = std::min(best, total);
  } while (std::next_permutation(cols.begin(), cols.end()));
  return best;
}

bool is_injective(const std::vector<Index>& a, Index m) {
  std::vector<char> seen(static_cast<std::size_t>(m), 0);
  for (Index j : a) {
    if (j < 0 || j >= m || seen[static_cast<std::size_t>(j)]) return false;
    seen[static_cast<std::size_t>(j)] = 1;
  }
  return true;
}

}  // namespace

TEST_CASE("solve_assignment equals brute force on small square and rectangular matrices", "[ot][assignment]") {
  Rng rng(7);
  AssignmentSolver solver;
  std::vector<Index> a;
  for (int trial = 0; trial < 60; ++trial) {
    const Index n = 1 + static_cast<Index>(rng.below(7));
    const Index m = n + (trial % 3 == 0 ? static_cast<Index>(rng.below(2)) : 0);
    Matrix<double> c(n, m);
    for (Index i = 0; i < n; ++i)
      for (Index j = 0; j < m; ++j)
        c(i, j) = trial % 4 == 1 ? static_cast<double>(rng.below(3))  // many ties
                                 : 10.0 * rng.uniform() - 5.0;        // negative costs too
    const double got = solver.solve(c, a);
    INFO("trial " << trial << ", " << n << " x " << m);
    REQUIRE(a.size() == static_cast<std::size_t>(n));
    CHECK(is_injective(a, m));
    CHECK(got == Approx(brute_force(c)).margin(1e-12));
    CHECK(assignment_cost(c, a) == Approx(got).margin(1e-12));
    const std::vector<Index> fresh = solve_assignment(c);
    CHECK(assignment_cost(c, fresh) == Approx(got).margin(1e-12));
  }
}

TEST_CASE("solve_assignment finds the identity for points matched to themselves and is fast at n = 2000", "[ot][assignment]") {
  Rng rng(3);
  const Index n = 2000;
  Matrix<double> x(2, n);
  rng.fill_normal(x);
  // Squared distances between a set and a permutation of itself: the optimum undoes the permutation.
  std::vector<Index> perm(static_cast<std::size_t>(n));
  std::iota(perm.begin(), perm.end(), 0);
  for (Index i = n - 1; i > 0; --i) std::swap(perm[static_cast<std::size_t>(i)], perm[rng.below(static_cast<std::uint64_t>(i + 1))]);
  Matrix<double> c(n, n);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < n; ++j) c(i, j) = (x.col(i) - x.col(perm[static_cast<std::size_t>(j)])).squaredNorm();
  const auto start = std::chrono::steady_clock::now();
  const std::vector<Index> a = solve_assignment(c);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO("n = 2000 solved in " << seconds << " s");
  for (Index i = 0; i < n; ++i) CHECK(perm[static_cast<std::size_t>(a[static_cast<std::size_t>(i)])] == i);
  CHECK(seconds < 20.0);  // generous for a loaded CI machine; about 1 s on one core
}

TEST_CASE("solve_assignment refuses empty, wide and non-finite cost matrices", "[ot][assignment][errors]") {
  CHECK_THROWS_AS(solve_assignment(Matrix<double>(0, 0)), InvalidArgument);
  CHECK_THROWS_WITH(solve_assignment(Matrix<double>::Zero(3, 2)), Catch::Contains("argument 'cost.cols()'"));
  Matrix<double> c = Matrix<double>::Zero(2, 2);
  c(1, 0) = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH(solve_assignment(c), Catch::Contains("argument 'cost(1, 0)'"));
  c(1, 0) = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_AS(solve_assignment(c), InvalidArgument);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
