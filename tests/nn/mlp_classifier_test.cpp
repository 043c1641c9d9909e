// MLPClassifier: the parameter gradient of loss_and_gradient against five-point differences of
// the loss in double (computed through logits(), the inference path: an independent route),
// logits() and features() against a plain double forward pass (support/reference_mlp.hpp), a
// training run on a problem no linear classifier solves (with the default Adam and with another
// optimizer), state round trips, classification_accuracy, feature_moments, errors.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>


#include <flowmatch/core/random.hpp>
#include <flowmatch/core/state.hpp>
#include <flowmatch/metrics/classification.hpp>
#include <flowmatch/nn/mlp_classifier.hpp>
#include <flowmatch/optim/sgd.hpp>
#include <flowmatch/train/classifier_trainer.hpp>

#include "support/errors.hpp"
#include "support/compare.hpp"
#include "support/gradient_check.hpp"
#include "support/reference_mlp.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

static_assert(Stateful<MLPClassifier<float>>);
static_assert(Stateful<MLPClassifier<double>>);

Eigen::VectorXi random_labels(Index n, Index classes, Rng& rng) {
  Eigen::VectorXi y(n);
  for (Index j = 0; j < n; ++j) y(j) = static_cast<int>(rng.below(static_cast<std::uint64_t>(classes)));
  return y;
}

// Three classes in 5-D that no linear classifier separates: classes 0 and 1 are an XOR in the
// first two coordinates (0 at (2, 2) and (-2, -2), 1 at (2, -2) and (-2, 2)), class 2 sits at
// (0, 0, 3, 0, 0); unit noise everywhere. Bayes accuracy is about 0.96; a linear classifier
// cannot tell 0 from 1 (their class means coincide), so it stays near 2/3.
void make_xor_blobs(Index n, std::uint64_t seed, Matrix<float>& x, Eigen::VectorXi& y) {
  Rng rng(seed);
  x.resize(5, n);
  y.resize(n);
  for (Index j = 0; j < n; ++j) {
    const int c = static_cast<int>(rng.below(3));
    y(j) = c;
    for (Index i = 0; i < 5; ++i) x(i, j) = static_cast<float>(rng.normal());
    if (c == 2) {
      x(2, j) += 3.0f;
    } else {
      const float s = rng.below(2) == 0 ? 2.0f : -2.0f;
      x(0, j) += s;
      x(1, j) += c == 0 ? s : -s;
    }
  }
}


}  // namespace

TEST_CASE("MLPClassifier: shapes and accessors and constructor errors", "[classifier]") {
  const MLPClassifier<float> clf(784, 10, {64, 32}, 3);
  CHECK(clf.input_dim() == 784);
  CHECK(clf.num_classes() == 10);
  CHECK(clf.feature_dim() == 32);
  CHECK(clf.num_parameters() == (64 * 784 + 64) + (32 * 64 + 32) + (10 * 32 + 10));
  CHECK(clf.parameters().size() == clf.num_parameters());
  CHECK(clf.layer_widths() == std::vector<Index>{784, 64, 32, 10});
  CHECK(MLPClassifier<float>(3, 2, {5}).feature_dim() == 5);
  // Deterministic initialisation from the seed.
  CHECK(MLPClassifier<float>(784, 10, {64, 32}, 3).parameters() == clf.parameters());
  CHECK(MLPClassifier<float>(784, 10, {64, 32}, 4).parameters() != clf.parameters());

  CHECK_THROWS_AS(MLPClassifier<float>(4, 3, {}), InvalidArgument);
  CHECK(test::error_message([] { MLPClassifier<float>(4, 3, {}); }).find("hidden") != std::string::npos);
  CHECK(test::error_message([] { MLPClassifier<float>(0, 3, {8}); }).find("input_dim") != std::string::npos);
  CHECK(test::error_message([] { MLPClassifier<float>(4, 1, {8}); }).find("num_classes") != std::string::npos);
  const std::string m = test::error_message([] { MLPClassifier<float>(4, 3, {8, 0}); });
  CHECK(m.find("hidden[1]") != std::string::npos);
  CHECK(m.find("= 0") != std::string::npos);
}

TEST_CASE("MLPClassifier: parameter gradient matches finite differences in double", "[classifier][gradient]") {
  for (const std::vector<Index>& hidden : {std::vector<Index>{6}, std::vector<Index>{6, 5}, std::vector<Index>{4, 7, 3}}) {
    MLPClassifier<double> clf(4, 3, hidden, 21);
    Rng rng(5);
    Matrix<double> x(4, 11);
    rng.fill_normal(x);
    const Eigen::VectorXi y = random_labels(11, 3, rng);
    MLPClassifier<double>::Workspace ws, ws_loss;
    const double loss = clf.loss_and_gradient(x, y, ws);
    const Vector<double> analytic = clf.gradients();
    Matrix<double> logits(3, 11);
    auto f = [&] {
      clf.logits(x, logits, ws_loss);
      return softmax_cross_entropy(logits, y);
    };
    CHECK(f() == Approx(loss).epsilon(1e-12));
    double worst = 0.0;
    for (Index i = 0; i < clf.num_parameters(); ++i) {
      const double numeric = test::five_point_difference(f, clf.parameters()(i), 1e-3);
      // Relative error with a floor: gradients below 1e-4 are held to an absolute 1e-10.
      worst = test::worse(worst, test::relative_error(analytic(i), numeric, 1e-4));
    }
    INFO("hidden layers " << hidden.size() << ": worst relative error " << worst);
    CHECK(worst < 1e-6);
    CHECK(test::max_abs(analytic) > 1e-3);
  }
}

TEST_CASE("MLPClassifier: logits and features match a plain double forward pass", "[classifier]") {
  // One to three hidden layers, narrow and wide inputs.
  struct Case {
    Index input;
    std::vector<Index> hidden;
  };
  for (const Case& c : {Case{5, {32}}, Case{5, {32, 16}}, Case{20, {24, 12}}, Case{5, {16, 40, 8}}}) {
    const MLPClassifier<float> clf(c.input, 4, c.hidden, 9);
    Rng rng(1);
    Matrix<float> x(c.input, 77);  // not a multiple of the 32-column blocks
    rng.fill_normal(x);
    const test::ReferenceForward ref = test::reference_forward(clf.network(), x.cast<double>());
    const Eigen::MatrixXd ref_features =
        ref.pre.back().unaryExpr([](double v) { return SiLU::value<double>(v); });
    MLPClassifier<float>::Workspace ws;
    Matrix<float> logits(4, 77), features(clf.feature_dim(), 77);
    clf.logits(x, logits, ws);
    clf.features(x, features, ws);
    INFO("input " << c.input << ", " << c.hidden.size() << " hidden layers");
    CHECK(features.rows() == c.hidden.back());
    CHECK(test::max_abs(features.cast<double>() - ref_features) < 1e-4 * (1.0 + test::max_abs(ref_features)));
    CHECK(test::max_abs(logits.cast<double>() - ref.out) < 1e-4 * (1.0 + test::max_abs(ref.out)));
    // A double output and a block of a bigger matrix work too; and predict() is the argmax.
    Matrix<double> wide = Matrix<double>::Constant(clf.feature_dim() + 2, 80, -7.0);
    clf.features(x, wide.block(1, 2, clf.feature_dim(), 77), ws);
    CHECK(test::max_abs(wide.block(1, 2, clf.feature_dim(), 77) - features.cast<double>()) == 0.0);
    CHECK(wide(0, 0) == -7.0);
    Eigen::VectorXi predicted(77);
    clf.predict(x, predicted, ws);
    for (Index j = 0; j < 77; ++j) {
      Index best = 0;
      ref.out.col(j).maxCoeff(&best);
      // float vs double rounding may only flip near-ties
      if (predicted(j) != best) CHECK(ref.out(best, j) - ref.out(predicted(j), j) < 1e-4);
    }
  }
}

TEST_CASE("train_classifier learns a problem no linear classifier solves", "[classifier][train]") {
  Matrix<float> x, x_test;
  Eigen::VectorXi y, y_test;
  make_xor_blobs(3000, 1, x, y);
  make_xor_blobs(1500, 2, x_test, y_test);
  MLPClassifier<float> clf(5, 3, {32, 32}, 7);
  const double before = classification_accuracy(clf, x_test, y_test);
  ClassifierTrainingOptions opt;
  opt.epochs = 15;
  opt.batch = 64;
  opt.learning_rate = 3e-3;
  opt.seed = 11;
  std::vector<double> losses;
  train_classifier(clf, x, y, opt, [&](Index epoch, double loss) {
    CHECK(epoch == static_cast<Index>(losses.size()) + 1);
    losses.push_back(loss);
  });
  REQUIRE(losses.size() == 15);
  const double after = classification_accuracy(clf, x_test, y_test);
  INFO("test accuracy before " << before << ", after " << after << "; loss " << losses.front() << " -> "
                               << losses.back());
  CHECK(after > 0.9);  // a linear classifier: about 2/3; chance: 1/3
  CHECK(losses.back() < 0.5 * losses.front());
  CHECK(losses.back() < 0.25);
  // The same accuracy in any batch size; predict() agrees.
  CHECK(classification_accuracy(clf, x_test, y_test, 7) == after);
  MLPClassifier<float>::Workspace ws;
  Eigen::VectorXi predicted(1500);
  clf.predict(x_test, predicted, ws);
  CHECK(static_cast<double>((predicted.array() == y_test.array()).count()) / 1500.0 == after);
  // Reproducible: the same options give the same parameters.
  MLPClassifier<float> again(5, 3, {32, 32}, 7);
  train_classifier(again, x, y, opt);
  CHECK(again.parameters() == clf.parameters());
  // Labels are checked before the first step.
  Eigen::VectorXi bad = y;
  bad(1234) = 3;
  const Vector<float> saved = clf.parameters();
  const std::string m = test::error_message([&] { train_classifier(clf, x, bad, opt); });
  CHECK(m.find("labels[1234]") != std::string::npos);
  CHECK(clf.parameters() == saved);
}

TEST_CASE("train_classifier takes any optimizer", "[classifier][train]") {
  Matrix<float> x, x_test;
  Eigen::VectorXi y, y_test;
  make_xor_blobs(2000, 3, x, y);
  make_xor_blobs(1000, 4, x_test, y_test);
  MLPClassifier<float> clf(5, 3, {32, 32}, 7);
  SGD<float> sgd(0.1, 0.9);
  ClassifierTrainingOptions opt;
  opt.epochs = 10;
  opt.batch = 64;
  opt.learning_rate = -1.0;  // not used: the optimizer has its own
  opt.seed = 3;
  std::vector<double> losses;
  train_classifier(clf, sgd, x, y, opt, [&](Index, double loss) { losses.push_back(loss); });
  REQUIRE(losses.size() == 10);
  CHECK(sgd.steps_taken() == 10 * ((2000 + 63) / 64));
  const double acc = classification_accuracy(clf, x_test, y_test);
  INFO("SGD: test accuracy " << acc << ", loss " << losses.front() << " -> " << losses.back());
  CHECK(acc > 0.85);
  CHECK(losses.back() < 0.5 * losses.front());
}

TEST_CASE("MLPClassifier: state round trip and feature_moments", "[classifier][state]") {
  MLPClassifier<float> clf(6, 4, {16, 8}, 2);
  clf.parameters().array() += 0.25f;  // not what any seed draws
  StateDict dict;
  save_state_parts(dict, clf);  // default scope "model", the network under "net"
  REQUIRE(dict.find_attribute("model.type") != nullptr);
  CHECK(*dict.find_attribute("model.type") == "mlp_classifier");
  CHECK(*dict.find_attribute("model.net.type") == "mlp");
  CHECK(*dict.find_attribute("model.net.widths") == "[6,16,8,4]");
  REQUIRE(dict.find_tensor("model.net.4.weight") != nullptr);
  CHECK(dict.find_tensor("model.net.4.weight")->shape == std::vector<std::int64_t>{4, 8});
  MLPClassifier<float> loaded(6, 4, {16, 8}, 99);
  load_state_parts(dict, "classifier", loaded);
  CHECK(loaded.parameters() == clf.parameters());
  MLPClassifier<float> other_shape(6, 4, {16, 9}, 2);
  const Vector<float> before = other_shape.parameters();
  CHECK_THROWS_AS(load_state_parts(dict, "classifier", other_shape), CheckpointMismatchError);
  CHECK(other_shape.parameters() == before);
  // A plain MLP's state is not a classifier's.
  StateDict plain;
  save_state_parts(plain, clf.network());
  CHECK_THROWS_WITH(load_state_parts(plain, "plain", loaded), Catch::Contains("mlp_classifier"));

  Rng rng(4);
  Matrix<float> x(6, 500);
  rng.fill_normal(x);
  MLPClassifier<float>::Workspace ws;
  Matrix<float> f(8, 500);
  clf.features(x, f, ws);
  const GaussianMoments direct = gaussian_moments(f);
  const GaussianMoments batched = feature_moments(clf, x, 64);
  CHECK(batched.count == 500);
  CHECK(test::max_abs(batched.mean - direct.mean) < 1e-12 * (1.0 + test::max_abs(direct.mean)));
  CHECK(test::max_abs(batched.covariance - direct.covariance) < 1e-12 * (1.0 + test::max_abs(direct.covariance)));
}

TEST_CASE("MLPClassifier: bad inputs throw naming the argument", "[classifier][errors]") {
  MLPClassifier<float> clf(3, 4, {8}, 1);
  MLPClassifier<float>::Workspace ws;
  Matrix<float> x = Matrix<float>::Zero(3, 5);
  Eigen::VectorXi y(5);
  y << 0, 1, 2, 3, 4;
  const std::string m = test::error_message([&] { clf.loss_and_gradient(x, y, ws); });
  CHECK(m.find("MLPClassifier::loss_and_gradient") != std::string::npos);
  CHECK(m.find("labels[4]") != std::string::npos);
  CHECK(m.find("= 4") != std::string::npos);
  y(4) = 0;
  CHECK_NOTHROW(clf.loss_and_gradient(x, y, ws));
  CHECK_THROWS_AS(clf.loss_and_gradient(Matrix<float>::Zero(4, 5), y, ws), DimensionMismatch);
  CHECK_THROWS_AS(clf.loss_and_gradient(x, y.head(4), ws), DimensionMismatch);
  Matrix<float> logits(4, 4), features(8, 5);
  CHECK_THROWS_AS(clf.logits(x, logits, ws), DimensionMismatch);
  CHECK_THROWS_AS(clf.features(x, Matrix<float>(7, 5), ws), DimensionMismatch);
  Eigen::VectorXi out(4);
  CHECK_THROWS_AS(clf.predict(x, out, ws), DimensionMismatch);
  CHECK_THROWS_AS(clf.logits(Matrix<float>(3, 0), Matrix<float>(4, 0), ws), InvalidArgument);
  CHECK_THROWS_AS(classification_accuracy(clf, x, y, 0), InvalidArgument);
  CHECK_THROWS_AS(feature_moments(clf, x.leftCols(1)), InvalidArgument);
  ClassifierTrainingOptions opt;
  opt.batch = 0;
  CHECK(test::error_message([&] { train_classifier(clf, x, y, opt); }).find("opt.batch") != std::string::npos);
  opt.batch = 2;
  opt.learning_rate = -1.0;
  CHECK_THROWS_AS(train_classifier(clf, x, y, opt), InvalidArgument);
  // A NaN input makes the loss not finite: NumericalError, parameters untouched.
  x(1, 2) = std::numeric_limits<float>::quiet_NaN();
  const Vector<float> saved = clf.parameters();
  CHECK_THROWS_AS(clf.loss_and_gradient(x, y, ws), NumericalError);
  CHECK(clf.parameters() == saved);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
