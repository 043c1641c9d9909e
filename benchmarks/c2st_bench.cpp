// flowmatch::c2st between two .npy files (rows = samples), timed: the C++ half of
// benchmarks/c2st_check.py, which compares it with scikit-learn (benchmarks/c2st_sklearn.py).
//   c2st_bench REFERENCE.npy SAMPLES.npy [seed] [threads]
// prints: accuracy epochs_total wall_seconds cpu_seconds (CPU time of all threads)

#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include <flowmatch/io/npy.hpp>
#include <flowmatch/metrics/c2st.hpp>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s REFERENCE.npy SAMPLES.npy [seed] [threads]\n", argv[0]);
    return 2;
  }
  try {
    const auto x = flowmatch::read_npy<float>(argv[1]);
    const auto y = flowmatch::read_npy<float>(argv[2]);
    flowmatch::C2STOptions o;
    if (argc > 3) o.seed = std::strtoull(argv[3], nullptr, 10);
    if (argc > 4) o.threads = std::atoi(argv[4]);
    const std::clock_t c0 = std::clock();
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = flowmatch::c2st_detailed(x, y, o);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
    std::printf("%.6f %lld %.3f %.3f\n", r.accuracy, r.epochs_total, s, cpu);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
