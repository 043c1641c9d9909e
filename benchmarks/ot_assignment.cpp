// The per-batch OT assignment of OT-CFM: the exact solver (AssignmentSolver, shortest augmenting
// paths) against the auction (AuctionAssignmentSolver) on the cost matrices of training batches:
// N(0, I) against moons and against 8 Gaussians (radius 5), batch sizes 128 to 1024. Median time
// of `--reps` solves each, whether the auction found the same permutation, and its total cost's
// excess over the optimum (relative).
//   build/benchmarks/flowmatch_ot_assignment [--reps 5]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <flowmatch/core/random.hpp>
#include <flowmatch/ot/assignment.hpp>
#include <flowmatch/ot/auction.hpp>

namespace fm = flowmatch;

namespace {

fm::Matrix<double> batch_cost(fm::Index n, int kind, fm::Rng& rng) {
  fm::Matrix<double> a(2, n), b(2, n);
  for (fm::Index j = 0; j < n; ++j) {
    a(0, j) = rng.normal();
    a(1, j) = rng.normal();
    if (kind == 0) {
      const double u = rng.uniform() * 3.141592653589793;
      b(0, j) = 2.0 * std::cos(u) - 1.0 + 0.1 * rng.normal();
      b(1, j) = 2.0 * std::sin(u) + 0.1 * rng.normal();
    } else {
      const double angle = 0.7853981633974483 * static_cast<double>(rng.below(8));
      b(0, j) = 5.0 * std::cos(angle) + rng.normal();
      b(1, j) = 5.0 * std::sin(angle) + rng.normal();
    }
  }
  fm::Matrix<double> c(n, n);
  for (fm::Index i = 0; i < n; ++i)
    for (fm::Index j = 0; j < n; ++j) c(i, j) = (a.col(i) - b.col(j)).squaredNorm();
  return c;
}

template <class F>
double median_ms(int reps, F&& f) {
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 5;
  for (int i = 1; i + 1 < argc; i += 2)
    if (std::string(argv[i]) == "--reps") reps = std::max(1, std::stoi(argv[i + 1]));
  std::printf("| data | n | exact ms | auction ms | ratio | same permutation | cost excess |\n|---|---:|---:|---:|---:|---|---:|\n");
  fm::Rng rng(2026);
  for (int kind : {0, 1})
    for (fm::Index n : {128, 256, 512, 1024}) {
      const fm::Matrix<double> c = batch_cost(n, kind, rng);
      fm::AssignmentSolver exact;
      fm::AuctionAssignmentSolver auction;
      std::vector<fm::Index> pe, pa;
      double ce = 0.0, ca = 0.0;
      const double te = median_ms(reps, [&] { ce = exact.solve(c, pe); });
      const double ta = median_ms(reps, [&] { ca = auction.solve(c, pa); });
      // The auction's total cost above the optimum, relative to the optimum.
      std::printf("| %s | %ld | %.2f | %.2f | %.1fx | %s | %.1e |\n", kind == 0 ? "N -> moons" : "N -> 8 Gaussians",
                  static_cast<long>(n), te, ta, te / ta, pe == pa ? "yes" : "no", (ca - ce) / ce);
      std::fflush(stdout);
    }
  return 0;
}
