// The auction assignment solver against the exact one (AssignmentSolver): its total cost is within
// relative_tolerance * (max - min cost) of the optimum on random, geometric (OT-CFM batches),
// integer and tied costs; it returns a permutation; n = 1 and constant costs; reuse without
// allocation of new buffers; bad input.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include <flowmatch/core/random.hpp>
#include <flowmatch/ot/assignment.hpp>
#include <flowmatch/ot/auction.hpp>

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

bool is_permutation(const std::vector<Index>& a) {
  std::vector<char> seen(a.size(), 0);
  for (Index j : a) {
    if (j < 0 || j >= static_cast<Index>(a.size()) || seen[static_cast<std::size_t>(j)]) return false;
    seen[static_cast<std::size_t>(j)] = 1;
  }
  return true;
}

// Squared distances between a standard normal batch and a batch of `kind` data: the cost matrix
// of one OT-CFM training step.
Matrix<double> ot_batch_cost(Index n, int kind, Rng& rng) {
  Matrix<double> a(2, n), b(2, n);
  for (Index j = 0; j < n; ++j) {
    a(0, j) = rng.normal();
    a(1, j) = rng.normal();
    const double u = rng.uniform() * 3.141592653589793;
    if (kind == 0) {  // moons-like
      b(0, j) = 2.0 * std::cos(u) - 1.0 + 0.1 * rng.normal();
      b(1, j) = 2.0 * std::sin(u) + 0.1 * rng.normal();
    } else {  // 8 Gaussians of radius 5
      const double angle = 0.7853981633974483 * static_cast<double>(rng.below(8));
      b(0, j) = 5.0 * std::cos(angle) + rng.normal();
      b(1, j) = 5.0 * std::sin(angle) + rng.normal();
    }
  }
  Matrix<double> c(n, n);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < n; ++j) c(i, j) = (a.col(i) - b.col(j)).squaredNorm();
  return c;
}

void check_near_optimal(const Matrix<double>& c, double tol = 1e-7) {
  std::vector<Index> exact, auction;
  AssignmentSolver exact_solver;
  AuctionAssignmentSolver auction_solver(tol);
  const double best = exact_solver.solve(c, exact);
  const double got = auction_solver.solve(c, auction);
  REQUIRE(is_permutation(auction));
  CHECK(got == Approx(assignment_cost(c, auction)).epsilon(1e-12));
  const double range = c.maxCoeff() - c.minCoeff();
  CHECK(got >= best - 1e-9 * std::max(1.0, std::abs(best)));
  CHECK(got <= best + tol * range + 1e-9 * std::max(1.0, std::abs(best)));
  CHECK(auction_solver.last_bids() >= c.rows());
}

}  // namespace

TEST_CASE("AuctionAssignmentSolver: within tolerance of the exact optimum on random costs", "[ot][auction]") {
  Rng rng(3);
  for (Index n : {2, 3, 7, 20, 64}) {
    Matrix<double> c(n, n);
    for (Index i = 0; i < n; ++i)
      for (Index j = 0; j < n; ++j) c(i, j) = rng.normal() * 10.0 - 3.0;  // negative costs too
    check_near_optimal(c);
  }
}

TEST_CASE("AuctionAssignmentSolver: OT-CFM batch costs give the exact optimal pairing", "[ot][auction]") {
  Rng rng(11);
  for (int kind : {0, 1}) {
    const Matrix<double> c = ot_batch_cost(128, kind, rng);
    check_near_optimal(c);
    // On such continuous costs the optimum is unique and the tolerance is far below the gaps:
    // the same permutation as the exact solver.
    std::vector<Index> exact, auction;
    AssignmentSolver().solve(c, exact);
    AuctionAssignmentSolver().solve(c, auction);
    CHECK(exact == auction);
  }
}

TEST_CASE("AuctionAssignmentSolver: integer costs with ties, a coarse tolerance", "[ot][auction]") {
  Rng rng(5);
  Matrix<double> c(40, 40);
  for (Index i = 0; i < 40; ++i)
    for (Index j = 0; j < 40; ++j) c(i, j) = static_cast<double>(rng.below(6));  // many ties
  check_near_optimal(c);
  check_near_optimal(c, 1e-3);
  // Coarse: the bound still holds.
  check_near_optimal(c, 0.05);
}

TEST_CASE("AuctionAssignmentSolver: one row, constant costs, reuse", "[ot][auction]") {
  AuctionAssignmentSolver solver;
  std::vector<Index> a;
  Matrix<double> one(1, 1);
  one(0, 0) = 2.5;
  CHECK(solver.solve(one, a) == 2.5);
  CHECK(a == std::vector<Index>{0});
  const Matrix<double> flat = Matrix<double>::Constant(5, 5, 1.5);
  CHECK(solver.solve(flat, a) == Approx(7.5));
  CHECK(is_permutation(a));
  // The same solver on a second problem of another size, then the first again: same answer.
  Rng rng(9);
  const Matrix<double> c = ot_batch_cost(32, 0, rng);
  std::vector<Index> first, again;
  const double v1 = solver.solve(c, first);
  solver.solve(ot_batch_cost(16, 1, rng), again);
  const double v2 = solver.solve(c, again);
  CHECK(first == again);
  CHECK(v1 == v2);
}

TEST_CASE("AuctionAssignmentSolver: bad input throws, naming the argument", "[ot][auction][errors]") {
  std::vector<Index> a;
  AuctionAssignmentSolver solver;
  CHECK_THROWS_WITH(solver.solve(Matrix<double>(0, 0), a), Catch::Contains("cost.rows()"));
  CHECK_THROWS_WITH(solver.solve(Matrix<double>::Zero(2, 3), a), Catch::Contains("square"));
  Matrix<double> c = Matrix<double>::Zero(3, 3);
  c(1, 2) = std::nan("");
  CHECK_THROWS_WITH(solver.solve(c, a), Catch::Contains("cost(1, 2)"));
  CHECK_THROWS_AS(AuctionAssignmentSolver(0.0), InvalidArgument);
  CHECK_THROWS_WITH(AuctionAssignmentSolver(1e-7, 1.0), Catch::Contains("scaling"));
}

}  // namespace FLOWMATCH_TEST_FILE_ID
