// Tests for examples/common/plot.hpp (flowmatch::plot).  Catch2 2.x; main()
// comes from another translation unit.  Most checks write a PNG, read it back
// with stb_image and look at pixels whose position follows from the layout
// (Figure::plot_area / Figure::data_to_pixel).
#include <catch2/catch.hpp>

#include "plot.hpp"

#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#endif
#if __has_include(<stb_image.h>)
#include <stb_image.h>
#else
#include <stb/stb_image.h>
#endif
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>

namespace fp = flowmatch::plot;

namespace {

// A PNG read back from disk.
struct Png {
  int w = 0, h = 0;
  std::vector<unsigned char> px;
  fp::Color at(int x, int y) const {
    if (x < 0 || y < 0 || x >= w || y >= h)
      throw std::out_of_range("pixel (" + std::to_string(x) + ", " + std::to_string(y) + ") outside the PNG");
    const std::size_t i = (static_cast<std::size_t>(y) * static_cast<std::size_t>(w) + static_cast<std::size_t>(x)) * 3;
    return {px[i], px[i + 1], px[i + 2]};
  }
};

// Unique per process and call, so parallel test runs (ctest -j, several build trees) never collide.
std::string temp_png(const std::string& stem) {
  static const std::string run = std::to_string(std::random_device{}());
  static std::atomic<int> counter{0};
  const auto dir = std::filesystem::temp_directory_path() / "flowmatch_plot_test";
  std::filesystem::create_directories(dir);
  return (dir / (stem + "_" + run + "_" + std::to_string(counter++) + ".png")).string();
}

Png save_and_load(const fp::Figure& fig, const std::string& stem) {
  const std::string path = temp_png(stem);
  fig.save_png(path);
  int w = 0, h = 0, n = 0;
  unsigned char* data = stbi_load(path.c_str(), &w, &h, &n, 3);
  REQUIRE(data != nullptr);
  Png png;
  png.w = w;
  png.h = h;
  png.px.assign(data, data + static_cast<std::size_t>(w) * static_cast<std::size_t>(h) * 3);
  stbi_image_free(data);
  std::filesystem::remove(path);
  return png;
}

bool near(fp::Color a, fp::Color b, int tol = 2) {
  return std::abs(a.r - b.r) <= tol && std::abs(a.g - b.g) <= tol && std::abs(a.b - b.b) <= tol;
}

// Pixels in [x0, x1) x [y0, y1) that satisfy pred.
int count_pixels(const Png& png, int x0, int y0, int x1, int y1, const std::function<bool(fp::Color)>& pred) {
  int n = 0;
  for (int y = std::max(0, y0); y < std::min(png.h, y1); ++y)
    for (int x = std::max(0, x0); x < std::min(png.w, x1); ++x) n += pred(png.at(x, y)) ? 1 : 0;
  return n;
}

bool is_dark(fp::Color c) { return c.r < 128 && c.g < 128 && c.b < 128; }
bool not_white(fp::Color c) { return !(c == fp::white); }

// Message of the PlotError thrown by f ("" if none was thrown).
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const fp::PlotError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("colormaps hit their control points and interpolate", "[plot]") {
  CHECK(fp::colormap(fp::Colormap::Viridis, 0.0) == fp::Color{68, 1, 84});
  CHECK(fp::colormap(fp::Colormap::Viridis, 1.0) == fp::Color{253, 231, 37});
  CHECK(fp::colormap(fp::Colormap::Viridis, 0.5) == fp::Color{33, 145, 140});
  CHECK(fp::colormap(fp::Colormap::Magma, 0.0) == fp::Color{0, 0, 4});
  CHECK(fp::colormap(fp::Colormap::Magma, 1.0) == fp::Color{252, 253, 191});
  CHECK(fp::colormap(fp::Colormap::Greys, 0.0) == fp::white);
  CHECK(fp::colormap(fp::Colormap::Greys, 1.0) == fp::black);
  // clamping and NaN
  CHECK(fp::colormap(fp::Colormap::Viridis, -3.0) == fp::colormap(fp::Colormap::Viridis, 0.0));
  CHECK(fp::colormap(fp::Colormap::Viridis, 7.0) == fp::colormap(fp::Colormap::Viridis, 1.0));
  CHECK(fp::colormap(fp::Colormap::Viridis, std::nan("")) == fp::colormap(fp::Colormap::Viridis, 0.0));
  // halfway between the first two viridis stops (t = 0.05)
  const fp::Color mid = fp::colormap(fp::Colormap::Viridis, 0.05);
  CHECK(near(mid, fp::Color{70, 19, 101}, 1));
  CHECK(fp::colormap(fp::Colormap::Blues, 1.0) == fp::Color{8, 48, 107});
  CHECK(fp::colormap(fp::Colormap::Reds, 1.0) == fp::Color{103, 0, 13});
  // the single-hue maps get darker monotonically (sum of channels), starting near white
  for (auto cm : {fp::Colormap::Greys, fp::Colormap::Blues, fp::Colormap::Reds, fp::Colormap::Greens,
                  fp::Colormap::Oranges, fp::Colormap::Purples}) {
    int prev = 3 * 255 + 1;
    CHECK(fp::colormap(cm, 0.0).r >= 240);
    for (int i = 0; i <= 40; ++i) {
      const fp::Color c = fp::colormap(cm, i / 40.0);
      const int v = c.r + c.g + c.b;
      CHECK(v < prev);
      prev = v;
    }
  }
}

TEST_CASE("tab10 palette wraps around", "[plot]") {
  CHECK(fp::tab10(0) == fp::Color{31, 119, 180});
  CHECK(fp::tab10(3) == fp::Color{214, 39, 40});
  CHECK(fp::tab10(10) == fp::tab10(0));
  CHECK(fp::tab10(-1) == fp::tab10(9));
  for (int i = 0; i < 10; ++i)
    for (int j = i + 1; j < 10; ++j) CHECK_FALSE(fp::tab10(i) == fp::tab10(j));
}

TEST_CASE("nice ticks use 1/2/5 x 10^k steps and 4-8 ticks where possible", "[plot]") {
  auto t = fp::detail::nice_ticks(0.0, 1.0);
  CHECK(t.step == Approx(0.2));
  REQUIRE(t.values.size() == 6);
  CHECK(t.values.front() == 0.0);
  CHECK(t.values.back() == Approx(1.0));

  t = fp::detail::nice_ticks(-4.0, 4.0);
  CHECK(t.step == Approx(2.0));
  CHECK(t.values.size() == 5);

  std::mt19937 rng(7);
  std::uniform_real_distribution<double> centre(-1e3, 1e3), logspan(-6.0, 6.0);
  for (int trial = 0; trial < 500; ++trial) {
    const double span = std::pow(10.0, logspan(rng));
    const double lo = centre(rng) * span, hi = lo + span;
    t = fp::detail::nice_ticks(lo, hi);
    INFO("lo=" << lo << " hi=" << hi << " step=" << t.step << " n=" << t.values.size());
    CHECK(t.values.size() >= 3);
    CHECK(t.values.size() <= 8);
    if (t.values.size() < 4) {
      // only when no 1/2/5 step gives 4..8 ticks (e.g. 9 with step 2 and 3 with step 5)
      for (const auto& c : fp::detail::tick_candidates(lo, hi)) {
        CHECK((c.values.size() < 4 || c.values.size() > 8));
      }
    }
    const double mant = t.step / std::pow(10.0, t.exponent);
    CHECK((mant == Approx(1.0) || mant == Approx(2.0) || mant == Approx(5.0)));
    for (double v : t.values) {
      CHECK(v >= lo - 1e-9 * span);
      CHECK(v <= hi + 1e-9 * span);
    }
  }
}

TEST_CASE("tick labels share decimals and never read -0", "[plot]") {
  auto t = fp::detail::nice_ticks(-1.0, 1.0);
  fp::detail::label_ticks(t, false);
  REQUIRE(t.labels.size() == 5);
  CHECK(t.labels[0] == "-1.0");
  CHECK(t.labels[1] == "-0.5");
  CHECK(t.labels[2] == "0.0");
  CHECK(t.labels[4] == "1.0");
  fp::detail::label_ticks(t, true);
  CHECK(t.labels[0] == "\xE2\x88\x92" "1.0");  // typographic minus

  t = fp::detail::nice_ticks(0.0, 1e7);
  fp::detail::label_ticks(t, false);
  CHECK(t.labels.back() == "1e+07");
}

TEST_CASE("save_png writes a PNG of the figure size", "[plot]") {
  fp::Figure fig(2, 3, 120, 90);
  const Png png = save_and_load(fig, "size");
  CHECK(png.w == 360);
  CHECK(png.h == 180);
  CHECK(fig.width() == 360);
  CHECK(fig.height() == 180);

  fig.set_title("suptitle");
  const Png png2 = save_and_load(fig, "size_title");
  CHECK(png2.w == 360);
  CHECK(png2.h > 180);  // suptitle band on top
  CHECK(png2.h == fig.height());
  CHECK(count_pixels(png2, 0, 0, png2.w, png2.h - 180, is_dark) > 20);
}

TEST_CASE("heatmap pixels have the colormap colour at known places", "[plot]") {
  fp::Figure fig(1, 1, 300, 300);
  Eigen::MatrixXd v(2, 2);
  v << 0.0, 1.0,  // row 0: y = ymin
      2.0, 3.0;   // row 1: y = ymax
  fig.at(0, 0).set_xlim(0, 1).set_ylim(0, 1).heatmap(v, fp::Colormap::Viridis, 1.0, false, {},
                                                     fp::Interpolation::Nearest);
  const Png png = save_and_load(fig, "heatmap");
  auto colour_at = [&](double x, double y) {
    const auto [px, py] = fig.data_to_pixel(0, 0, x, y);
    return png.at(static_cast<int>(std::floor(px)), static_cast<int>(std::floor(py)));
  };
  using fp::Colormap;
  CHECK(near(colour_at(0.1, 0.1), fp::colormap(Colormap::Viridis, 0.0)));
  CHECK(near(colour_at(0.9, 0.1), fp::colormap(Colormap::Viridis, 1.0 / 3.0)));  // column = x
  CHECK(near(colour_at(0.1, 0.9), fp::colormap(Colormap::Viridis, 2.0 / 3.0)));  // row = y, upwards
  CHECK(near(colour_at(0.9, 0.9), fp::colormap(Colormap::Viridis, 1.0)));
}

TEST_CASE("bilinear heatmap interpolates; a fixed range clamps; NaN is background", "[plot]") {
  fp::Figure fig(1, 2, 300, 300);
  // Linear ramp in x from 0 to 1: bilinear value at x equals x.
  Eigen::MatrixXd ramp(3, 5);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 5; ++j) ramp(i, j) = j / 4.0;
  ramp(1, 2) = std::numeric_limits<double>::quiet_NaN();  // centre sample
  fig.at(0, 0).set_xlim(0, 1).set_ylim(0, 1).heatmap(ramp, fp::Colormap::Magma, 1.0, true,
                                                     std::pair{0.0, 0.5});
  // Without a range: min/max of finite values.
  Eigen::MatrixXd c = Eigen::MatrixXd::Constant(4, 4, 10.0);
  c(0, 0) = 20.0;
  c(3, 3) = std::numeric_limits<double>::infinity();
  fig.at(0, 1).set_xlim(0, 3).set_ylim(0, 3).heatmap(c, fp::Colormap::Viridis, 1.0, false, {},
                                                     fp::Interpolation::Nearest);
  const Png png = save_and_load(fig, "bilinear");
  auto at = [&](int panel, double x, double y) {
    const auto [px, py] = fig.data_to_pixel(0, panel, x, y);
    return png.at(static_cast<int>(std::floor(px)), static_cast<int>(std::floor(py)));
  };
  // Around x = 0.2 the bilinear value equals the x of the pixel centre; t = x / 0.5 for the fixed
  // range [0, 0.5] (the corners used there are finite).
  {
    const fp::PixelRect p = fig.plot_area(0, 0);
    const double px = fig.data_to_pixel(0, 0, 0.2, 0.02).first;
    const double x_centre = (std::floor(px) + 0.5 - p.x) / p.w;
    CHECK(x_centre == Approx(0.2).margin(0.01));
    CHECK(near(at(0, 0.2, 0.02), fp::colormap(fp::Colormap::Magma, x_centre / 0.5), 2));
  }
  // x = 0.9 -> value 0.9 > vmax -> clamped to the top colour
  CHECK(near(at(0, 0.9, 0.02), fp::colormap(fp::Colormap::Magma, 1.0), 2));
  // nearest sample of (0.5, 0.5) is the NaN -> white background
  CHECK(at(0, 0.5, 0.5) == fp::white);
  // range [10, 20] from the finite values: 10 -> bottom colour, 20 -> top colour, +inf -> background
  CHECK(near(at(1, 1.5, 1.5), fp::colormap(fp::Colormap::Viridis, 0.0), 1));
  CHECK(near(at(1, 0.05, 0.05), fp::colormap(fp::Colormap::Viridis, 1.0), 1));
  CHECK(at(1, 2.95, 2.95) == fp::white);

  // The colour bar (panel 0) sits right of the plot area: yellow-ish top, black bottom.
  const fp::PixelRect p = fig.plot_area(0, 0);
  const int bar_x = p.x + p.w + 12 + 7;
  CHECK(near(png.at(bar_x, p.y + 1), fp::colormap(fp::Colormap::Magma, 1.0), 6));
  CHECK(near(png.at(bar_x, p.y + p.h - 2), fp::colormap(fp::Colormap::Magma, 0.0), 6));
  // ...and has tick labels to its right
  CHECK(count_pixels(png, bar_x + 10, p.y - 5, p.x + p.w + 80, p.y + p.h + 5, is_dark) > 30);
}

TEST_CASE("scatter points land at the expected pixel and are clipped", "[plot]") {
  fp::Figure fig(1, 1, 400, 400);
  auto& ax = fig.at(0, 0);
  ax.set_xlim(0, 10).set_ylim(0, 10);
  Eigen::VectorXd xs(3), ys(3);
  xs << 2.5, 20.0, 5.0;  // second point is outside the limits
  ys << 7.5, 5.0, -3.0;  // third too
  ax.scatter(xs, ys, fp::red, 3.0, 1.0);
  const Png png = save_and_load(fig, "scatter");

  // Independent computation of the pixel from the plot area.
  const fp::PixelRect p = fig.plot_area(0, 0);
  REQUIRE(p.w > 100);
  REQUIRE(p.h > 100);
  CHECK(p.w == p.h);  // equal aspect with square limits
  const double px = p.x + 0.25 * p.w, py = p.y + 0.25 * p.h;
  const auto [qx, qy] = fig.data_to_pixel(0, 0, 2.5, 7.5);
  CHECK(qx == Approx(px));
  CHECK(qy == Approx(py));
  const int ix = static_cast<int>(std::floor(px)), iy = static_cast<int>(std::floor(py));
  CHECK(png.at(ix, iy) == fp::red);
  CHECK(png.at(ix + 1, iy - 1) == fp::red);
  CHECK(png.at(ix + 8, iy) == fp::white);
  CHECK(png.at(ix, iy + 8) == fp::white);
  // exactly one disc: all red-ish pixels lie within a few pixels of it
  auto reddish = [](fp::Color c) { return c.r > 150 && c.g < 150 && c.b < 150; };
  const int total = count_pixels(png, 0, 0, png.w, png.h, reddish);
  const int local = count_pixels(png, ix - 5, iy - 5, ix + 6, iy + 6, reddish);
  CHECK(total > 20);
  CHECK(total == local);
}

TEST_CASE("scatter accepts float vectors; row vectors; strided rows and expressions", "[plot]") {
  fp::Figure fig(1, 1, 200, 200);
  Eigen::VectorXf xf(2), yf(2);
  xf << 0.25f, 0.75f;
  yf << 0.25f, 0.75f;
  Eigen::RowVectorXd xr(1), yr(1);
  xr << 0.75;
  yr << 0.25;
  auto& ax = fig.at(0, 0);
  ax.set_xlim(0, 1).set_ylim(0, 1);
  ax.scatter(xf, yf, fp::blue, 2.0, 1.0);
  ax.scatter(xr, yr, fp::green, 2.0, 1.0);
  ax.scatter((xr.array() - 0.5).matrix(), yr, fp::orange, 2.0, 1.0);  // (0.25, 0.25)... drawn on top
  ax.scatter(std::vector<double>{0.5}, std::vector<double>{0.5}, fp::purple, 2.0, 1.0);
  // points stored as columns of a 2xN matrix: rows are strided views
  Eigen::MatrixXd pts(2, 3);
  pts << 0.1, 0.5, 0.9,  // x
      0.9, 0.1, 0.9;     // y
  ax.scatter(pts.row(0), pts.row(1), fp::brown, 2.0, 1.0);
  const fp::Image img = fig.render();
  auto at = [&](double x, double y) {
    const auto [px, py] = fig.data_to_pixel(0, 0, x, y);
    return img.pixel(static_cast<int>(px), static_cast<int>(py));
  };
  CHECK(at(0.75, 0.75) == fp::blue);
  CHECK(at(0.75, 0.25) == fp::green);
  CHECK(at(0.25, 0.25) == fp::orange);
  CHECK(at(0.5, 0.5) == fp::purple);
  CHECK(at(0.1, 0.9) == fp::brown);
  CHECK(at(0.5, 0.1) == fp::brown);
  CHECK(at(0.9, 0.9) == fp::brown);

  Eigen::MatrixXd m(2, 2);
  m.setZero();
  const std::string msg = error_of([&] { ax.scatter(m, m, fp::red); });
  CHECK_THAT(msg, Catch::Contains("xs") && Catch::Contains("2x2"));
}

TEST_CASE("heatmap ends up below scatter and lines", "[plot]") {
  fp::Figure fig(1, 1, 300, 300);
  auto& ax = fig.at(0, 0);
  ax.set_xlim(-1, 1).set_ylim(-1, 1);
  Eigen::VectorXd x(1), y(1);
  x << 0.5;
  y << 0.5;
  ax.scatter(x, y, fp::red, 4.0, 1.0);  // drawn before the heatmap call...
  ax.heatmap(Eigen::MatrixXd::Zero(8, 8), fp::Colormap::Viridis, 1.0, false);
  ax.line(std::vector<double>{-0.8, 0.8}, std::vector<double>{-0.5, -0.5}, fp::orange, 3.0, 1.0);
  const fp::Image img = fig.render();
  auto at = [&](double xx, double yy) {
    const auto [px, py] = fig.data_to_pixel(0, 0, xx, yy);
    return img.pixel(static_cast<int>(px), static_cast<int>(py));
  };
  CHECK(at(0.5, 0.5) == fp::red);       // ...but still on top of it
  CHECK(at(0.0, -0.5) == fp::orange);   // line on top
  CHECK(near(at(-0.5, 0.5), fp::colormap(fp::Colormap::Viridis, 0.5)));  // constant field: mid colour
}

TEST_CASE("lines are drawn between points and clipped to the plot area", "[plot]") {
  fp::Figure fig(1, 1, 300, 300);
  auto& ax = fig.at(0, 0);
  ax.set_xlim(0, 1).set_ylim(0, 1).set_aspect_equal(false);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // A horizontal line that runs far outside the limits on both sides, a gap (NaN), then a diagonal.
  Eigen::VectorXd xs(5), ys(5);
  xs << -5.0, 6.0, nan, 0.1, 0.9;
  ys << 0.5, 0.5, nan, 0.1, 0.9;
  ax.line(xs, ys, fp::green, 3.0, 1.0);
  const Png png = save_and_load(fig, "line");
  const fp::PixelRect p = fig.plot_area(0, 0);
  auto at = [&](double x, double y) {
    const auto [px, py] = fig.data_to_pixel(0, 0, x, y);
    return png.at(static_cast<int>(std::floor(px)), static_cast<int>(std::floor(py)));
  };
  CHECK(at(0.5, 0.5) == fp::green);
  CHECK(at(0.02, 0.5) == fp::green);
  CHECK(at(0.3, 0.3) == fp::green);
  CHECK(at(0.5, 0.56) == fp::white);
  CHECK(at(0.95, 0.95) == fp::white);  // the diagonal ends at 0.9
  // no green outside the plot area (the line was clipped)
  auto greenish = [](fp::Color c) { return c.g > c.r + 40 && c.g > c.b + 40; };
  CHECK(count_pixels(png, 0, 0, p.x - 1, png.h, greenish) == 0);
  CHECK(count_pixels(png, p.x + p.w + 1, 0, png.w, png.h, greenish) == 0);
}

TEST_CASE("text renders inside the title; label and tick areas", "[plot]") {
  for (const bool truetype : {true, false}) {
    DYNAMIC_SECTION((truetype ? "TrueType font" : "stb_easy_font fallback")) {
      fp::Figure fig(1, 2, 300, 300);
      if (!truetype) fig.set_font("/nonexistent/flowmatch/font.ttf");
      if (truetype && !fig.uses_truetype()) WARN("default font " << fig.font_path() << " not found: fallback font used");
      if (!truetype) CHECK_FALSE(fig.uses_truetype());
      fig.at(0, 0).set_xlim(0, 1).set_ylim(0, 1).set_title("Title text").set_xlabel("x label").set_ylabel("y label");
      fig.at(0, 1).set_xlim(0, 1).set_ylim(0, 1);  // no title / labels
      const Png png = save_and_load(fig, "text");
      const fp::PixelRect a = fig.plot_area(0, 0), b = fig.plot_area(0, 1);
      // title area: between the panel top and the frame
      const int with_title = count_pixels(png, a.x, 0, a.x + a.w, a.y - 2, is_dark);
      const int without = count_pixels(png, b.x, 0, b.x + b.w, b.y - 2, not_white);
      CHECK(with_title > 40);
      CHECK(without == 0);
      // title is centred over the plot: dark pixels on both sides of the centre
      CHECK(count_pixels(png, a.x, 0, a.x + a.w / 2, a.y - 2, is_dark) > 10);
      CHECK(count_pixels(png, a.x + a.w / 2, 0, a.x + a.w, a.y - 2, is_dark) > 10);
      // x label below the tick labels, y label left of them (panel b has neither)
      CHECK(count_pixels(png, a.x + a.w / 3, a.y + a.h + 24, a.x + 2 * a.w / 3, 300, is_dark) > 20);
      CHECK(count_pixels(png, b.x + b.w / 3, b.y + b.h + 24, b.x + 2 * b.w / 3, 300, not_white) == 0);
      CHECK(count_pixels(png, 0, a.y + a.h / 3, a.x - 31, a.y + 2 * a.h / 3, is_dark) > 20);
      CHECK(count_pixels(png, 300, b.y + b.h / 3, b.x - 31, b.y + 2 * b.h / 3, not_white) == 0);
      // tick labels: left of the y axis and below the x axis, in both panels
      CHECK(count_pixels(png, b.x - 40, b.y, b.x - 6, b.y + b.h, is_dark) > 20);
      CHECK(count_pixels(png, b.x, b.y + b.h + 6, b.x + b.w, b.y + b.h + 25, is_dark) > 20);
    }
  }
}

TEST_CASE("text in data coordinates and legends", "[plot]") {
  fp::Figure fig(1, 1, 300, 300);
  auto& ax = fig.at(0, 0);
  ax.set_xlim(0, 1).set_ylim(0, 1);
  ax.text(0.1, 0.2, "hello", fp::blue);
  ax.scatter(std::vector<double>{0.5}, std::vector<double>{0.5}, fp::red, 2.0, 1.0, "points");
  ax.line(std::vector<double>{0.0, 1.0}, std::vector<double>{0.3, 0.3}, fp::green, 2.0, 1.0, "line");
  ax.legend(true, fp::LegendLoc::UpperLeft);
  const fp::Image img = fig.render();
  const auto [tx, ty] = fig.data_to_pixel(0, 0, 0.1, 0.2);
  int blue = 0;
  for (int y = static_cast<int>(ty) - 8; y <= static_cast<int>(ty) + 8; ++y)
    for (int x = static_cast<int>(tx); x < static_cast<int>(tx) + 40; ++x) {
      const fp::Color c = img.pixel(x, y);
      blue += (c.b > 120 && c.r < 150) ? 1 : 0;
    }
  CHECK(blue > 10);
  // legend box in the upper-left corner holds a red marker and a green stroke
  const fp::PixelRect p = fig.plot_area(0, 0);
  int red = 0, green = 0;
  for (int y = p.y; y < p.y + 60; ++y)
    for (int x = p.x; x < p.x + 45; ++x) {
      const fp::Color c = img.pixel(x, y);
      red += c == fp::red ? 1 : 0;
      green += c == fp::green ? 1 : 0;
    }
  CHECK(red > 5);
  CHECK(green > 5);
}

TEST_CASE("auto limits cover the data", "[plot]") {
  fp::Figure fig(1, 1, 300, 300);
  auto& ax = fig.at(0, 0);
  ax.set_aspect_equal(false);
  ax.scatter(std::vector<double>{-3.0, 7.0}, std::vector<double>{100.0, 200.0}, fp::red, 2.0, 1.0);
  const fp::Image img = fig.render();
  for (const auto& [x, y] : {std::pair{-3.0, 100.0}, std::pair{7.0, 200.0}}) {
    const auto [px, py] = fig.data_to_pixel(0, 0, x, y);
    CHECK(img.pixel(static_cast<int>(px), static_cast<int>(py)) == fp::red);
  }
}

TEST_CASE("bad arguments throw PlotError naming the argument and value", "[plot]") {
  using Catch::Contains;
  CHECK_THAT(error_of([] { fp::Figure(0, 1); }), Contains("rows") && Contains("rows=0"));
  CHECK_THAT(error_of([] { fp::Figure(1, -2); }), Contains("cols=-2"));
  CHECK_THAT(error_of([] { fp::Figure(1, 1, 0, 400); }), Contains("panel_width=0"));
  CHECK_THAT(error_of([] { fp::Figure(1, 1, 400, 0); }), Contains("panel_height=0"));
  CHECK_THAT(error_of([] { fp::Figure(1, 1, 400, 100000); }), Contains("panel_height=100000"));

  fp::Figure fig(1, 2, 100, 100);
  CHECK_THAT(error_of([&] { fig.at(1, 0); }), Contains("row=1"));
  CHECK_THAT(error_of([&] { fig.at(0, 2); }), Contains("col=2"));
  auto& ax = fig.at(0, 0);
  CHECK_THAT(error_of([&] { ax.set_xlim(1, 1); }), Contains("set_xlim") && Contains("lo=1") && Contains("hi=1"));
  CHECK_THAT(error_of([&] { ax.set_xlim(2, 1); }), Contains("lo=2") && Contains("hi=1"));
  CHECK_THAT(error_of([&] { ax.set_ylim(0, std::nan("")); }), Contains("set_ylim") && Contains("hi=nan"));
  CHECK_THAT(error_of([&] { ax.heatmap(Eigen::MatrixXd(0, 3)); }), Contains("heatmap") && Contains("0x3"));
  CHECK_THAT(error_of([&] { ax.heatmap(Eigen::MatrixXd::Zero(2, 2), fp::Colormap::Viridis, 1.5); }),
             Contains("alpha=1.5"));
  CHECK_THAT(error_of([&] { ax.heatmap(Eigen::MatrixXd::Zero(2, 2), fp::Colormap::Viridis, 1.0, true, std::pair{1.0, 1.0}); }),
             Contains("vmin=1") && Contains("vmax=1"));
  Eigen::VectorXd a(3), b(2);
  a.setZero();
  b.setZero();
  CHECK_THAT(error_of([&] { ax.scatter(a, b, fp::red); }), Contains("xs.size()=3") && Contains("ys.size()=2"));
  CHECK_THAT(error_of([&] { ax.scatter(a, a, fp::red, -1.0); }), Contains("radius=-1"));
  CHECK_THAT(error_of([&] { ax.line(a, a, fp::red, 0.0); }), Contains("width=0"));
  CHECK_THAT(error_of([&] { ax.line(a, b, fp::red); }), Contains("Axes::line"));
  CHECK_THAT(error_of([&] { ax.text(std::nan(""), 0.0, "x"); }), Contains("x=nan"));
  CHECK_THAT(error_of([&] { fig.set_font_scale(0.0); }), Contains("scale=0"));
  // The failed calls left nothing behind: the figure still renders.
  CHECK_NOTHROW(fig.render());
}

TEST_CASE("save_png reports empty and unwritable paths", "[plot]") {
  fp::Figure fig(1, 1, 100, 100);
  CHECK_THAT(error_of([&] { fig.save_png(""); }), Catch::Contains("path is empty"));
  const std::string bad =
      (std::filesystem::temp_directory_path() / "flowmatch_no_such_dir_4711" / "sub" / "out.png").string();
  const std::string msg = error_of([&] { fig.save_png(bad); });
  CHECK_THAT(msg, Catch::Contains(bad));
  CHECK_THAT(msg, Catch::Contains("No such file or directory"));
  // a directory is not a writable file either
  const std::string dir = std::filesystem::temp_directory_path().string();
  CHECK_THAT(error_of([&] { fig.save_png(dir); }), Catch::Contains(dir) && Catch::Contains("directory"));
}

TEST_CASE("100k scatter points over a 400x400 heatmap render quickly", "[plot]") {
  std::mt19937 rng(3);
  std::normal_distribution<double> n01(0.0, 1.0);
  Eigen::VectorXd x(100000), y(100000);
  for (Eigen::Index i = 0; i < x.size(); ++i) x(i) = n01(rng), y(i) = n01(rng);
  Eigen::MatrixXd h = Eigen::MatrixXd::Random(400, 400);
  const auto t0 = std::chrono::steady_clock::now();
  fp::Figure fig(1, 1, 500, 500);
  fig.at(0, 0).set_xlim(-3, 3).set_ylim(-3, 3).heatmap(h).scatter(x, y, fp::red, 2.0, 0.5);
  const fp::Image img = fig.render();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(img.width == 500);
  // ~0.03 s optimised, ~0.2 s at -O0; the bound only catches pathological slowdowns.
  CHECK(seconds < 5.0);
}
