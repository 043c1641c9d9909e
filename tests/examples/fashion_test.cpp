// Smoke test of examples/fashion's core (examples/fashion/fashion_model.hpp): a short training on a
// subset of Fashion-MNIST (or, when the data set is missing, on synthetic 784-D class-conditional
// images, saying so loudly) lowers the loss, checkpoints round-trip, and guided sampling gives
// finite 784 x n images in the pixel range.

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include "fashion_model.hpp"

using namespace flowmatch;
namespace ff = flowmatch::fashion;
namespace fs = std::filesystem;

TEST_CASE("fashion example: a short training lowers the loss and guided sampling gives images", "[examples][fashion]") {
  LabeledImages data;
  if (const auto dir = find_fashion_mnist()) {
    data = read_fashion_mnist(*dir, true, 2000);
  } else {
    WARN("Fashion-MNIST not found (install the Debian package dataset-fashion-mnist): the fashion smoke test "
         "trains on SYNTHETIC 784-D images instead");
    std::printf("WARNING: flowmatch: Fashion-MNIST not found: the fashion smoke test used synthetic images "
                "(install dataset-fashion-mnist)\n");
    data = ff::synthetic_images(200, 10, 5);
  }
  REQUIRE(data.images.rows() == 784);
  const ff::LabelledImageSet set(data);
  ff::ModelConfig mc;
  mc.hidden = {256, 256};
  mc.frequencies = 4;
  ff::TrainConfig tc;
  tc.batch = 64;
  tc.lr = 2e-3;
  tc.warmup = 20;
  tc.ema_decay = 0.9;
  tc.seed = 3;
  ff::FashionFlow flow(set, mc, tc);
  const int steps = 300;
  std::vector<double> losses;
  for (int k = 0; k < steps; ++k) losses.push_back(flow.step(static_cast<double>(k) / steps));
  REQUIRE(flow.steps_done() == steps);
  const double first = std::accumulate(losses.begin(), losses.begin() + 30, 0.0) / 30.0;
  const double last = std::accumulate(losses.end() - 30, losses.end(), 0.0) / 30.0;
  INFO("mean loss of the first 30 steps " << first << ", of the last 30 " << last);
  // The loss starts near E|z - eps|^2 / 784 (about 1.5 on Fashion-MNIST) and must drop clearly.
  CHECK(last < 0.8 * first);

  // Checkpoint round trip: a second flow loads the same weights and EMA.
  const fs::path dir = fs::temp_directory_path() / ("flowmatch_fashion_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  flow.save(dir / "c.fmck", dir / "c-ema.fmck");
  ff::FashionFlow other(set, mc, tc);
  other.load(dir / "c.fmck", dir / "c-ema.fmck");
  CHECK(other.steps_done() == steps);
  CHECK(other.model().parameters() == flow.model().parameters());
  CHECK(other.ema_model().parameters() == flow.ema_model().parameters());
  fs::remove_all(dir);

  const ff::Model sampler = flow.ema_model();
  Vector<Index> labels(40);
  for (Index j = 0; j < 40; ++j) labels(j) = j % 10;
  Rng rng(9);
  Matrix<float> x0(784, 40);
  StandardNormal(784).sample(rng, x0);
  for (const double w : {0.0, 2.0}) {
    const Matrix<float> x = ff::sample_images(sampler, labels, w, ff::Solver::Midpoint, 8, x0, 16);
    REQUIRE(x.rows() == 784);
    REQUIRE(x.cols() == 40);
    REQUIRE(x.allFinite());
    INFO("guidance " << w << ": pixel range [" << x.minCoeff() << ", " << x.maxCoeff() << "]");
    CHECK(x.minCoeff() > -2.0f);
    CHECK(x.maxCoeff() < 2.0f);
    // Closer to the data's pixel statistics than the noise it started from.
    CHECK(std::abs(x.mean() - data.images.mean()) < 0.25);
    CHECK((x - x0).norm() > 0.1 * x0.norm());
  }
  CHECK_THROWS_AS(ff::parse_solver("rk5"), InvalidArgument);
  CHECK(ff::solver_steps(ff::Solver::RK4, 40) == 10);
}
