// UNetVectorField: the hand-written backward pass against central differences in double (every
// parameter and the input, both condition kinds, several shapes, with self-attention and with
// dropout), the threaded split against one thread, dropout's masks, state round trips, guidance's
// "no condition", training through CFMTrainer, and errors.

#include <catch2/catch.hpp>

#include <algorithm>
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
// central differences; returns the largest relative error. With dropout, L is forward_train's
// output under the masks of the call that backward differentiated (ws.dropout_step held).
double check_gradients(fm::UNetVectorField<double>& net, const fm::Matrix<double>& x, const fm::RowVector<double>& t,
                       const fm::ConditionBatch<double>& c) {
  typename fm::UNetVectorField<double>::Workspace ws;
  fm::Rng rng(7);
  fm::Matrix<double> r(net.dim(), x.cols());
  rng.fill_normal(r);
  const std::uint64_t step = ws.dropout_step;
  net.forward_train(x, t, c, ws);
  net.backward(r, ws);
  const fm::Vector<double> grad = net.gradients();
  fm::Matrix<double> gx(net.dim(), x.cols());
  net.input_gradient(ws, gx);
  const auto loss = [&](const fm::Matrix<double>& xx) {
    fm::Matrix<double> out(net.dim(), xx.cols());
    if (net.options().dropout > 0) {
      ws.dropout_step = step;
      out = net.forward_train(xx, t, c, ws);
    } else {
      net.forward(xx, t, c, out, ws);
    }
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

TEST_CASE("UNetVectorField backward matches central differences with self-attention (1 and 2 heads)",
          "[nn][unet][gradient][attention]") {
  ThreadCount one(1);
  SECTION("1 head, 2 levels (attention over 2 x 2 pixels), labels") {
    fm::UNetOptions o = tiny(1, 4, 4, {2, 4}, 1);
    o.attention = 1;
    fm::UNetVectorField<double> net(o, fm::ConditionKind::Label, 3, 1);
    perturb(net, 2);  // also moves proj off its zero start
    fm::Rng rng(3);
    fm::Matrix<double> x(16, 2);
    rng.fill_normal(x);
    fm::RowVector<double> t(2);
    t << 0.2, 0.7;
    CHECK(check_gradients(net, x, t, labels_of({0, 2}, {1, 0})) < 1e-6);
  }
  SECTION("2 heads, 1 level (attention over 3 x 4 pixels), 2 channels, context vectors") {
    fm::UNetOptions o = tiny(2, 3, 4, {4}, 1);
    o.attention = 2;
    fm::UNetVectorField<double> net(o, fm::ConditionKind::Vector, 2, 4);
    perturb(net, 5);
    fm::Rng rng(6);
    fm::Matrix<double> x(24, 2);
    rng.fill_normal(x);
    fm::RowVector<double> t(2);
    t << 0.4, 0.95;
    fm::ConditionBatch<double> c;
    c.set_context(2, 2);
    c.context << 1.0, -0.5, 0.25, 2.0;
    c.present << 1, 1;
    CHECK(check_gradients(net, x, t, c) < 1e-6);
  }
}

TEST_CASE("UNetVectorField backward matches central differences under dropout's masks", "[nn][unet][gradient][dropout]") {
  ThreadCount one(1);
  fm::UNetOptions o = tiny(1, 4, 4, {2, 4}, 1);
  o.dropout = 0.3;
  o.attention = 2;
  fm::UNetVectorField<double> net(o, fm::ConditionKind::Label, 3, 1);
  perturb(net, 2);
  fm::Rng rng(4);
  fm::Matrix<double> x(16, 3);
  rng.fill_normal(x);
  fm::RowVector<double> t(3);
  t << 0.1, 0.5, 0.8;
  CHECK(check_gradients(net, x, t, labels_of({0, 1, 2}, {1, 1, 0})) < 1e-6);
}

namespace {

// The dropout factors of the last forward_train with ws, image by image (whatever part held it),
// then residual block by block.
std::vector<float> dropout_factors(const fm::UNetVectorField<float>::Workspace& ws) {
  std::vector<float> f;
  for (const auto& p : ws.parts)
    for (fm::Index j = 0; j < p.n; ++j)
      for (const auto& r : p.res) {
        const fm::Index per = r.mask.size() / p.n;
        f.insert(f.end(), r.mask.data() + j * per, r.mask.data() + (j + 1) * per);
      }
  return f;
}

}  // namespace

TEST_CASE("UNetVectorField dropout: forward_train only, the rate asked for, reproducible masks",
          "[nn][unet][dropout]") {
  fm::UNetOptions o = tiny(1, 8, 8, {4, 8}, 1);
  o.attention = 2;
  fm::UNetOptions o_dropout = o;
  o_dropout.dropout = 0.25;
  const fm::UNetVectorField<float> plain(o, fm::ConditionKind::Label, 3, 7), net(o_dropout, fm::ConditionKind::Label, 3, 7);
  REQUIRE(net.parameters() == plain.parameters());  // dropout does not change the initialisation
  fm::Rng rng(8);
  fm::Matrix<float> x(64, 6);
  rng.fill_normal(x);
  fm::ConditionBatch<float> c;
  c.set_labels(6);
  c.labels << 0, 1, 2, 3, 0, 1;
  fm::UNetVectorField<float>::Workspace ws, ws2, ws_plain;
  fm::Matrix<float> ref(64, 6), out(64, 6);
  plain.forward(x, 0.5, c, ref, ws_plain);
  const fm::Matrix<float> train_plain = plain.forward_train(x, 0.5, c, ws_plain);
  CHECK(train_plain == ref);  // p = 0: forward_train is forward
  net.forward(x, 0.5, c, out, ws);
  CHECK(out == ref);  // forward never drops
  const fm::Matrix<float> first = net.forward_train(x, 0.5, c, ws);
  CHECK(ws.dropout_step == 1);
  CHECK((first - ref).cwiseAbs().maxCoeff() > 1e-3f);
  // The rate, over 6 images x 1024 factors (the second SiLU of each of the 6 residual blocks).
  const std::vector<float> f = dropout_factors(ws);
  REQUIRE(f.size() == 6 * 1024);
  const auto zeros = static_cast<double>(std::count(f.begin(), f.end(), 0.0f));
  const auto kept = static_cast<double>(std::count(f.begin(), f.end(), 1.0f / 0.75f));
  CHECK(zeros + kept == static_cast<double>(f.size()));
  CHECK(std::abs(zeros / static_cast<double>(f.size()) - 0.25) < 0.03);
  // The next call draws other masks; another workspace repeats the sequence; so does setting the
  // step back; and so does another thread count (one stream per image, not per thread).
  const fm::Matrix<float> second = net.forward_train(x, 0.5, c, ws);
  CHECK((second - first).cwiseAbs().maxCoeff() > 1e-3f);
  CHECK(net.forward_train(x, 0.5, c, ws2) == first);
  ws.dropout_step = 0;
  CHECK(net.forward_train(x, 0.5, c, ws) == first);
  for (int threads : {1, 2, 3}) {
    ThreadCount tc(threads);
    fm::UNetVectorField<float>::Workspace wst;
    const fm::Matrix<float> o1 = net.forward_train(x, 0.5, c, wst);
    INFO(threads << " threads");
    CHECK((o1 - first).cwiseAbs().maxCoeff() <= 1e-5f * first.cwiseAbs().maxCoeff());
    CHECK(dropout_factors(wst) == f);
  }
  // Another model seed, other masks.
  const fm::UNetVectorField<float> reseeded(o_dropout, fm::ConditionKind::Label, 3, 8);
  fm::UNetVectorField<float>::Workspace ws3;
  reseeded.forward_train(x, 0.5, c, ws3);
  CHECK(dropout_factors(ws3) != f);
}

namespace {

// Largest differences of the fast path from the portable one, relative to the portable result's
// largest magnitude: y, dL/dx and dL/dW.
struct RelErrors {
  float y = 0, dx = 0, dw = 0;
  void max_with(const RelErrors& o) {
    y = std::max(y, o.y);
    dx = std::max(dx, o.dx);
    dw = std::max(dw, o.dw);
  }
};

// Runs forward and backward of conv on the fast path (with conv.winograd as given, and the Winograd
// tile when tile > 0) and on the portable one (im2col + GEMM), and compares y, dL/dx (accumulated
// onto what dx held), dL/dW and dL/db, each within 1e-4 of the portable result's largest magnitude
// (float). Returns the relative errors.
RelErrors compare_fast_portable(fm::detail::unet::Conv conv, bool winograd, fm::Index n, fm::Rng& rng, int tile = 0) {
  conv.winograd = winograd;
  if (tile > 0) conv.winograd_tile = tile;
  fm::Vector<float> params(conv.num_params());
  rng.fill_normal(params);
  fm::Matrix<float> x(conv.cin, conv.hw_in() * n), dy(conv.cout, conv.hw_out() * n);
  rng.fill_normal(x);
  rng.fill_normal(dy);
  fm::Matrix<float> y_fast(conv.cout, conv.hw_out() * n), y_portable(conv.cout, conv.hw_out() * n);
  fm::Vector<float> scratch, dscratch;
  conv.forward(params.data(), x, y_fast, scratch, n, false);
  conv.forward(params.data(), x, y_portable, scratch, n, true);
  INFO("kind " << static_cast<int>(conv.kind) << " cin " << conv.cin << " cout " << conv.cout << " h " << conv.hin
               << " w " << conv.win << " n " << n << " winograd " << winograd << " tile " << conv.winograd_tile);
  const auto tol = [](const auto& ref) { return 1e-4f * (1.0f + ref.cwiseAbs().maxCoeff()); };
  CHECK((y_fast - y_portable).cwiseAbs().maxCoeff() <= tol(y_portable));
  // Backward: dL/dx accumulates into what dx holds; dL/dW and dL/db into what grad holds.
  fm::Matrix<float> dx0(conv.cin, conv.hw_in() * n);
  rng.fill_normal(dx0);
  fm::Matrix<float> dx_fast = dx0, dx_portable = dx0;
  fm::Vector<float> g0(conv.num_params());
  rng.fill_normal(g0);
  fm::Vector<float> g_fast = g0, g_portable = g0;
  conv.backward(params.data(), g_fast.data(), x, dy, &dx_fast, scratch, dscratch, n, false);
  conv.backward(params.data(), g_portable.data(), x, dy, &dx_portable, scratch, dscratch, n, true);
  const fm::Index nw = conv.num_params() - conv.cout;
  const fm::Vector<float> dw_fast = g_fast.head(nw) - g0.head(nw), dw_portable = g_portable.head(nw) - g0.head(nw);
  const fm::Vector<float> db_fast = g_fast.tail(conv.cout) - g0.tail(conv.cout),
                          db_portable = g_portable.tail(conv.cout) - g0.tail(conv.cout);
  const fm::Matrix<float> ddx_fast = dx_fast - dx0, ddx_portable = dx_portable - dx0;
  CHECK((ddx_fast - ddx_portable).cwiseAbs().maxCoeff() <= tol(ddx_portable));
  CHECK((dw_fast - dw_portable).cwiseAbs().maxCoeff() <= tol(dw_portable));
  CHECK((db_fast - db_portable).cwiseAbs().maxCoeff() <= tol(db_portable));
  CHECK(ddx_portable.cwiseAbs().maxCoeff() > 0.1f);  // something was added
  // add_dx false: dL/dx replaces what dx held.
  fm::Matrix<float> dx_over = dx0;
  fm::Vector<float> g_over = g0;
  conv.backward(params.data(), g_over.data(), x, dy, &dx_over, scratch, dscratch, n, false, false);
  CHECK((dx_over - ddx_portable).cwiseAbs().maxCoeff() <= tol(ddx_portable));
  // Without dL/dx the parameter gradient is the same.
  fm::Vector<float> g_nodx = g0;
  conv.backward(params.data(), g_nodx.data(), x, dy, static_cast<fm::Matrix<float>*>(nullptr), scratch, dscratch, n,
                false);
  CHECK((g_nodx - g_portable).cwiseAbs().maxCoeff() <= tol(g_portable));
  const auto rel = [](const auto& fast, const auto& ref) {
    return (fast - ref).cwiseAbs().maxCoeff() / ref.cwiseAbs().maxCoeff();
  };
  return {rel(y_fast, y_portable), rel(ddx_fast, ddx_portable), rel(dw_fast, dw_portable)};
}

}  // namespace

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
        compare_fast_portable(du::Conv(cin, cout, 5, 7, kind, 0), false, 3, rng);  // the direct kernel
        ++compared;
      }
  CHECK(compared == 27);
}

TEST_CASE("Winograd F(2x2, 3x3) and F(4x4, 3x3) convolutions compute what im2col + GEMM does (float)",
          "[nn][unet][conv]") {
  namespace du = fm::detail::unet;
  if (!du::conv_direct_available<float>(8)) {
    WARN("the Winograd convolution is not compiled in (needs AVX2 and FMA): only the portable path runs");
    return;
  }
  fm::Rng rng(12);
  int compared = 0;
  struct Shape {
    fm::Index h, w, n;
  };
  // Odd and even sides (odd: the last tiles cross the border), one pixel, batches of 1 to 3.
  const Shape shapes[] = {{7, 7, 2}, {5, 7, 3}, {6, 4, 1}, {1, 1, 2}, {3, 8, 2}, {14, 14, 1}, {28, 28, 1}};
  RelErrors worst[2];  // F(2x2), F(4x4)
  for (const int tile : {2, 4})
    for (const du::ConvKind kind : {du::ConvKind::k3, du::ConvKind::up2_k3})
      for (const Shape& sh : shapes)
        for (const fm::Index cin : {8, 16, 24})
          for (const fm::Index cout : {8, 16, 40}) {
            const du::Conv conv(cin, cout, sh.h, sh.w, kind, 0);
            CHECK(conv.winograd);  // selected by default where it applies
            worst[tile / 4].max_with(compare_fast_portable(conv, true, sh.n, rng, tile));
            ++compared;
          }
  // Larger channel counts, as in the default U-Net (blocks of tiles span samples).
  for (const int tile : {2, 4})
    for (const du::ConvKind kind : {du::ConvKind::k3, du::ConvKind::up2_k3}) {
      worst[tile / 4].max_with(compare_fast_portable(du::Conv(64, 64, 7, 7, kind, 0), true, 4, rng, tile));
      worst[tile / 4].max_with(compare_fast_portable(du::Conv(128, 64, 7, 7, kind, 0), true, 2, rng, tile));
      worst[tile / 4].max_with(compare_fast_portable(du::Conv(16, 128, 14, 14, kind, 0), true, 2, rng, tile));
      compared += 3;
    }
  CHECK(compared == 2 * (2 * 7 * 9 + 6));
  // Rounding, relative to the largest magnitude, against bounds about 3 times the largest measured
  // (F(2x2): 8e-7, F(4x4): 1.2e-5): F(2x2) rounds like a direct sum; F(4x4)'s transforms (points
  // 0, +-1, +-2, with constants up to 8 and 1/24) add to it.
  INFO("F(2x2): y " << worst[0].y << " dx " << worst[0].dx << " dW " << worst[0].dw << "; F(4x4): y " << worst[1].y
                    << " dx " << worst[1].dx << " dW " << worst[1].dw);
  CHECK(std::max({worst[0].y, worst[0].dx, worst[0].dw}) < 3e-6f);
  CHECK(std::max({worst[1].y, worst[1].dx, worst[1].dw}) < 4e-5f);
  // The tile where it does less work: F(4x4) but on the smallest grids, F(2x2) for upsampling.
  CHECK(du::Conv(8, 8, 28, 28, du::ConvKind::k3, 0).winograd_tile == 4);
  CHECK(du::Conv(8, 8, 7, 7, du::ConvKind::up2_k3, 0).winograd_tile == 2);
  CHECK(du::Conv(8, 8, 3, 3, du::ConvKind::k3, 0).winograd_tile == 4);
  CHECK(du::Conv(8, 8, 2, 2, du::ConvKind::k3, 0).winograd_tile == 2);
  CHECK(du::Conv(8, 8, 1, 8, du::ConvKind::k3, 0).winograd_tile == 2);
  // Not selected where it does not apply: stride 2, 1x1, channel counts not multiples of 8.
  CHECK_FALSE(du::Conv(8, 8, 6, 6, du::ConvKind::k3_stride2, 0).winograd);
  CHECK_FALSE(du::Conv(8, 8, 6, 6, du::ConvKind::k1, 0).winograd);
  CHECK_FALSE(du::Conv(3, 8, 6, 6, du::ConvKind::k3, 0).winograd);
  CHECK_FALSE(du::Conv(8, 1, 6, 6, du::ConvKind::k3, 0).winograd);
}

TEST_CASE("Fused GroupNorm + FiLM + SiLU computes what the three layers do in sequence (float)", "[nn][unet][norm]") {
  namespace du = fm::detail::unet;
  using M = fm::Matrix<float>;
  using V = fm::Vector<float>;
  fm::Rng rng(13);
  auto fill = [&](float* p, fm::Index count, double lo, double hi) {
    for (fm::Index i = 0; i < count; ++i) p[i] = static_cast<float>(lo + (hi - lo) * rng.uniform());
  };
  int compared = 0;
  for (const bool with_film : {false, true})
    for (const fm::Index c : {8, 16, 24})
      for (const fm::Index hw : {1, 9, 49}) {
        const fm::Index groups = 4, n = 3, P = hw * n;
        const du::GroupNorm gn(c, groups, hw, 0);
        V params(2 * c);
        fill(params.data(), 2 * c, -1.0, 1.5);  // gamma, beta away from their 1, 0 start
        M x(c, P), film(2 * c, n), ds(c, P), dx0(c, P);
        fill(x.data(), x.size(), -2.0, 3.0);
        fill(film.data(), film.size(), -0.5, 1.5);  // 1 + scale, shift
        fill(ds.data(), ds.size(), -1.0, 1.0);
        fill(dx0.data(), dx0.size(), -1.0, 1.0);
        const float* fp = with_film ? film.data() : nullptr;
        // Unfused: GroupNorm, FiLM, SiLU forward; SiLU, FiLM, GroupNorm backward.
        M xhat(c, P), a(c, P), f(c, P), s(c, P), rstd(groups, n), df(c, P), dy(c, P), dfilm(2 * c, n);
        V scratch, grad = V::Zero(2 * c);
        gn.forward(params.data(), x, xhat, a, rstd, n, scratch);
        f = a;
        if (with_film)
          for (fm::Index q = 0; q < P; ++q)
            f.col(q).array() = a.col(q).array() * film.col(q / hw).head(c).array() + film.col(q / hw).tail(c).array();
        du::silu_forward(f, s);
        du::silu_backward(f, ds, df);
        dy = df;
        dfilm.setZero();
        if (with_film)
          for (fm::Index q = 0; q < P; ++q) {
            const fm::Index smp = q / hw;
            dfilm.col(smp).head(c).array() += df.col(q).array() * a.col(q).array();
            dfilm.col(smp).tail(c) += df.col(q);
            dy.col(q).array() *= film.col(smp).head(c).array();
          }
        M dx_ref = dx0;
        gn.backward(params.data(), grad.data(), xhat, rstd, dy, dx_ref, n, scratch, true);
        // Fused.
        M xhat2(c, P), s2(c, P), rstd2(groups, n), dfilm2 = M::Zero(2 * c, n);
        V grad2 = V::Zero(2 * c);
        gn.forward_silu(params.data(), x, xhat2, s2, rstd2, n, scratch, fp);
        M d2 = ds, dx_add = dx0, dx_set(c, P);
        gn.backward_silu(params.data(), grad2.data(), xhat2, rstd2, d2, dx_add, n, scratch, true, fp,
                         with_film ? dfilm2.data() : nullptr);
        M d3 = ds;
        V grad3 = V::Zero(2 * c);
        gn.backward_silu(params.data(), grad3.data(), xhat2, rstd2, d3, dx_set, n, scratch, false, fp,
                         with_film ? dfilm2.data() : nullptr);
        const float tol = 2e-5f;
        auto rel = [](const auto& u, const auto& v) {
          return (u - v).cwiseAbs().maxCoeff() / std::max(1.0f, v.cwiseAbs().maxCoeff());
        };
        CHECK(rel(rstd2, rstd) <= tol);
        CHECK(rel(xhat2, xhat) <= tol);
        CHECK(rel(s2, s) <= tol);
        CHECK(rel(d2, df) <= tol);  // ds is left holding dL/df
        CHECK(rel(dx_add, dx_ref) <= tol);
        CHECK(rel(dx_set, M(dx_ref - dx0)) <= tol);
        CHECK(rel(grad2, grad) <= tol);
        CHECK(rel(grad3, grad) <= tol);
        if (with_film) CHECK(rel(dfilm2, dfilm) <= tol);
        ++compared;
      }
  CHECK(compared == 18);
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

TEST_CASE("UNetVectorField with dropout trains reproducibly at a fixed seed", "[nn][unet][train][dropout]") {
  ThreadCount two(2);
  const auto run = [&](double dropout) {
    fm::UNetOptions o = tiny(1, 8, 8, {4, 8}, 1);
    o.dropout = dropout;
    fm::UNetVectorField<float> net(o, fm::ConditionKind::Label, 2, 3);
    fm::Adam<float> adam(3e-3);
    fm::CFMTrainer trainer(fm::GaussianConditionalPath(two_class_images(16, 4), fm::LinearAlpha{}, fm::LinearBeta{}),
                           net, adam, 5);
    return trainer.train(4, 8);
  };
  const std::vector<double> a = run(0.2), b = run(0.2), none = run(0.0);
  CHECK(a == b);
  CHECK(a.front() != none.front());  // the masks did act
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
  CHECK_FALSE(r.has_attribute("model.attention"));  // as before attention existed: such files still load
  // Without attention in the file, a U-Net with attention refuses it, naming the setting.
  fm::UNetOptions with = tiny(1, 8, 8, {4, 8}, 1);
  with.attention = 2;
  fm::UNetVectorField<float> attentive(with, fm::ConditionKind::Label, 3, 1);
  CHECK_THROWS_WITH(fm::load_checkpoint(file, attentive), Catch::Contains("attention = 0") && Catch::Contains("has 2"));
  std::filesystem::remove(file);
}

TEST_CASE("UNetVectorField state with self-attention: a round trip gives the same function; other heads or none refuse it",
          "[nn][unet][state][attention]") {
  fm::UNetOptions o = tiny(1, 8, 8, {4, 8}, 1);
  o.attention = 2;
  fm::UNetVectorField<float> net(o, fm::ConditionKind::Label, 3, 1);
  fm::Rng rng(2);
  for (fm::Index i = 0; i < net.parameters().size(); ++i) net.parameters()(i) += 0.01f * static_cast<float>(rng.normal());
  const std::string file = (std::filesystem::temp_directory_path() / "flowmatch_unet_attention_test.safetensors").string();
  fm::save_checkpoint(file, net);
  fm::UNetOptions trained = o;
  trained.dropout = 0.1;  // a training setting, not part of the function: not checked
  fm::UNetVectorField<float> other(trained, fm::ConditionKind::Label, 3, 99);
  REQUIRE(other.parameters() != net.parameters());
  fm::load_checkpoint(file, other);
  CHECK(other.parameters() == net.parameters());
  fm::Matrix<float> x(64, 2), out1(64, 2), out2(64, 2);
  rng.fill_normal(x);
  fm::ConditionBatch<float> c;
  c.set_labels(2);
  c.labels << 0, 2;
  fm::UNetVectorField<float>::Workspace ws1, ws2;
  net.forward(x, 0.3, c, out1, ws1);
  other.forward(x, 0.3, c, out2, ws2);
  CHECK(out1 == out2);
  fm::UNetVectorField<float> none(tiny(1, 8, 8, {4, 8}, 1), fm::ConditionKind::Label, 3, 1);
  CHECK_THROWS_WITH(fm::load_checkpoint(file, none),
                    Catch::Contains("attention = 2") && Catch::Contains("the model passed has 0"));
  CHECK_THROWS_AS(fm::load_checkpoint(file, none), fm::CheckpointMismatchError);
  fm::UNetOptions four = o;
  four.attention = 4;
  fm::UNetVectorField<float> more_heads(four, fm::ConditionKind::Label, 3, 1);
  CHECK_THROWS_AS(fm::load_checkpoint(file, more_heads), fm::CheckpointMismatchError);
  // The attention block's layers: GroupNorm, qkv (C -> 3C) and proj (C -> C) as 1x1 convolutions.
  const fm::StateDict dict = fm::read_checkpoint(file);
  const fm::StateReader r(dict, file);
  CHECK(r.integer("model.attention") == 2);
  CHECK(r.shape("model.mid.attn.qkv.weight") == std::vector<std::int64_t>{8, 24});
  CHECK(r.shape("model.mid.attn.proj.weight") == std::vector<std::int64_t>{8, 8});
  CHECK(r.shape("model.mid2.conv1.weight") == std::vector<std::int64_t>{3, 3, 8, 8});
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
  o.attention = 3;
  CHECK_THROWS_WITH(fm::UNetVectorField<float>(o, ConditionKind::Label, 3),
                    Catch::Contains("'options.attention' = 3") && Catch::Contains("options.widths.back() = 8"));
  o.attention = -1;
  CHECK_THROWS_AS(fm::UNetVectorField<float>(o, ConditionKind::Label, 3), fm::InvalidArgument);
  o.attention = 0;
  for (double p : {1.0, -0.1, std::nan("")}) {
    o.dropout = p;
    CHECK_THROWS_WITH(fm::UNetVectorField<float>(o, ConditionKind::Label, 3),
                      Catch::Contains("'options.dropout'") && Catch::Contains("[0, 1)"));
  }
  o.dropout = 0.0;
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
