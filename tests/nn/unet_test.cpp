// UNetVectorField: the hand-written backward pass against central differences in double (every
// parameter and the input, both condition kinds, several shapes), the threaded split against one
// thread, state round trips, guidance's "no condition", training through CFMTrainer, and errors.

#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <flowmatch.hpp>
#include <flowmatch/io/checkpoint.hpp>
#include <flowmatch/nn/unet_vector_field.hpp>

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

namespace fm = flowmatch;

namespace {

struct ThreadCount {
  int saved = fm::num_threads();
  explicit ThreadCount(int t) { fm::set_num_threads(t); }
  ~ThreadCount() { fm::set_num_threads(saved); }
};

fm::UNetOptions tiny(fm::Index channels, fm::Index h, fm::Index w, std::vector<fm::Index> widths, fm::Index blocks) {
  fm::UNetOptions o;
  o.channels = channels;
  o.height = h;
  o.width = w;
  o.widths = std::move(widths);
  o.blocks = blocks;
  o.groups = 2;
  o.embedding = 6;
  o.frequencies = 2;
  return o;
}

fm::ConditionBatch<double> labels_of(std::initializer_list<fm::Index> ys, std::initializer_list<double> present) {
  fm::ConditionBatch<double> c;
  c.set_labels(static_cast<fm::Index>(ys.size()));
  fm::Index j = 0;
  for (fm::Index y : ys) c.labels(j++) = y;
  j = 0;
  for (double p : present) c.present(j++) = p;
  return c;
}

// L = sum(R .* u(x, t | c)): checks dL/dtheta (every parameter) and dL/dx (every input) against
// central differences; returns the largest relative error.
double check_gradients(fm::UNetVectorField<double>& net, const fm::Matrix<double>& x, const fm::RowVector<double>& t,
                       const fm::ConditionBatch<double>& c) {
  typename fm::UNetVectorField<double>::Workspace ws;
  fm::Rng rng(7);
  fm::Matrix<double> r(net.dim(), x.cols());
  rng.fill_normal(r);
  net.forward_train(x, t, c, ws);
  net.backward(r, ws);
  const fm::Vector<double> grad = net.gradients();
  fm::Matrix<double> gx(net.dim(), x.cols());
  net.input_gradient(ws, gx);
  const auto loss = [&](const fm::Matrix<double>& xx) {
    fm::Matrix<double> out(net.dim(), xx.cols());
    net.forward(xx, t, c, out, ws);
    return (out.array() * r.array()).sum();
  };
  const double h = 1e-6;
  double worst = 0.0;
  const auto compare = [&](double analytic, double numeric, const std::string& what) {
    const double err = std::abs(analytic - numeric) / std::max(1.0, std::abs(numeric));
    if (err > 1e-6) FAIL_CHECK(what << ": analytic " << analytic << " numeric " << numeric);
    worst = std::max(worst, err);
  };
  fm::Vector<double>& p = net.parameters();
  for (fm::Index i = 0; i < p.size(); ++i) {
    const double keep = p(i);
    p(i) = keep + h;
    const double up = loss(x);
    p(i) = keep - h;
    const double down = loss(x);
    p(i) = keep;
    compare(grad(i), (up - down) / (2 * h), "parameter " + std::to_string(i));
  }
  fm::Matrix<double> xx = x;
  for (fm::Index i = 0; i < x.size(); ++i) {
    xx(i) = x(i) + h;
    const double up = loss(xx);
    xx(i) = x(i) - h;
    const double down = loss(xx);
    xx(i) = x(i);
    compare(gx(i), (up - down) / (2 * h), "input " + std::to_string(i));
  }
  return worst;
}

// Moves every GroupNorm gain and FiLM/embedding weight away from its initial value, so that no
// gradient is checked only at a special point (gamma = 1, beta = 0).
void perturb(fm::UNetVectorField<double>& net, std::uint64_t seed) {
  fm::Rng rng(seed);
  for (fm::Index i = 0; i < net.parameters().size(); ++i) net.parameters()(i) += 0.1 * rng.normal();
}

}  // namespace

TEST_CASE("UNetVectorField backward matches central differences (labels, 2 levels, 1 block)", "[nn][unet][gradient]") {
  ThreadCount one(1);
  fm::UNetVectorField<double> net(tiny(1, 4, 4, {2, 4}, 1), fm::ConditionKind::Label, 3, 1);
  perturb(net, 2);
  fm::Rng rng(3);
  fm::Matrix<double> x(16, 3);
  rng.fill_normal(x);
  fm::RowVector<double> t(3);
  t << 0.1, 0.55, 0.9;
  CHECK(check_gradients(net, x, t, labels_of({0, 2, 1}, {1, 1, 0})) < 1e-6);
}

TEST_CASE("UNetVectorField backward matches central differences (context vectors, 3 channels, 3 levels, 2 blocks)",
          "[nn][unet][gradient]") {
  ThreadCount one(1);
  fm::UNetVectorField<double> net(tiny(3, 4, 8, {2, 4, 4}, 2), fm::ConditionKind::Vector, 2, 5);
  perturb(net, 6);
  fm::Rng rng(8);
  fm::Matrix<double> x(3 * 32, 2);
  rng.fill_normal(x);
  fm::RowVector<double> t(2);
  t << 0.3, 0.8;
  fm::ConditionBatch<double> c;
  c.set_context(2, 2);
  c.context << 0.5, -1.0, 2.0, 0.25;
  c.present << 1, 0;
  CHECK(check_gradients(net, x, t, c) < 1e-6);
}

TEST_CASE("Direct 3x3 convolution kernel computes what im2col + GEMM does (float)", "[nn][unet][conv]") {
  namespace du = fm::detail::unet;
  if (!du::conv_direct_available<float>(8)) {
    WARN("the direct convolution kernel is not compiled in (needs AVX2 and FMA): only the portable path runs");
    return;
  }
  const du::ConvKind kinds[] = {du::ConvKind::k3, du::ConvKind::k3_stride2, du::ConvKind::up2_k3};
  fm::Rng rng(11);
  int compared = 0;
  for (const du::ConvKind kind : kinds)
    for (const fm::Index cin : {3, 8, 16})
      for (const fm::Index cout : {8, 24, 32}) {
        const fm::Index h = 5, w = 7, n = 3;
        const du::Conv conv(cin, cout, h, w, kind, 0);
        fm::Vector<float> params(conv.num_params());
        rng.fill_normal(params);
        fm::Matrix<float> x(cin, conv.hw_in() * n), dy(cout, conv.hw_out() * n);
        rng.fill_normal(x);
        rng.fill_normal(dy);
        fm::Matrix<float> y_direct(cout, conv.hw_out() * n), y_portable(cout, conv.hw_out() * n);
        fm::Vector<float> scratch, dscratch;
        conv.forward(params.data(), x, y_direct, scratch, n, false);
        conv.forward(params.data(), x, y_portable, scratch, n, true);
        INFO("kind " << static_cast<int>(kind) << " cin " << cin << " cout " << cout);
        CHECK((y_direct - y_portable).cwiseAbs().maxCoeff() <= 1e-4f * (1.0f + y_portable.cwiseAbs().maxCoeff()));
        // Backward: dL/dx accumulates into what dx holds.
        fm::Matrix<float> dx0(cin, conv.hw_in() * n);
        rng.fill_normal(dx0);
        fm::Matrix<float> dx_direct = dx0, dx_portable = dx0;
        fm::Vector<float> g_direct = fm::Vector<float>::Zero(conv.num_params()), g_portable = g_direct;
        conv.backward(params.data(), g_direct.data(), x, dy, &dx_direct, scratch, dscratch, n, false);
        conv.backward(params.data(), g_portable.data(), x, dy, &dx_portable, scratch, dscratch, n, true);
        CHECK((dx_direct - dx_portable).cwiseAbs().maxCoeff() <= 1e-4f * (1.0f + dx_portable.cwiseAbs().maxCoeff()));
        CHECK((g_direct - g_portable).cwiseAbs().maxCoeff() <= 1e-4f * (1.0f + g_portable.cwiseAbs().maxCoeff()));
        CHECK((dx_direct - dx0).cwiseAbs().maxCoeff() > 0.1f);  // something was added
        ++compared;
      }
  CHECK(compared == 27);
}

TEST_CASE("UNetVectorField: two threads compute what one does", "[nn][unet]") {
  fm::UNetVectorField<float> net(tiny(1, 8, 8, {4, 8}, 1), fm::ConditionKind::Label, 10, 4);
  fm::Rng rng(9);
  fm::Matrix<float> x(64, 5), r(64, 5);
  rng.fill_normal(x);
  rng.fill_normal(r);
  fm::ConditionBatch<float> c;
  c.set_labels(5);
  c.labels << 0, 3, 9, 10, 5;
  fm::Matrix<float> out1, out2;
  fm::Vector<float> g1, g2;
  for (int threads : {1, 2}) {
    ThreadCount tc(threads);
    fm::UNetVectorField<float>::Workspace ws;
    const fm::Matrix<float> out = net.forward_train(x, 0.4, c, ws);
    net.backward(r, ws);
    (threads == 1 ? out1 : out2) = out;
    (threads == 1 ? g1 : g2) = net.gradients();
  }
  // The same function; GEMM blocking over other column counts may round differently.
  CHECK((out1 - out2).cwiseAbs().maxCoeff() <= 1e-5f * out1.cwiseAbs().maxCoeff());
  CHECK((g1 - g2).norm() <= 1e-5f * g1.norm());  // and the parts' gradients are summed in another order
}

namespace {

// Two classes of 8 x 8 images: a bright left half (class 0) or a bright top half (class 1), with
// a little noise.
fm::Empirical two_class_images(fm::Index per_class, std::uint64_t seed) {
  fm::Rng rng(seed);
  fm::Matrix<double> x(64, 2 * per_class);
  fm::Vector<fm::Index> y(2 * per_class);
  for (fm::Index j = 0; j < x.cols(); ++j) {
    y(j) = j % 2;
    for (fm::Index r = 0; r < 8; ++r)
      for (fm::Index q = 0; q < 8; ++q) x(r * 8 + q, j) = ((y(j) == 0 ? q : r) < 4 ? 0.8 : -0.8) + 0.05 * rng.normal();
  }
  return fm::Empirical::with_labels(std::move(x), std::move(y), 2);
}

}  // namespace

TEST_CASE("UNetVectorField trains through CFMTrainer with label dropout; guided samples show their class",
          "[nn][unet][train]") {
  ThreadCount two(2);
  fm::UNetOptions o = tiny(1, 8, 8, {8, 16}, 1);
  o.embedding = 32;
  o.frequencies = 4;
  fm::UNetVectorField<float> net(o, fm::ConditionKind::Label, 2, 3);
  fm::Adam<float> adam(3e-3);
  fm::TrainerOptions options;
  options.condition_dropout = 0.2;
  fm::CFMTrainer trainer(fm::GaussianConditionalPath(two_class_images(64, 4), fm::LinearAlpha{}, fm::LinearBeta{}), net,
                         adam, 5, options);
  const std::vector<double> losses = trainer.train(300, 32);
  double first = 0, last = 0;
  for (int k = 0; k < 20; ++k) first += losses[static_cast<std::size_t>(k)], last += losses[losses.size() - 1 - static_cast<std::size_t>(k)];
  INFO("mean loss of the first 20 steps " << first / 20 << ", of the last 20 " << last / 20);
  CHECK(last < 0.5 * first);
  // Guided samples of each class: class 0 brighter on the left half, class 1 on the top half.
  fm::Vector<fm::Index> labels(40);
  for (fm::Index j = 0; j < 40; ++j) labels(j) = j % 2;
  fm::Rng rng(9);
  fm::Matrix<float> x(64, 40);
  fm::StandardNormal(64).sample(rng, x);
  fm::GuidedVectorFieldODE ode(net, labels, 1.0);
  fm::ODESimulator<decltype(ode), fm::MidpointStepper<float>>(ode).simulate_inplace(x, fm::linspace(0.0, 1.0, 11));
  REQUIRE(x.allFinite());
  int right = 0;
  for (fm::Index j = 0; j < 40; ++j) {
    double left = 0, top = 0;
    for (fm::Index r = 0; r < 8; ++r)
      for (fm::Index q = 0; q < 8; ++q) {
        left += (q < 4 ? 1 : -1) * x(r * 8 + q, j);
        top += (r < 4 ? 1 : -1) * x(r * 8 + q, j);
      }
    right += (labels(j) == 0) == (left > top);
  }
  CHECK(right >= 38);
}

TEST_CASE("UNetVectorField state: a checkpoint round trip gives the same function; another shape is refused",
          "[nn][unet][state]") {
  fm::UNetVectorField<float> net(tiny(1, 8, 8, {4, 8}, 1), fm::ConditionKind::Label, 3, 1);
  fm::Rng rng(2);
  for (fm::Index i = 0; i < net.parameters().size(); ++i) net.parameters()(i) += 0.01f * static_cast<float>(rng.normal());
  const std::string file = (std::filesystem::temp_directory_path() / "flowmatch_unet_state_test.safetensors").string();
  fm::save_checkpoint(file, net);
  fm::UNetVectorField<float> other(tiny(1, 8, 8, {4, 8}, 1), fm::ConditionKind::Label, 3, 99);
  REQUIRE(other.parameters() != net.parameters());
  fm::load_checkpoint(file, other);
  CHECK(other.parameters() == net.parameters());
  fm::UNetVectorField<float> wider(tiny(1, 8, 8, {4, 6}, 1), fm::ConditionKind::Label, 3, 1);
  CHECK_THROWS_AS(fm::load_checkpoint(file, wider), fm::CheckpointMismatchError);
  fm::UNetVectorField<float> vector(tiny(1, 8, 8, {4, 8}, 1), fm::ConditionKind::Vector, 3, 1);
  CHECK_THROWS_AS(fm::load_checkpoint(file, vector), fm::CheckpointMismatchError);
  // The layers' names and shapes (convolutions in HWIO order).
  const fm::StateDict dict = fm::read_checkpoint(file);
  const fm::StateReader r(dict, file);
  CHECK(r.text("model.type") == "unet_field");
  CHECK(r.shape("model.stem.weight") == std::vector<std::int64_t>{3, 3, 1, 4});
  CHECK(r.shape("model.label.weight") == std::vector<std::int64_t>{4, 6});
  std::filesystem::remove(file);
}

TEST_CASE("UNetVectorField: bad options and inputs throw, naming the argument", "[nn][unet][errors]") {
  using fm::ConditionKind;
  fm::UNetOptions o = tiny(1, 6, 6, {4, 8, 8}, 1);
  CHECK_THROWS_WITH(fm::UNetVectorField<float>(o, ConditionKind::Label, 3), Catch::Contains("divisible by 2^(levels - 1) = 4"));
  o = tiny(1, 8, 8, {4, 6}, 1);
  o.groups = 4;
  CHECK_THROWS_WITH(fm::UNetVectorField<float>(o, ConditionKind::Label, 3), Catch::Contains("options.widths[i]"));
  o = tiny(1, 8, 8, {4, 8}, 1);
  CHECK_THROWS_AS(fm::UNetVectorField<float>(o, ConditionKind::None, 3), fm::InvalidArgument);
  CHECK_THROWS_WITH(fm::UNetVectorField<float>(o, ConditionKind::Label, 0), Catch::Contains("num_classes"));
  fm::UNetVectorField<float> net(o, ConditionKind::Label, 3, 1);
  fm::UNetVectorField<float>::Workspace ws;
  fm::Matrix<float> x(64, 2), bad(63, 2), out(64, 2);
  x.setZero();
  fm::ConditionBatch<float> c;
  c.set_labels(2);
  c.labels << 0, 5;
  CHECK_THROWS_WITH(net.forward(x, 0.5, c, out, ws), Catch::Contains("labels[1]"));
  c.labels << 0, 1;
  CHECK_THROWS_AS(net.forward(bad, 0.5, c, out, ws), fm::DimensionMismatch);
  CHECK_THROWS_WITH(net.forward(x, 1.5, c, out, ws), Catch::Contains("time must lie in [0, 1]"));
  CHECK_THROWS_AS(net.backward(x, ws), fm::InvalidArgument);  // no forward_train yet
  net.forward(x, 0.5, c, out, ws);
  CHECK(out.allFinite());
}

}  // namespace FLOWMATCH_TEST_FILE_ID
