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

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

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
  const int steps = 800;
  std::vector<double> losses;
  for (int k = 0; k < steps; ++k) losses.push_back(flow.step(static_cast<double>(k) / steps));
  REQUIRE(flow.steps_done() == steps);
  const double first = std::accumulate(losses.begin(), losses.begin() + 30, 0.0) / 30.0;
  const double last = std::accumulate(losses.end() - 30, losses.end(), 0.0) / 30.0;
  INFO("mean loss of the first 30 steps " << first << ", of the last 30 " << last);
  // The loss starts near E|z - eps|^2 / 784 (about 1.5 on Fashion-MNIST) and must drop clearly.
  CHECK(last < 0.85 * first);

  // Checkpoint round trip: a second flow loads the same weights and EMA.
  const fs::path dir = fs::temp_directory_path() / ("flowmatch_fashion_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  flow.save(dir / "c.safetensors");
  ff::FashionFlow other(set, mc, tc);
  other.load(dir / "c.safetensors");
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
  Index own_unguided = 0;
  for (const double w : {0.0, 2.0}) {
    const Matrix<float> x = ff::sample_images(sampler, labels, w, "midpoint", 10, x0, 16);
    REQUIRE(x.rows() == 784);
    REQUIRE(x.cols() == 40);
    REQUIRE(x.allFinite());
    const double inside = (x.array().abs() <= 1.5f).cast<double>().mean();
    INFO("guidance " << w << ": pixel range [" << x.minCoeff() << ", " << x.maxCoeff() << "], " << inside << " inside [-1.5, 1.5], mean " << x.mean() << " vs data " << data.images.mean());
    // A small model after a short training leaves speckle noise in the images, but nothing blows up
    // and most pixels lie in the data's range.
    CHECK(x.cwiseAbs().maxCoeff() < 8.0f);
    CHECK(inside > 0.6);
    // Conditioning works: each image is nearest (of the ten class means of the data) to its own
    // class's mean far more often than chance (10%).
    Matrix<double> means = Matrix<double>::Zero(784, 10);
    Eigen::VectorXd counts = Eigen::VectorXd::Zero(10);
    for (Index j = 0; j < data.size(); ++j) {
      means.col(data.labels(j)) += data.images.col(j).cast<double>();
      counts(data.labels(j)) += 1.0;
    }
    for (Index c = 0; c < 10; ++c) means.col(c) /= counts(c);
    Index own = 0;
    for (Index j = 0; j < x.cols(); ++j) {
      Index best = 0;
      (means.colwise() - x.col(j).cwiseMax(-1.0f).cwiseMin(1.0f).cast<double>()).colwise().squaredNorm().minCoeff(&best);
      own += best == labels(j);
    }
    INFO(own << " of 40 images nearest to their own class mean");
    CHECK(own >= (w == 0.0 ? 12 : 20));
    if (w == 0.0) own_unguided = own;
    else CHECK(own >= own_unguided);  // guidance pushes samples towards their class
    // Closer to the data's pixel statistics than the noise it started from.
    CHECK(std::abs(x.mean() - data.images.mean()) < 0.25);
    CHECK((x - x0).norm() > 0.1 * x0.norm());
  }
  CHECK_THROWS_AS(ff::solver_steps("rk5", 40), InvalidArgument);
  CHECK(ff::solver_steps("rk4", 40) == 10);
  CHECK(ff::solver_steps("euler", 40) == 40);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
