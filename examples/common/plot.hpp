// flowmatch::plot -- a small raster plotting module for the flowmatch examples.
//
// NOT part of the core library.  It draws matplotlib-like PNG figures (grid of
// panels with titles, nice-number ticks, heatmaps with a colour bar, scatter
// points, poly-lines, text and legends) into an RGB buffer and encodes it with
// stb_image_write.  Text is rendered anti-aliased with stb_truetype (DejaVu Sans
// by default); when the font file cannot be read, the built-in stb_easy_font is
// used so that a figure is still produced.
//
// Header-only apart from stb: link libstb (CMake target `flowmatch_plot`).
//
// Font look-up order: Figure::set_font(path) > environment variable
// FLOWMATCH_PLOT_FONT > compile definition FLOWMATCH_PLOT_DEFAULT_FONT.
//
// Coordinate conventions
//  * Data y grows upwards, pixel y grows downwards.
//  * A panel's data area ("plot area") is an integer pixel rectangle; data x in
//    [xmin, xmax] maps linearly onto [plot.x, plot.x + plot.w] (pixel edges), so
//    the pixel containing data point (x, y) is floor(data_to_pixel(x, y)).
//  * heatmap(values): values(i, j) is the sample at
//      x_j = xmin + j * (xmax - xmin) / (cols - 1),
//      y_i = ymin + i * (ymax - ymin) / (rows - 1),
//    i.e. the grid Eigen::VectorXd::LinSpaced(n, lo, hi) produces; the sample
//    points include the limits.
//
// Draw order inside a panel: grid, heatmaps (in call order), then scatter /
// line / text items in call order, then frame, ticks, labels, colour bar and
// legend.  So a heatmap always lies below the points and lines.
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

// stb headers: third-party code, keep their warnings out of -Werror builds
// (the implementations live in libstb; stb_easy_font is header-only/static).
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wcast-qual"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wshadow"
#endif
#if __has_include(<stb_truetype.h>)
#include <stb_easy_font.h>
#include <stb_image_write.h>
#include <stb_truetype.h>
#else
#include <stb/stb_easy_font.h>
#include <stb/stb_image_write.h>
#include <stb/stb_truetype.h>
#endif
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic pop
#endif

#ifndef FLOWMATCH_PLOT_DEFAULT_FONT
#define FLOWMATCH_PLOT_DEFAULT_FONT "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
#endif

namespace flowmatch::plot {

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// The one exception type of this module: bad arguments and I/O failures.
/// Messages name the function, the argument and the offending value.
struct PlotError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------------------
// Colours
// ---------------------------------------------------------------------------

struct Color {
  std::uint8_t r = 0, g = 0, b = 0;
  friend constexpr bool operator==(const Color&, const Color&) = default;
};

inline std::ostream& operator<<(std::ostream& os, const Color& c) {
  return os << "Color{" << int(c.r) << ", " << int(c.g) << ", " << int(c.b) << "}";
}

inline constexpr Color black{0, 0, 0};
inline constexpr Color white{255, 255, 255};
inline constexpr Color grey{128, 128, 128};
inline constexpr Color gray = grey;
inline constexpr Color light_grey{210, 210, 210};
inline constexpr Color dark_grey{64, 64, 64};
// The named hues are the matplotlib "tab" colours (tab10), which read well on
// white and on dark heatmaps alike.
inline constexpr Color blue{31, 119, 180};
inline constexpr Color orange{255, 127, 14};
inline constexpr Color green{44, 160, 44};
inline constexpr Color red{214, 39, 40};
inline constexpr Color purple{148, 103, 189};
inline constexpr Color brown{140, 86, 75};
inline constexpr Color pink{227, 119, 194};
inline constexpr Color olive{188, 189, 34};
inline constexpr Color cyan{23, 190, 207};
inline constexpr Color yellow{255, 221, 0};

/// 10-colour qualitative palette (matplotlib tab10); any integer, wraps around.
inline constexpr Color tab10(long long i) {
  constexpr std::array<Color, 10> p{{blue, orange, green, red, purple, brown, pink, grey, olive, cyan}};
  const long long k = ((i % 10) + 10) % 10;
  return p[static_cast<std::size_t>(k)];
}

/// Viridis and Magma: perceptually uniform (dark -> bright).  Greys, Blues,
/// Reds, Greens, Oranges, Purples: ColorBrewer single-hue sequential maps as in
/// matplotlib (low values light, high values dark).
enum class Colormap { Viridis, Magma, Greys, Blues, Reds, Greens, Oranges, Purples };

namespace detail {
// Control points, equally spaced in t.  Viridis / magma: matplotlib's values at
// t = 0, 0.1, ..., 1.  The single-hue maps: ColorBrewer 9-class sequential
// schemes (light -> dark, as matplotlib's "Greys", "Blues", ...).
inline constexpr std::array<Color, 11> kViridis{{{68, 1, 84},
                                                 {72, 36, 117},
                                                 {65, 68, 135},
                                                 {53, 95, 141},
                                                 {42, 120, 142},
                                                 {33, 145, 140},
                                                 {34, 168, 132},
                                                 {68, 191, 112},
                                                 {122, 209, 81},
                                                 {189, 223, 38},
                                                 {253, 231, 37}}};
inline constexpr std::array<Color, 11> kMagma{{{0, 0, 4},
                                               {20, 14, 54},
                                               {59, 15, 112},
                                               {100, 26, 128},
                                               {140, 41, 129},
                                               {183, 55, 121},
                                               {222, 73, 104},
                                               {247, 112, 92},
                                               {254, 159, 109},
                                               {254, 207, 146},
                                               {252, 253, 191}}};
inline constexpr std::array<Color, 9> kGreys{{{255, 255, 255},
                                              {240, 240, 240},
                                              {217, 217, 217},
                                              {189, 189, 189},
                                              {150, 150, 150},
                                              {115, 115, 115},
                                              {82, 82, 82},
                                              {37, 37, 37},
                                              {0, 0, 0}}};

inline constexpr std::array<Color, 9> kBlues{{{247, 251, 255},
                                              {222, 235, 247},
                                              {198, 219, 239},
                                              {158, 202, 225},
                                              {107, 174, 214},
                                              {66, 146, 198},
                                              {33, 113, 181},
                                              {8, 81, 156},
                                              {8, 48, 107}}};
inline constexpr std::array<Color, 9> kReds{{{255, 245, 240},
                                             {254, 224, 210},
                                             {252, 187, 161},
                                             {252, 146, 114},
                                             {251, 106, 74},
                                             {239, 59, 44},
                                             {203, 24, 29},
                                             {165, 15, 21},
                                             {103, 0, 13}}};
inline constexpr std::array<Color, 9> kGreens{{{247, 252, 245},
                                               {229, 245, 224},
                                               {199, 233, 192},
                                               {161, 217, 155},
                                               {116, 196, 118},
                                               {65, 171, 93},
                                               {35, 139, 69},
                                               {0, 109, 44},
                                               {0, 68, 27}}};
inline constexpr std::array<Color, 9> kOranges{{{255, 245, 235},
                                                {254, 230, 206},
                                                {253, 208, 162},
                                                {253, 174, 107},
                                                {253, 141, 60},
                                                {241, 105, 19},
                                                {217, 72, 1},
                                                {166, 54, 3},
                                                {127, 39, 4}}};
inline constexpr std::array<Color, 9> kPurples{{{252, 251, 253},
                                                {239, 237, 245},
                                                {218, 218, 235},
                                                {188, 189, 220},
                                                {158, 154, 200},
                                                {128, 125, 186},
                                                {106, 81, 163},
                                                {84, 39, 143},
                                                {63, 0, 125}}};

template <std::size_t N>
inline Color interpolate_stops(const std::array<Color, N>& stops, double t) {
  const double pos = t * static_cast<double>(N - 1);
  std::size_t i = static_cast<std::size_t>(std::floor(pos));
  if (i > N - 2) i = N - 2;
  const double f = pos - static_cast<double>(i);
  auto mix = [f](std::uint8_t a, std::uint8_t b) {
    return static_cast<std::uint8_t>(std::lround(a + (double(b) - double(a)) * f));
  };
  const Color& a = stops[i];
  const Color& b = stops[i + 1];
  return Color{mix(a.r, b.r), mix(a.g, b.g), mix(a.b, b.b)};
}
}  // namespace detail

/// Colour of `cmap` at t in [0, 1] (clamped; NaN maps to 0).
inline Color colormap(Colormap cmap, double t) {
  if (!(t >= 0.0)) t = 0.0;
  if (t > 1.0) t = 1.0;
  switch (cmap) {
    case Colormap::Viridis: return detail::interpolate_stops(detail::kViridis, t);
    case Colormap::Magma: return detail::interpolate_stops(detail::kMagma, t);
    case Colormap::Greys: return detail::interpolate_stops(detail::kGreys, t);
    case Colormap::Blues: return detail::interpolate_stops(detail::kBlues, t);
    case Colormap::Reds: return detail::interpolate_stops(detail::kReds, t);
    case Colormap::Greens: return detail::interpolate_stops(detail::kGreens, t);
    case Colormap::Oranges: return detail::interpolate_stops(detail::kOranges, t);
    case Colormap::Purples: return detail::interpolate_stops(detail::kPurples, t);
  }
  return black;
}

enum class Interpolation { Nearest, Bilinear };
enum class LegendLoc { UpperRight, UpperLeft, LowerLeft, LowerRight };

/// An RGB8 raster, row-major, top row first.
struct Image {
  int width = 0;
  int height = 0;
  std::vector<std::uint8_t> rgb;  // width * height * 3

  Color pixel(int x, int y) const {
    if (x < 0 || y < 0 || x >= width || y >= height) {
      throw PlotError("Image::pixel: (" + std::to_string(x) + ", " + std::to_string(y) +
                      ") outside " + std::to_string(width) + "x" + std::to_string(height));
    }
    const std::size_t i = (static_cast<std::size_t>(y) * static_cast<std::size_t>(width) + static_cast<std::size_t>(x)) * 3;
    return Color{rgb[i], rgb[i + 1], rgb[i + 2]};
  }
};

/// Integer pixel rectangle [x, x + w) x [y, y + h).
struct PixelRect {
  int x = 0, y = 0, w = 0, h = 0;
  bool contains(int px, int py) const { return px >= x && py >= y && px < x + w && py < y + h; }
};

// ---------------------------------------------------------------------------
// Internals: number formatting, ticks, canvas, text
// ---------------------------------------------------------------------------
namespace detail {

inline std::string fmt_num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

/// Tick positions of one candidate step (m * 10^k, m in {1, 2, 5}).
struct Ticks {
  std::vector<double> values;
  std::vector<std::string> labels;  // filled by label_ticks
  double step = 0.0;
  int exponent = 0;  // k
};

/// All candidate tick sets for [lo, hi], ascending step.
inline std::vector<Ticks> tick_candidates(double lo, double hi) {
  std::vector<Ticks> out;
  const double span = hi - lo;
  if (!(span > 0.0) || !std::isfinite(span)) return out;
  const int k0 = static_cast<int>(std::floor(std::log10(span)));
  for (int k = k0 - 2; k <= k0 + 1; ++k) {
    for (int m : {1, 2, 5}) {
      const double step = m * std::pow(10.0, k);
      const double i0 = std::ceil(lo / step - 1e-9);
      const double i1 = std::floor(hi / step + 1e-9);
      const double count = i1 - i0 + 1;
      if (count < 1 || count > 200) continue;
      Ticks t;
      t.step = step;
      t.exponent = k;
      for (double i = i0; i <= i1; i += 1) t.values.push_back(i == 0 ? 0.0 : i * step);
      out.push_back(std::move(t));
    }
  }
  return out;
}

/// Tick labels with a common number of decimals (derived from the step), or
/// %g-style with enough significant digits for very large / small numbers.
/// `unicode_minus` uses U+2212 (typographic minus) instead of '-'.
inline void label_ticks(Ticks& t, bool unicode_minus) {
  t.labels.clear();
  double maxabs = 0.0;
  for (double v : t.values) maxabs = std::max(maxabs, std::abs(v));
  const bool sci = maxabs >= 1e6 || (t.step < 1e-4 && t.step > 0);
  for (double v : t.values) {
    char buf[64];
    if (sci) {
      const int digits = std::clamp(
          static_cast<int>(std::ceil(std::log10(std::max(maxabs, t.step) / t.step))) + 1, 1, 15);
      std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    } else {
      std::snprintf(buf, sizeof buf, "%.*f", std::max(0, -t.exponent), v);
    }
    std::string s = buf;
    // "-0", "-0.00" -> "0", "0.00"
    if (s.size() > 1 && s[0] == '-' && s.find_first_not_of("-0.") == std::string::npos) s.erase(0, 1);
    if (unicode_minus)
      for (std::size_t pos = s.find('-'); pos != std::string::npos; pos = s.find('-', pos + 3))
        s.replace(pos, 1, "\xE2\x88\x92");
    t.labels.push_back(std::move(s));
  }
}

/// Pick "nice" ticks: prefer 4..8 ticks (closest to 6, ties -> fewer), subject
/// to `fits` (labels must not overlap).  Falls back to fewer ticks if needed.
template <class Fits>
inline Ticks choose_ticks(double lo, double hi, bool unicode_minus, Fits&& fits) {
  std::vector<Ticks> cands = tick_candidates(lo, hi);
  for (auto& c : cands) label_ticks(c, unicode_minus);
  const Ticks* best = nullptr;
  double best_score = 1e300;
  for (const auto& c : cands) {
    const int n = static_cast<int>(c.values.size());
    if (n < 4 || n > 8 || !fits(c)) continue;
    const double score = std::abs(n - 6.0) - 1e-3 * c.step / (hi - lo);  // ties -> larger step
    if (score < best_score) best_score = score, best = &c;
  }
  if (!best) {  // not enough room: densest set with >= 2 ticks that fits
    for (const auto& c : cands)
      if (c.values.size() >= 2 && c.values.size() <= 8 && fits(c)) {
        best = &c;
        break;
      }
  }
  if (!best) {  // nothing fits: the sparsest set that has any tick at all
    for (auto it = cands.rbegin(); it != cands.rend(); ++it)
      if (!it->values.empty()) {
        best = &*it;
        if (it->values.size() >= 2) break;
      }
  }
  return best ? *best : Ticks{};
}

/// Nice ticks for [lo, hi] ignoring label sizes (1/2/5 x 10^k steps, 4-8 ticks
/// where possible).
inline Ticks nice_ticks(double lo, double hi) {
  return choose_ticks(lo, hi, false, [](const Ticks&) { return true; });
}

// ----- canvas --------------------------------------------------------------

struct Canvas {
  int w = 0, h = 0;
  std::vector<std::uint8_t> px;

  Canvas(int width, int height, Color bg)
      : w(width), h(height), px(static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3) {
    for (std::size_t i = 0; i < px.size(); i += 3) px[i] = bg.r, px[i + 1] = bg.g, px[i + 2] = bg.b;
  }
  // Caller guarantees 0 <= x < w, 0 <= y < h.
  void blend(int x, int y, Color c, float a) {
    std::uint8_t* p = &px[(static_cast<std::size_t>(y) * static_cast<std::size_t>(w) + static_cast<std::size_t>(x)) * 3];
    if (a >= 1.0f) {
      p[0] = c.r, p[1] = c.g, p[2] = c.b;
      return;
    }
    p[0] = static_cast<std::uint8_t>(p[0] + (float(c.r) - float(p[0])) * a + 0.5f);
    p[1] = static_cast<std::uint8_t>(p[1] + (float(c.g) - float(p[1])) * a + 0.5f);
    p[2] = static_cast<std::uint8_t>(p[2] + (float(c.b) - float(p[2])) * a + 0.5f);
  }
  void blend_clipped(int x, int y, Color c, float a, const PixelRect& clip) {
    if (a <= 0.0f || !clip.contains(x, y)) return;
    blend(x, y, c, a);
  }
  PixelRect bounds() const { return {0, 0, w, h}; }
};

inline PixelRect intersect(const PixelRect& a, const PixelRect& b) {
  const int x0 = std::max(a.x, b.x), y0 = std::max(a.y, b.y);
  const int x1 = std::min(a.x + a.w, b.x + b.w), y1 = std::min(a.y + a.h, b.y + b.h);
  return {x0, y0, std::max(0, x1 - x0), std::max(0, y1 - y0)};
}

inline void fill_rect(Canvas& cv, const PixelRect& r, Color c, float a = 1.0f) {
  const PixelRect q = intersect(r, cv.bounds());
  for (int y = q.y; y < q.y + q.h; ++y)
    for (int x = q.x; x < q.x + q.w; ++x) cv.blend(x, y, c, a);
}

inline void hline(Canvas& cv, int x0, int x1, int y, Color c, float a = 1.0f) {  // inclusive
  fill_rect(cv, {std::min(x0, x1), y, std::abs(x1 - x0) + 1, 1}, c, a);
}
inline void vline(Canvas& cv, int x, int y0, int y1, Color c, float a = 1.0f) {  // inclusive
  fill_rect(cv, {x, std::min(y0, y1), 1, std::abs(y1 - y0) + 1}, c, a);
}
/// 1-px frame drawn just outside r.
inline void frame_around(Canvas& cv, const PixelRect& r, Color c) {
  hline(cv, r.x - 1, r.x + r.w, r.y - 1, c);
  hline(cv, r.x - 1, r.x + r.w, r.y + r.h, c);
  vline(cv, r.x - 1, r.y - 1, r.y + r.h, c);
  vline(cv, r.x + r.w, r.y - 1, r.y + r.h, c);
}

/// Anti-aliased filled disc (centre in continuous pixel coordinates, pixel
/// (i, j) covers [i, i+1) x [j, j+1)).
inline void fill_disc(Canvas& cv, const PixelRect& clip, double cx, double cy, double r, Color c, float alpha) {
  const PixelRect q = intersect(clip, cv.bounds());
  const int x0 = std::max(q.x, static_cast<int>(std::floor(cx - r - 0.5)));
  const int x1 = std::min(q.x + q.w - 1, static_cast<int>(std::ceil(cx + r + 0.5)));
  const int y0 = std::max(q.y, static_cast<int>(std::floor(cy - r - 0.5)));
  const int y1 = std::min(q.y + q.h - 1, static_cast<int>(std::ceil(cy + r + 0.5)));
  const double outer = (r + 0.5) * (r + 0.5);
  const double inner = r > 0.5 ? (r - 0.5) * (r - 0.5) : -1.0;
  const float cap = static_cast<float>(std::min(1.0, 2.0 * r));  // sub-pixel discs get fainter
  for (int y = y0; y <= y1; ++y) {
    const double dy = y + 0.5 - cy;
    for (int x = x0; x <= x1; ++x) {
      const double dx = x + 0.5 - cx;
      const double d2 = dx * dx + dy * dy;
      if (d2 >= outer) continue;
      float cov = 1.0f;
      if (d2 > inner) cov = static_cast<float>(r + 0.5 - std::sqrt(d2));
      cov = std::min(cov, cap);
      cv.blend(x, y, c, alpha * cov);
    }
  }
}

/// Coverage accumulator for strokes: a poly-line is rasterised into it with
/// max-combination and blended once, so joints do not double-blend.
struct Coverage {
  PixelRect r;
  std::vector<float> c;
  int bx0, by0, bx1, by1;  // touched bounding box (inclusive), empty if bx0 > bx1

  explicit Coverage(const PixelRect& rect)
      : r(rect), c(static_cast<std::size_t>(rect.w) * static_cast<std::size_t>(rect.h), 0.0f),
        bx0(rect.x + rect.w), by0(rect.y + rect.h), bx1(rect.x - 1), by1(rect.y - 1) {}

  // Liang-Barsky clip of segment against a rectangle; false if fully outside.
  static bool clip_segment(double& ax, double& ay, double& bx, double& by, double x0, double y0, double x1,
                           double y1) {
    double t0 = 0.0, t1 = 1.0;
    const double dx = bx - ax, dy = by - ay;
    const double p[4] = {-dx, dx, -dy, dy};
    const double q[4] = {ax - x0, x1 - ax, ay - y0, y1 - ay};
    for (int i = 0; i < 4; ++i) {
      if (p[i] == 0.0) {
        if (q[i] < 0.0) return false;
      } else {
        const double t = q[i] / p[i];
        if (p[i] < 0.0) {
          if (t > t1) return false;
          t0 = std::max(t0, t);
        } else {
          if (t < t0) return false;
          t1 = std::min(t1, t);
        }
      }
    }
    const double nax = ax + t0 * dx, nay = ay + t0 * dy;
    bx = ax + t1 * dx, by = ay + t1 * dy;
    ax = nax, ay = nay;
    return true;
  }

  void stroke(double ax, double ay, double bx, double by, double width) {
    const double hw = 0.5 * width;
    const double m = hw + 2.0;
    if (!clip_segment(ax, ay, bx, by, r.x - m, r.y - m, r.x + r.w + m, r.y + r.h + m)) return;
    const float cap = static_cast<float>(std::min(1.0, width));
    const double len = std::hypot(bx - ax, by - ay);
    const int pieces = std::max(1, static_cast<int>(std::ceil(len / 24.0)));
    for (int k = 0; k < pieces; ++k) {
      const double t0 = double(k) / pieces, t1 = double(k + 1) / pieces;
      const double sx = ax + (bx - ax) * t0, sy = ay + (by - ay) * t0;
      const double ex = ax + (bx - ax) * t1, ey = ay + (by - ay) * t1;
      const double vx = ex - sx, vy = ey - sy;
      const double vv = vx * vx + vy * vy;
      const int x0 = std::max(r.x, static_cast<int>(std::floor(std::min(sx, ex) - hw - 1)));
      const int x1 = std::min(r.x + r.w - 1, static_cast<int>(std::ceil(std::max(sx, ex) + hw + 1)));
      const int y0 = std::max(r.y, static_cast<int>(std::floor(std::min(sy, ey) - hw - 1)));
      const int y1 = std::min(r.y + r.h - 1, static_cast<int>(std::ceil(std::max(sy, ey) + hw + 1)));
      for (int y = y0; y <= y1; ++y) {
        const double py = y + 0.5;
        for (int x = x0; x <= x1; ++x) {
          const double px = x + 0.5;
          double t = vv > 0.0 ? ((px - sx) * vx + (py - sy) * vy) / vv : 0.0;
          t = std::clamp(t, 0.0, 1.0);
          const double dx = px - (sx + t * vx), dy = py - (sy + t * vy);
          const double d = std::sqrt(dx * dx + dy * dy);
          float cov = static_cast<float>(std::clamp(hw + 0.5 - d, 0.0, 1.0));
          if (cov <= 0.0f) continue;
          cov = std::min(cov, cap);
          float& dst = c[static_cast<std::size_t>(y - r.y) * static_cast<std::size_t>(r.w) + static_cast<std::size_t>(x - r.x)];
          dst = std::max(dst, cov);
          bx0 = std::min(bx0, x), bx1 = std::max(bx1, x), by0 = std::min(by0, y), by1 = std::max(by1, y);
        }
      }
    }
  }

  void blend_into(Canvas& cv, Color col, float alpha) {
    for (int y = by0; y <= by1; ++y)
      for (int x = bx0; x <= bx1; ++x) {
        const float a = c[static_cast<std::size_t>(y - r.y) * static_cast<std::size_t>(r.w) + static_cast<std::size_t>(x - r.x)];
        if (a > 0.0f && x >= 0 && y >= 0 && x < cv.w && y < cv.h) cv.blend(x, y, col, alpha * a);
      }
  }
};

// ----- text ----------------------------------------------------------------

inline std::vector<char32_t> utf8_decode(std::string_view s) {
  std::vector<char32_t> out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const auto c0 = static_cast<unsigned char>(s[i]);
    int len = 1;
    char32_t cp = 0xFFFD;
    if (c0 < 0x80) {
      cp = c0;
    } else if ((c0 >> 5) == 0x6) {
      len = 2, cp = c0 & 0x1Fu;
    } else if ((c0 >> 4) == 0xE) {
      len = 3, cp = c0 & 0x0Fu;
    } else if ((c0 >> 3) == 0x1E) {
      len = 4, cp = c0 & 0x07u;
    } else {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    if (i + static_cast<std::size_t>(len) > s.size()) {
      out.push_back(0xFFFD);
      break;
    }
    bool ok = true;
    for (int k = 1; k < len; ++k) {
      const auto ck = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
      if ((ck >> 6) != 0x2) {
        ok = false;
        break;
      }
      cp = (cp << 6) | (ck & 0x3Fu);
    }
    if (!ok) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += static_cast<std::size_t>(len);
  }
  return out;
}

struct TrueTypeFont {
  std::vector<unsigned char> data;
  stbtt_fontinfo info{};
  int ascent = 0, descent = 0, line_gap = 0, cap_height = 0;  // font units
};

/// Loads (once per path, process-wide) a TrueType font; nullptr if the file is
/// missing or not a font.
inline std::shared_ptr<const TrueTypeFont> load_truetype(const std::string& path) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const TrueTypeFont>> cache;
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = cache.find(path); it != cache.end()) return it->second;
  std::shared_ptr<TrueTypeFont> font;
  if (!path.empty()) {
    std::ifstream in(path, std::ios::binary);
    if (in) {
      std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (bytes.size() > 64) {
        auto f = std::make_shared<TrueTypeFont>();
        f->data = std::move(bytes);
        const int offset = stbtt_GetFontOffsetForIndex(f->data.data(), 0);
        if (offset >= 0 && stbtt_InitFont(&f->info, f->data.data(), offset)) {
          stbtt_GetFontVMetrics(&f->info, &f->ascent, &f->descent, &f->line_gap);
          int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
          if (stbtt_GetCodepointBox(&f->info, 'H', &x0, &y0, &x1, &y1) && y1 > 0)
            f->cap_height = y1;
          else
            f->cap_height = static_cast<int>(0.7 * f->ascent);
          font = std::move(f);
        }
      }
    }
  }
  cache.emplace(path, font);
  return font;
}

/// Rendered text as an alpha mask.  The pen starts at (ox, baseline); the
/// text advances `advance` pixels; `cap` is the cap height in pixels.
struct TextMask {
  int w = 0, h = 0;
  int ox = 0, baseline = 0, cap = 0, advance = 0;
  std::vector<float> a;
  float at(int x, int y) const { return a[static_cast<std::size_t>(y) * static_cast<std::size_t>(w) + static_cast<std::size_t>(x)]; }
};

inline TextMask render_truetype(const TrueTypeFont& f, const std::vector<char32_t>& cps, double em_px) {
  const float sc = stbtt_ScaleForMappingEmToPixels(&f.info, static_cast<float>(em_px));
  struct Placed {
    int glyph;
    float pen;
  };
  std::vector<Placed> glyphs;
  glyphs.reserve(cps.size());
  float pen = 0.0f;
  int prev = 0;
  for (char32_t cp : cps) {
    const int g = stbtt_FindGlyphIndex(&f.info, static_cast<int>(cp));
    if (prev) pen += sc * static_cast<float>(stbtt_GetGlyphKernAdvance(&f.info, prev, g));
    glyphs.push_back({g, pen});
    int adv = 0, lsb = 0;
    stbtt_GetGlyphHMetrics(&f.info, g, &adv, &lsb);
    pen += sc * static_cast<float>(adv);
    prev = g;
  }
  TextMask m;
  const int pad = 2;
  const int asc = static_cast<int>(std::ceil(static_cast<float>(f.ascent) * sc));
  const int desc = static_cast<int>(std::ceil(static_cast<float>(-f.descent) * sc));
  m.ox = pad;
  m.baseline = asc + 1;
  m.h = asc + desc + 2;
  m.advance = static_cast<int>(std::lround(pen));
  m.w = static_cast<int>(std::ceil(pen)) + 2 * pad;
  m.cap = static_cast<int>(std::lround(static_cast<float>(f.cap_height) * sc));
  m.a.assign(static_cast<std::size_t>(m.w) * static_cast<std::size_t>(m.h), 0.0f);
  std::vector<unsigned char> tmp;
  for (const auto& pg : glyphs) {
    const float fx = static_cast<float>(m.ox) + pg.pen;
    const int ix = static_cast<int>(std::floor(fx));
    const float sub = fx - static_cast<float>(ix);
    int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
    stbtt_GetGlyphBitmapBoxSubpixel(&f.info, pg.glyph, sc, sc, sub, 0.0f, &x0, &y0, &x1, &y1);
    const int gw = x1 - x0, gh = y1 - y0;
    if (gw <= 0 || gh <= 0) continue;
    tmp.assign(static_cast<std::size_t>(gw) * static_cast<std::size_t>(gh), 0);
    stbtt_MakeGlyphBitmapSubpixel(&f.info, tmp.data(), gw, gh, gw, sc, sc, sub, 0.0f, pg.glyph);
    for (int j = 0; j < gh; ++j) {
      const int my = m.baseline + y0 + j;
      if (my < 0 || my >= m.h) continue;
      for (int i = 0; i < gw; ++i) {
        const int mx = ix + x0 + i;
        if (mx < 0 || mx >= m.w) continue;
        float& dst = m.a[static_cast<std::size_t>(my) * static_cast<std::size_t>(m.w) + static_cast<std::size_t>(mx)];
        dst = std::max(dst, tmp[static_cast<std::size_t>(j) * static_cast<std::size_t>(gw) + static_cast<std::size_t>(i)] / 255.0f);
      }
    }
  }
  return m;
}

/// Fallback: stb_easy_font (ASCII, 7-unit cap height, built from quads),
/// scaled to the requested size with area-coverage anti-aliasing.
inline TextMask render_easy_font(const std::vector<char32_t>& cps, double em_px) {
  std::string ascii;
  ascii.reserve(cps.size());
  for (char32_t cp : cps) {
    if (cp >= 32 && cp < 127)
      ascii.push_back(static_cast<char>(cp));
    else if (cp == 0x2212 || cp == 0x2013 || cp == 0x2014)
      ascii.push_back('-');
    else if (cp >= 0x2080 && cp <= 0x2089)  // subscript digits
      ascii.push_back(static_cast<char>('0' + (cp - 0x2080)));
    else if (cp >= 0x2070 && cp <= 0x2079 && cp != 0x2071 && cp != 0x2072 && cp != 0x2073)  // superscripts
      ascii.push_back(static_cast<char>('0' + (cp - 0x2070)));
    else if (cp == 0x00B2 || cp == 0x00B3)
      ascii.push_back(static_cast<char>('2' + (cp - 0x00B2)));
    else if (cp == 0x00B9)
      ascii.push_back('1');
    else if (cp == 0x00D7)  // multiplication sign
      ascii.push_back('x');
    else
      ascii.push_back('?');
  }
  const double s = em_px * 0.73 / 7.0;  // match DejaVu's cap height (0.73 em)
  TextMask m;
  const int pad = 2;
  m.ox = pad;
  m.baseline = static_cast<int>(std::ceil(7 * s)) + 1;
  m.h = static_cast<int>(std::ceil(9.5 * s)) + 3;
  m.cap = static_cast<int>(std::lround(7 * s));
  const int units = ascii.empty() ? 0 : stb_easy_font_width(ascii.data());
  m.advance = static_cast<int>(std::lround(units * s));
  m.w = static_cast<int>(std::ceil(units * s)) + 2 * pad;
  m.a.assign(static_cast<std::size_t>(m.w) * static_cast<std::size_t>(m.h), 0.0f);
  if (ascii.empty()) return m;
  std::vector<char> vbuf(ascii.size() * 600 + 256);
  const int quads = stb_easy_font_print(0.0f, 0.0f, ascii.data(), nullptr, vbuf.data(), static_cast<int>(vbuf.size()));
  const double oy = m.baseline - 7 * s;
  for (int q = 0; q < quads; ++q) {
    float qx0 = 1e30f, qy0 = 1e30f, qx1 = -1e30f, qy1 = -1e30f;
    for (int v = 0; v < 4; ++v) {
      float xy[2];
      std::memcpy(xy, vbuf.data() + (static_cast<std::size_t>(q) * 4 + static_cast<std::size_t>(v)) * 16, sizeof xy);
      qx0 = std::min(qx0, xy[0]), qx1 = std::max(qx1, xy[0]);
      qy0 = std::min(qy0, xy[1]), qy1 = std::max(qy1, xy[1]);
    }
    const double X0 = m.ox + qx0 * s, X1 = m.ox + qx1 * s, Y0 = oy + qy0 * s, Y1 = oy + qy1 * s;
    for (int y = std::max(0, int(std::floor(Y0))); y < std::min(m.h, int(std::ceil(Y1))); ++y) {
      const double cy = std::min(Y1, y + 1.0) - std::max(Y0, double(y));
      for (int x = std::max(0, int(std::floor(X0))); x < std::min(m.w, int(std::ceil(X1))); ++x) {
        const double cx = std::min(X1, x + 1.0) - std::max(X0, double(x));
        float& dst = m.a[static_cast<std::size_t>(y) * static_cast<std::size_t>(m.w) + static_cast<std::size_t>(x)];
        dst = std::min(1.0f, dst + static_cast<float>(cx * cy));
      }
    }
  }
  return m;
}

enum class HAlign { Left, Center, Right };
// Vertical anchors: Top = cap height, Center = middle of the cap height,
// Baseline, Bottom = lowest descender.
enum class VAlign { Top, Center, Baseline, Bottom };

/// Renders strings with one font (TrueType if loadable, else stb_easy_font),
/// caching masks for the duration of one figure rendering.
class TextEngine {
 public:
  TextEngine(const std::string& font_path, double scale) : scale_(scale) {
    regular_ = load_truetype(font_path);
    if (regular_) {
      std::string bold_path = font_path;
      if (bold_path.size() > 4 && bold_path.compare(bold_path.size() - 4, 4, ".ttf") == 0) {
        bold_path.insert(bold_path.size() - 4, "-Bold");
        bold_ = load_truetype(bold_path);
      }
    }
    if (!bold_) bold_ = regular_;
  }

  bool truetype() const { return regular_ != nullptr; }
  double scale() const { return scale_; }

  /// em = nominal size in pixels before the figure's font scale.
  const TextMask& render(const std::string& s, double em, bool bold = false) const {
    const double px = em * scale_;
    std::string key = s;
    key += '\x01';
    key += std::to_string(px);
    key += bold ? 'b' : 'r';
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
    const auto cps = utf8_decode(s);
    const TrueTypeFont* f = bold ? bold_.get() : regular_.get();
    TextMask m = f ? render_truetype(*f, cps, px) : render_easy_font(cps, px);
    return cache_.emplace(std::move(key), std::move(m)).first->second;
  }
  int width(const std::string& s, double em, bool bold = false) const { return render(s, em, bold).advance; }
  /// Height from cap top to lowest descender (what a label occupies below its
  /// top anchor).
  int height(double em, bool bold = false) const {
    const TextMask& m = render("Hg", em, bold);
    return m.h - (m.baseline - m.cap);
  }
  int cap(double em) const { return render("H", em).cap; }

  /// Draw text; rotated = 90 degrees counter-clockwise (reads bottom to top).
  /// For rotated text HAlign applies along the text (vertical on screen, Left =
  /// text starts at y) and VAlign across it (Top = cap side, on the left).
  void draw(Canvas& cv, const std::string& s, double em, double x, double y, HAlign ha, VAlign va, Color c,
            bool bold = false, bool rotated = false, float alpha = 1.0f) const {
    if (s.empty()) return;
    const TextMask& m = render(s, em, bold);
    double along = 0.0;  // offset of the pen origin from the anchor, along the text
    if (ha == HAlign::Center) along = -0.5 * m.advance;
    if (ha == HAlign::Right) along = -double(m.advance);
    double across = 0.0;  // mask row that sits at the anchor
    switch (va) {
      case VAlign::Top: across = m.baseline - m.cap; break;
      case VAlign::Center: across = m.baseline - 0.5 * m.cap; break;
      case VAlign::Baseline: across = m.baseline; break;
      case VAlign::Bottom: across = m.h; break;
    }
    const PixelRect clip = cv.bounds();
    if (!rotated) {
      const int left = static_cast<int>(std::lround(x + along - m.ox));
      const int top = static_cast<int>(std::lround(y - across));
      for (int j = 0; j < m.h; ++j)
        for (int i = 0; i < m.w; ++i) {
          const float a = m.at(i, j);
          if (a > 0.0f) cv.blend_clipped(left + i, top + j, c, a * alpha, clip);
        }
    } else {
      // mask (i, j) -> canvas (left + j, bottom - i); pen origin i = ox sits at y - along.
      const int left = static_cast<int>(std::lround(x - across));
      const int bottom = static_cast<int>(std::lround(y - along + m.ox));
      for (int j = 0; j < m.h; ++j)
        for (int i = 0; i < m.w; ++i) {
          const float a = m.at(i, j);
          if (a > 0.0f) cv.blend_clipped(left + j, bottom - i, c, a * alpha, clip);
        }
    }
  }

 private:
  double scale_ = 1.0;
  std::shared_ptr<const TrueTypeFont> regular_, bold_;
  mutable std::map<std::string, TextMask> cache_;
};

/// Font sizes in pixels per em (multiplied by the figure's font scale).
struct FontSizes {
  static constexpr double tick = 11.0;
  static constexpr double label = 12.5;
  static constexpr double title = 13.5;
  static constexpr double suptitle = 16.0;
  static constexpr double legend = 11.0;
  static constexpr double text = 11.0;
};

inline void check_alpha(const char* fn, double alpha) {
  if (!(alpha >= 0.0 && alpha <= 1.0))
    throw PlotError(std::string(fn) + ": alpha must be in [0, 1], got alpha=" + fmt_num(alpha));
}

template <class D>
inline std::vector<double> to_std_vector(const char* fn, const char* name, const Eigen::DenseBase<D>& v) {
  if (v.size() != 0 && v.rows() != 1 && v.cols() != 1) {
    throw PlotError(std::string(fn) + ": " + name + " must be a vector, got a " + std::to_string(v.rows()) + "x" +
                    std::to_string(v.cols()) + " matrix");
  }
  // Plain objects are used in place; expressions, strided blocks and maps are
  // evaluated into a contiguous temporary first.
  const auto& plain = v.derived().eval();
  std::vector<double> out(static_cast<std::size_t>(plain.size()));
  for (Eigen::Index i = 0; i < plain.size(); ++i) out[static_cast<std::size_t>(i)] = static_cast<double>(plain.data()[i]);
  return out;
}

}  // namespace detail

// ---------------------------------------------------------------------------
// Axes
// ---------------------------------------------------------------------------

class Figure;

class Axes {
 public:
  Axes() = default;

  /// Data limits.  Unset limits are derived from the data at render time
  /// (5% padding around points / lines; heatmaps with a captured extent
  /// contribute their extent without padding).
  Axes& set_xlim(double lo, double hi) {
    check_lim("Axes::set_xlim", lo, hi);
    xlim_ = {lo, hi};
    return *this;
  }
  Axes& set_ylim(double lo, double hi) {
    check_lim("Axes::set_ylim", lo, hi);
    ylim_ = {lo, hi};
    return *this;
  }
  Axes& set_title(std::string s) {
    title_ = std::move(s);
    return *this;
  }
  Axes& set_xlabel(std::string s) {
    xlabel_ = std::move(s);
    return *this;
  }
  Axes& set_ylabel(std::string s) {
    ylabel_ = std::move(s);
    return *this;
  }
  /// Square data units (default true): the plot area shrinks to the data's
  /// aspect ratio and is centred in its panel.
  Axes& set_aspect_equal(bool on) {
    aspect_equal_ = on;
    return *this;
  }
  /// Light grey grid lines at the ticks (default off).
  Axes& set_grid(bool on = true) {
    grid_ = on;
    return *this;
  }
  /// Label drawn (rotated) to the right of the colour bar.
  Axes& set_colorbar_label(std::string s) {
    cbar_label_ = std::move(s);
    return *this;
  }

  /// values(i, j): row i = y index (0 at ymin), column j = x index (0 at xmin),
  /// samples on a regular grid whose first/last points are the axis limits at
  /// the time of the call (or the final limits if none were set yet).
  /// NaN/inf are drawn as background.  `range` fixes [vmin, vmax]; otherwise
  /// the min/max of the finite values.  With colorbar = true a colour bar is
  /// drawn to the right of the panel (one per panel: the last such heatmap).
  Axes& heatmap(const Eigen::MatrixXd& values, Colormap cmap = Colormap::Viridis, double alpha = 1.0,
                bool colorbar = true, std::optional<std::pair<double, double>> range = {},
                Interpolation interp = Interpolation::Bilinear) {
    constexpr const char* fn = "Axes::heatmap";
    if (values.size() == 0)
      throw PlotError(std::string(fn) + ": values is empty (" + std::to_string(values.rows()) + "x" +
                      std::to_string(values.cols()) + ")");
    detail::check_alpha(fn, alpha);
    Heatmap h;
    h.values = values;
    h.cmap = cmap;
    h.alpha = alpha;
    h.colorbar = colorbar;
    h.interp = interp;
    if (range) {
      if (!(std::isfinite(range->first) && std::isfinite(range->second) && range->first < range->second))
        throw PlotError(std::string(fn) + ": range must be finite with vmin < vmax, got vmin=" +
                        detail::fmt_num(range->first) + ", vmax=" + detail::fmt_num(range->second));
      h.vmin = range->first, h.vmax = range->second;
    } else {
      double lo = std::numeric_limits<double>::infinity(), hi = -lo;
      for (Eigen::Index k = 0; k < values.size(); ++k) {
        const double v = values.data()[k];
        if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
      }
      if (!(lo <= hi)) lo = 0.0, hi = 1.0;  // nothing finite
      if (lo == hi) {                       // constant field: centre it in the map
        const double d = lo == 0.0 ? 0.5 : 0.5 * std::abs(lo);
        lo -= d, hi += d;
      }
      h.vmin = lo, h.vmax = hi;
    }
    if (xlim_ && ylim_) h.extent = std::array<double, 4>{xlim_->first, xlim_->second, ylim_->first, ylim_->second};
    heatmaps_.push_back(std::move(h));
    return *this;
  }

  /// Scatter points (any Eigen vectors / arrays / expressions, any real
  /// scalar).  Points outside the limits are clipped; non-finite ones skipped.
  /// radius in pixels (anti-aliased filled disc), alpha in [0, 1].
  template <class DX, class DY>
  Axes& scatter(const Eigen::DenseBase<DX>& xs, const Eigen::DenseBase<DY>& ys, Color c, double radius = 2.0,
                double alpha = 0.8, std::string label = {}) {
    constexpr const char* fn = "Axes::scatter";
    std::vector<double> x = detail::to_std_vector(fn, "xs", xs);
    std::vector<double> y = detail::to_std_vector(fn, "ys", ys);
    return add_scatter(std::move(x), std::move(y), c, radius, alpha, std::move(label));
  }
  Axes& scatter(std::vector<double> xs, std::vector<double> ys, Color c, double radius = 2.0, double alpha = 0.8,
                std::string label = {}) {
    return add_scatter(std::move(xs), std::move(ys), c, radius, alpha, std::move(label));
  }

  /// Poly-line through (xs[i], ys[i]); non-finite points break the line.
  /// width in pixels (anti-aliased), clipped to the plot area.
  template <class DX, class DY>
  Axes& line(const Eigen::DenseBase<DX>& xs, const Eigen::DenseBase<DY>& ys, Color c, double width = 1.0,
             double alpha = 1.0, std::string label = {}) {
    constexpr const char* fn = "Axes::line";
    std::vector<double> x = detail::to_std_vector(fn, "xs", xs);
    std::vector<double> y = detail::to_std_vector(fn, "ys", ys);
    return add_line(std::move(x), std::move(y), c, width, alpha, std::move(label));
  }
  Axes& line(std::vector<double> xs, std::vector<double> ys, Color c, double width = 1.0, double alpha = 1.0,
             std::string label = {}) {
    return add_line(std::move(xs), std::move(ys), c, width, alpha, std::move(label));
  }

  /// Text at data coordinates (x, y): left end of the text at x, vertically
  /// centred on y.  Not clipped to the plot area.
  Axes& text(double x, double y, std::string s, Color c = black) {
    if (!std::isfinite(x) || !std::isfinite(y))
      throw PlotError("Axes::text: x and y must be finite, got x=" + detail::fmt_num(x) +
                      ", y=" + detail::fmt_num(y));
    items_.emplace_back(TextItem{x, y, std::move(s), c});
    return *this;
  }

  /// Legend box listing the labelled scatter / line series.
  Axes& legend(bool on = true, LegendLoc loc = LegendLoc::UpperRight) {
    legend_ = on;
    legend_loc_ = loc;
    return *this;
  }

  std::optional<std::pair<double, double>> xlim() const { return xlim_; }
  std::optional<std::pair<double, double>> ylim() const { return ylim_; }

 private:
  friend class Figure;

  struct Heatmap {
    Eigen::MatrixXd values;
    Colormap cmap = Colormap::Viridis;
    double alpha = 1.0;
    bool colorbar = true;
    Interpolation interp = Interpolation::Bilinear;
    double vmin = 0.0, vmax = 1.0;
    std::optional<std::array<double, 4>> extent;  // x0, x1, y0, y1
  };
  struct ScatterItem {
    std::vector<double> x, y;
    Color c;
    double radius, alpha;
    std::string label;
  };
  struct LineItem {
    std::vector<double> x, y;
    Color c;
    double width, alpha;
    std::string label;
  };
  struct TextItem {
    double x, y;
    std::string s;
    Color c;
  };
  using Item = std::variant<ScatterItem, LineItem, TextItem>;

  struct Layout {
    PixelRect cell, plot, cbar;
    double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
    detail::Ticks xt, yt, ct;
    const Heatmap* cbar_src = nullptr;
    int ytick_w = 0, ctick_w = 0;
    double px(double x) const { return plot.x + (x - x0) / (x1 - x0) * plot.w; }
    double py(double y) const { return plot.y + (y1 - y) / (y1 - y0) * plot.h; }
  };

  static constexpr int kPad = 6, kTickLen = 4, kTickPad = 3, kCbarGap = 12, kCbarW = 14;

  static void check_lim(const char* fn, double lo, double hi) {
    if (!(std::isfinite(lo) && std::isfinite(hi) && lo < hi))
      throw PlotError(std::string(fn) + ": need finite lo < hi, got lo=" + detail::fmt_num(lo) +
                      ", hi=" + detail::fmt_num(hi));
  }
  static void check_xy(const char* fn, const std::vector<double>& xs, const std::vector<double>& ys) {
    if (xs.size() != ys.size())
      throw PlotError(std::string(fn) + ": xs and ys differ in size, got xs.size()=" + std::to_string(xs.size()) +
                      ", ys.size()=" + std::to_string(ys.size()));
  }

  Axes& add_scatter(std::vector<double> xs, std::vector<double> ys, Color c, double radius, double alpha,
                    std::string label) {
    constexpr const char* fn = "Axes::scatter";
    check_xy(fn, xs, ys);
    if (!(radius > 0.0 && std::isfinite(radius)))
      throw PlotError(std::string(fn) + ": radius must be > 0, got radius=" + detail::fmt_num(radius));
    detail::check_alpha(fn, alpha);
    items_.emplace_back(ScatterItem{std::move(xs), std::move(ys), c, radius, alpha, std::move(label)});
    return *this;
  }
  Axes& add_line(std::vector<double> xs, std::vector<double> ys, Color c, double width, double alpha,
                 std::string label) {
    constexpr const char* fn = "Axes::line";
    check_xy(fn, xs, ys);
    if (!(width > 0.0 && std::isfinite(width)))
      throw PlotError(std::string(fn) + ": width must be > 0, got width=" + detail::fmt_num(width));
    detail::check_alpha(fn, alpha);
    items_.emplace_back(LineItem{std::move(xs), std::move(ys), c, width, alpha, std::move(label)});
    return *this;
  }

  // Final data limits: explicit ones, else from the data.
  std::array<double, 4> resolved_limits() const {
    const double inf = std::numeric_limits<double>::infinity();
    double dx0 = inf, dx1 = -inf, dy0 = inf, dy1 = -inf;  // padded data (points, lines, text)
    double ex0 = inf, ex1 = -inf, ey0 = inf, ey1 = -inf;  // heatmap extents (no padding)
    auto add_pts = [&](const std::vector<double>& xs, const std::vector<double>& ys) {
      for (std::size_t i = 0; i < xs.size(); ++i)
        if (std::isfinite(xs[i]) && std::isfinite(ys[i]))
          dx0 = std::min(dx0, xs[i]), dx1 = std::max(dx1, xs[i]), dy0 = std::min(dy0, ys[i]), dy1 = std::max(dy1, ys[i]);
    };
    for (const auto& it : items_) {
      if (auto* s = std::get_if<ScatterItem>(&it)) add_pts(s->x, s->y);
      if (auto* l = std::get_if<LineItem>(&it)) add_pts(l->x, l->y);
      if (auto* t = std::get_if<TextItem>(&it)) add_pts({t->x}, {t->y});
    }
    for (const auto& h : heatmaps_)
      if (h.extent) {
        ex0 = std::min(ex0, (*h.extent)[0]), ex1 = std::max(ex1, (*h.extent)[1]);
        ey0 = std::min(ey0, (*h.extent)[2]), ey1 = std::max(ey1, (*h.extent)[3]);
      }
    auto resolve = [](double d0, double d1, double e0, double e1) -> std::pair<double, double> {
      if (d0 <= d1) {
        double span = d1 - d0;
        if (span == 0.0) span = d0 == 0.0 ? 1.0 : 0.2 * std::abs(d0);
        d0 -= 0.05 * span, d1 += 0.05 * span;
      }
      const double lo = std::min(d0, e0), hi = std::max(d1, e1);
      if (!(lo < hi)) {
        if (lo == hi) return {lo - 0.5, hi + 0.5};
        return {0.0, 1.0};
      }
      return {lo, hi};
    };
    std::pair<double, double> xr = xlim_ ? *xlim_ : resolve(dx0, dx1, ex0, ex1);
    std::pair<double, double> yr = ylim_ ? *ylim_ : resolve(dy0, dy1, ey0, ey1);
    // Heatmaps without limits: index space if there is nothing else.
    if (!xlim_ && !(dx0 <= dx1) && !(ex0 <= ex1) && !heatmaps_.empty())
      xr = {0.0, static_cast<double>(std::max<Eigen::Index>(1, heatmaps_.front().values.cols() - 1))};
    if (!ylim_ && !(dy0 <= dy1) && !(ey0 <= ey1) && !heatmaps_.empty())
      yr = {0.0, static_cast<double>(std::max<Eigen::Index>(1, heatmaps_.front().values.rows() - 1))};
    return {xr.first, xr.second, yr.first, yr.second};
  }

  const Heatmap* colorbar_source() const {
    for (auto it = heatmaps_.rbegin(); it != heatmaps_.rend(); ++it)
      if (it->colorbar) return &*it;
    return nullptr;
  }

  static int max_width(const detail::Ticks& t, const detail::TextEngine& te) {
    int w = 0;
    for (const auto& s : t.labels) w = std::max(w, te.width(s, detail::FontSizes::tick));
    return w;
  }
  static detail::Ticks horizontal_ticks(double lo, double hi, int len, const detail::TextEngine& te) {
    return detail::choose_ticks(lo, hi, te.truetype(), [&](const detail::Ticks& t) {
      if (t.values.size() < 2) return true;
      const double spacing = t.step / (hi - lo) * len;
      return spacing >= max_width(t, te) + 10;
    });
  }
  static detail::Ticks vertical_ticks(double lo, double hi, int len, const detail::TextEngine& te) {
    const int need = te.height(detail::FontSizes::tick) + 8;
    return detail::choose_ticks(lo, hi, te.truetype(), [&](const detail::Ticks& t) {
      return t.values.size() < 2 || t.step / (hi - lo) * len >= need;
    });
  }

  Layout layout(const PixelRect& cell, const detail::TextEngine& te) const {
    using FS = detail::FontSizes;
    Layout L;
    L.cell = cell;
    const auto lim = resolved_limits();
    L.x0 = lim[0], L.x1 = lim[1], L.y0 = lim[2], L.y1 = lim[3];
    L.cbar_src = colorbar_source();

    const int tick_h = te.height(FS::tick);
    const int label_h = te.height(FS::label);
    const int top = title_.empty() ? 2 * kPad : kPad + te.height(FS::title, true) + kPad + 2;
    const int bottom = kTickLen + kTickPad + tick_h + (xlabel_.empty() ? 0 : 5 + label_h) + kPad;
    const int rough_h = std::max(10, cell.h - top - bottom);

    detail::Ticks yt = vertical_ticks(L.y0, L.y1, rough_h, te);
    const int ytw = max_width(yt, te);
    const int left = kPad + (ylabel_.empty() ? 0 : label_h + 5) + ytw + kTickPad + kTickLen + 1;
    int right = kPad;
    if (L.cbar_src) {
      L.ct = vertical_ticks(L.cbar_src->vmin, L.cbar_src->vmax, rough_h, te);
      L.ctick_w = max_width(L.ct, te);
      right = kCbarGap + kCbarW + 3 + kTickPad + L.ctick_w + (cbar_label_.empty() ? 0 : 6 + label_h) + kPad;
    }
    {
      const detail::Ticks xt = horizontal_ticks(L.x0, L.x1, std::max(10, cell.w - left - right), te);
      if (!L.cbar_src) right = std::max(right, max_width(xt, te) / 2 + 3);
    }
    PixelRect A{cell.x + left, cell.y + top, std::max(1, cell.w - left - right), std::max(1, cell.h - top - bottom)};
    if (aspect_equal_) {
      const double r = (L.x1 - L.x0) / (L.y1 - L.y0);
      if (A.w > A.h * r) {
        const int w = std::max(1, static_cast<int>(std::lround(A.h * r)));
        A.x += (A.w - w) / 2;
        A.w = w;
      } else {
        const int h = std::max(1, static_cast<int>(std::lround(A.w / r)));
        A.y += (A.h - h) / 2;
        A.h = h;
      }
    }
    L.plot = A;
    L.xt = horizontal_ticks(L.x0, L.x1, A.w, te);
    L.yt = vertical_ticks(L.y0, L.y1, A.h, te);
    L.ytick_w = max_width(L.yt, te);
    if (L.cbar_src) {
      L.ct = vertical_ticks(L.cbar_src->vmin, L.cbar_src->vmax, A.h, te);
      L.ctick_w = max_width(L.ct, te);
      L.cbar = {A.x + A.w + kCbarGap, A.y, kCbarW, A.h};
    }
    return L;
  }

  static void draw_heatmap(detail::Canvas& cv, const Layout& L, const Heatmap& h) {
    const double ex0 = h.extent ? (*h.extent)[0] : L.x0, ex1 = h.extent ? (*h.extent)[1] : L.x1;
    const double ey0 = h.extent ? (*h.extent)[2] : L.y0, ey1 = h.extent ? (*h.extent)[3] : L.y1;
    const Eigen::Index nr = h.values.rows(), nc = h.values.cols();
    std::array<Color, 256> lut;
    for (int i = 0; i < 256; ++i) lut[static_cast<std::size_t>(i)] = colormap(h.cmap, i / 255.0);
    const double inv = 1.0 / (h.vmax - h.vmin);
    const float alpha = static_cast<float>(h.alpha);

    struct Sample {
      Eigen::Index i0 = 0, i1 = 0, nearest = 0;
      double t = 0.0;
      bool inside = false;
    };
    auto sample = [](double v, double lo, double hi, Eigen::Index n) {
      Sample s;
      if (!(v >= lo && v <= hi)) return s;
      s.inside = true;
      if (n == 1) return s;
      const double f = std::clamp((v - lo) / (hi - lo) * double(n - 1), 0.0, double(n - 1));
      s.i0 = std::min<Eigen::Index>(static_cast<Eigen::Index>(f), n - 2);
      s.i1 = s.i0 + 1;
      s.t = f - double(s.i0);
      s.nearest = std::lround(f);
      return s;
    };
    std::vector<Sample> cols(static_cast<std::size_t>(L.plot.w));
    for (int x = 0; x < L.plot.w; ++x)
      cols[static_cast<std::size_t>(x)] = sample(L.x0 + (x + 0.5) / L.plot.w * (L.x1 - L.x0), ex0, ex1, nc);
    for (int y = 0; y < L.plot.h; ++y) {
      const Sample sy = sample(L.y1 - (y + 0.5) / L.plot.h * (L.y1 - L.y0), ey0, ey1, nr);
      if (!sy.inside) continue;
      for (int x = 0; x < L.plot.w; ++x) {
        const Sample& sx = cols[static_cast<std::size_t>(x)];
        if (!sx.inside) continue;
        double v;
        if (h.interp == Interpolation::Nearest) {
          v = h.values(sy.nearest, sx.nearest);
        } else {
          const double near = h.values(sy.nearest, sx.nearest);
          if (!std::isfinite(near)) continue;
          const double w[4] = {(1 - sy.t) * (1 - sx.t), (1 - sy.t) * sx.t, sy.t * (1 - sx.t), sy.t * sx.t};
          const double q[4] = {h.values(sy.i0, sx.i0), h.values(sy.i0, sx.i1), h.values(sy.i1, sx.i0),
                               h.values(sy.i1, sx.i1)};
          double acc = 0.0, wsum = 0.0;
          for (int k = 0; k < 4; ++k)
            if (std::isfinite(q[k])) acc += w[k] * q[k], wsum += w[k];
          v = wsum > 0.0 ? acc / wsum : near;
        }
        if (!std::isfinite(v)) continue;  // background shows through
        const double t = std::clamp((v - h.vmin) * inv, 0.0, 1.0);
        const int px = L.plot.x + x, py = L.plot.y + y;
        if (px >= 0 && py >= 0 && px < cv.w && py < cv.h)
          cv.blend(px, py, lut[static_cast<std::size_t>(std::lround(t * 255.0))], alpha);
      }
    }
  }

  void draw(detail::Canvas& cv, const Layout& L, const detail::TextEngine& te) const {
    using FS = detail::FontSizes;
    using detail::HAlign;
    using detail::VAlign;
    const PixelRect& P = L.plot;
    const Color frame_c{38, 38, 38}, text_c{25, 25, 25};

    if (grid_) {
      for (double v : L.xt.values) {
        const int x = static_cast<int>(std::floor(L.px(v)));
        if (x >= P.x && x < P.x + P.w) detail::vline(cv, x, P.y, P.y + P.h - 1, Color{225, 225, 225});
      }
      for (double v : L.yt.values) {
        const int y = static_cast<int>(std::floor(L.py(v)));
        if (y >= P.y && y < P.y + P.h) detail::hline(cv, P.x, P.x + P.w - 1, y, Color{225, 225, 225});
      }
    }
    for (const auto& h : heatmaps_) draw_heatmap(cv, L, h);

    for (const auto& it : items_) {
      if (auto* s = std::get_if<ScatterItem>(&it)) {
        const float a = static_cast<float>(s->alpha);
        const double m = s->radius + 1.0;
        for (std::size_t i = 0; i < s->x.size(); ++i) {
          if (!std::isfinite(s->x[i]) || !std::isfinite(s->y[i])) continue;
          const double X = L.px(s->x[i]), Y = L.py(s->y[i]);
          if (X < P.x - m || X > P.x + P.w + m || Y < P.y - m || Y > P.y + P.h + m) continue;
          detail::fill_disc(cv, P, X, Y, s->radius, s->c, a);
        }
      } else if (auto* l = std::get_if<LineItem>(&it)) {
        detail::Coverage cov(P);
        bool have_prev = false;
        double pX = 0, pY = 0;
        for (std::size_t i = 0; i < l->x.size(); ++i) {
          if (!std::isfinite(l->x[i]) || !std::isfinite(l->y[i])) {
            have_prev = false;
            continue;
          }
          const double X = L.px(l->x[i]), Y = L.py(l->y[i]);
          if (have_prev) cov.stroke(pX, pY, X, Y, l->width);
          else if (l->x.size() == 1) cov.stroke(X, Y, X, Y, l->width);
          pX = X, pY = Y, have_prev = true;
        }
        cov.blend_into(cv, l->c, static_cast<float>(l->alpha));
      } else if (auto* t = std::get_if<TextItem>(&it)) {
        te.draw(cv, t->s, FS::text, L.px(t->x), L.py(t->y), HAlign::Left, VAlign::Center, t->c);
      }
    }

    // Frame, ticks, tick labels.
    detail::frame_around(cv, P, frame_c);
    const int xlabel_top = P.y + P.h + kTickLen + kTickPad + 1;
    for (std::size_t k = 0; k < L.xt.values.size(); ++k) {
      const int x = std::clamp(static_cast<int>(std::floor(L.px(L.xt.values[k]))), P.x - 1, P.x + P.w);
      detail::vline(cv, x, P.y + P.h, P.y + P.h + kTickLen, frame_c);
      te.draw(cv, L.xt.labels[k], FS::tick, x + 0.5, xlabel_top, HAlign::Center, VAlign::Top, text_c);
    }
    const int ylabel_right = P.x - 1 - kTickLen - kTickPad;
    for (std::size_t k = 0; k < L.yt.values.size(); ++k) {
      const int y = std::clamp(static_cast<int>(std::floor(L.py(L.yt.values[k]))), P.y - 1, P.y + P.h);
      detail::hline(cv, P.x - 1 - kTickLen, P.x - 1, y, frame_c);
      te.draw(cv, L.yt.labels[k], FS::tick, ylabel_right, y + 0.5, HAlign::Right, VAlign::Center, text_c);
    }

    // Axis labels and title.
    if (!xlabel_.empty()) {
      const int y = xlabel_top + te.height(FS::tick) + 5;
      te.draw(cv, xlabel_, FS::label, P.x + 0.5 * P.w, y, HAlign::Center, VAlign::Top, text_c);
    }
    if (!ylabel_.empty()) {
      const double x = std::max<double>(L.cell.x + 2, ylabel_right - L.ytick_w - 5);
      te.draw(cv, ylabel_, FS::label, x, P.y + 0.5 * P.h, HAlign::Center, VAlign::Bottom, text_c, false, true);
    }
    if (!title_.empty())
      te.draw(cv, title_, FS::title, P.x + 0.5 * P.w, P.y - 1 - kPad, HAlign::Center, VAlign::Bottom, black, true);

    // Colour bar.
    if (L.cbar_src) {
      const Heatmap& h = *L.cbar_src;
      const PixelRect& B = L.cbar;
      for (int y = 0; y < B.h; ++y) {
        const Color c = colormap(h.cmap, 1.0 - (y + 0.5) / B.h);
        detail::hline(cv, B.x, B.x + B.w - 1, B.y + y, c);
      }
      detail::frame_around(cv, B, frame_c);
      const int lx = B.x + B.w + 3 + kTickPad;
      for (std::size_t k = 0; k < L.ct.values.size(); ++k) {
        const double f = (L.ct.values[k] - h.vmin) / (h.vmax - h.vmin);
        const int y = std::clamp(static_cast<int>(std::floor(B.y + (1.0 - f) * B.h)), B.y - 1, B.y + B.h);
        detail::hline(cv, B.x + B.w, B.x + B.w + 3, y, frame_c);
        te.draw(cv, L.ct.labels[k], FS::tick, lx, y + 0.5, HAlign::Left, VAlign::Center, text_c);
      }
      if (!cbar_label_.empty())
        te.draw(cv, cbar_label_, FS::label, lx + L.ctick_w + 6, B.y + 0.5 * B.h, HAlign::Center, VAlign::Top, text_c,
                false, true);
    }

    if (legend_) draw_legend(cv, L, te);
  }

  void draw_legend(detail::Canvas& cv, const Layout& L, const detail::TextEngine& te) const {
    using FS = detail::FontSizes;
    struct Entry {
      const std::string* label;
      Color c;
      bool disc;
      double size;
    };
    std::vector<Entry> entries;
    for (const auto& it : items_) {
      if (auto* s = std::get_if<ScatterItem>(&it); s && !s->label.empty())
        entries.push_back({&s->label, s->c, true, std::clamp(s->radius, 2.5, 5.0)});
      if (auto* l = std::get_if<LineItem>(&it); l && !l->label.empty())
        entries.push_back({&l->label, l->c, false, std::clamp(l->width, 1.0, 4.0)});
    }
    if (entries.empty()) return;
    const int th = te.height(FS::legend);
    const int row_h = std::max(th, 11) + 5;
    const int marker_w = 20;
    int text_w = 0;
    for (const auto& e : entries) text_w = std::max(text_w, te.width(*e.label, FS::legend));
    const int bw = 8 + marker_w + 6 + text_w + 8;
    const int bh = 6 + static_cast<int>(entries.size()) * row_h + 2;
    const PixelRect& P = L.plot;
    const int m = 8;
    const bool left = legend_loc_ == LegendLoc::UpperLeft || legend_loc_ == LegendLoc::LowerLeft;
    const bool upper = legend_loc_ == LegendLoc::UpperLeft || legend_loc_ == LegendLoc::UpperRight;
    const PixelRect box{left ? P.x + m : P.x + P.w - m - bw, upper ? P.y + m : P.y + P.h - m - bh, bw, bh};
    detail::fill_rect(cv, box, white, 0.85f);
    detail::frame_around(cv, {box.x + 1, box.y + 1, box.w - 2, box.h - 2}, Color{200, 200, 200});
    for (std::size_t k = 0; k < entries.size(); ++k) {
      const auto& e = entries[k];
      // row centre snapped to a pixel centre so 1-2 px strokes stay crisp
      const double cy = std::floor(box.y + 5 + (static_cast<double>(k) + 0.5) * row_h) + 0.5;
      const double mx = box.x + 8;
      if (e.disc) {
        // Very light markers (e.g. white points over a heatmap) get a grey rim
        // so they stay visible on the white legend box.
        if (0.299 * e.c.r + 0.587 * e.c.g + 0.114 * e.c.b > 200.0)
          detail::fill_disc(cv, cv.bounds(), mx + 0.5 * marker_w, cy, e.size + 1.0, Color{110, 110, 110}, 1.0f);
        detail::fill_disc(cv, cv.bounds(), mx + 0.5 * marker_w, cy, e.size, e.c, 1.0f);
      } else {
        detail::Coverage cov(box);
        cov.stroke(mx, cy, mx + marker_w, cy, e.size);
        cov.blend_into(cv, e.c, 1.0f);
      }
      te.draw(cv, *e.label, FS::legend, mx + marker_w + 6, cy, detail::HAlign::Left, detail::VAlign::Center,
              Color{25, 25, 25});
    }
  }

  std::optional<std::pair<double, double>> xlim_, ylim_;
  std::string title_, xlabel_, ylabel_, cbar_label_;
  bool aspect_equal_ = true;
  bool grid_ = false;
  bool legend_ = false;
  LegendLoc legend_loc_ = LegendLoc::UpperRight;
  std::vector<Heatmap> heatmaps_;
  std::vector<Item> items_;
};

// ---------------------------------------------------------------------------
// Figure
// ---------------------------------------------------------------------------

class Figure {
 public:
  /// A rows x cols grid of panels, each panel_width x panel_height pixels
  /// (margins for ticks, labels, titles and colour bars are inside a panel).
  /// A suptitle (set_title) adds a band on top.
  Figure(int rows, int cols, int panel_width = 400, int panel_height = 400)
      : rows_(rows), cols_(cols), pw_(panel_width), ph_(panel_height) {
    auto need = [](const char* what, int v, int lo, int hi) {
      if (v < lo || v > hi)
        throw PlotError(std::string("Figure: ") + what + " must be in [" + std::to_string(lo) + ", " +
                        std::to_string(hi) + "], got " + what + "=" + std::to_string(v));
    };
    need("rows", rows, 1, 64);
    need("cols", cols, 1, 64);
    need("panel_width", panel_width, 32, 8192);
    need("panel_height", panel_height, 32, 8192);
    if (static_cast<long long>(rows) * panel_height > 16384 || static_cast<long long>(cols) * panel_width > 16384)
      throw PlotError("Figure: image too large, got " + std::to_string(cols) + "x" + std::to_string(panel_width) +
                      " by " + std::to_string(rows) + "x" + std::to_string(panel_height) +
                      " pixels (at most 16384 per side)");
    axes_.resize(static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols));
    if (const char* env = std::getenv("FLOWMATCH_PLOT_FONT"); env && *env) font_path_ = env;
  }

  Axes& at(int row, int col) { return axes_[index("Figure::at", row, col)]; }
  const Axes& at(int row, int col) const { return axes_[index("Figure::at", row, col)]; }

  /// Figure title (suptitle) centred at the top.
  Figure& set_title(std::string s) {
    title_ = std::move(s);
    return *this;
  }
  /// TrueType font file; if it cannot be read, the built-in stb_easy_font is
  /// used instead (no error).  Titles use "<name>-Bold.ttf" when it exists.
  Figure& set_font(std::string path) {
    font_path_ = std::move(path);
    return *this;
  }
  /// Multiplies all font sizes (default 1; sizes also grow gently with panels
  /// larger than 400 px).
  Figure& set_font_scale(double s) {
    if (!(s > 0.0 && s <= 10.0))
      throw PlotError("Figure::set_font_scale: scale must be in (0, 10], got scale=" + detail::fmt_num(s));
    font_scale_ = s;
    return *this;
  }

  int rows() const { return rows_; }
  int cols() const { return cols_; }
  int width() const { return cols_ * pw_; }
  int height() const { return rows_ * ph_ + title_band(); }
  const std::string& font_path() const { return font_path_; }
  /// True if the TrueType font loads (false: stb_easy_font fallback).
  bool uses_truetype() const { return detail::load_truetype(font_path_) != nullptr; }

  /// Pixel rectangle of a panel's data area, as laid out by render().
  PixelRect plot_area(int row, int col) const {
    const detail::TextEngine te(font_path_, effective_scale());
    return at(row, col).layout(cell(row, col), te).plot;
  }
  /// Continuous pixel coordinates of data point (x, y) in panel (row, col); the
  /// pixel containing it is (floor(first), floor(second)).
  std::pair<double, double> data_to_pixel(int row, int col, double x, double y) const {
    const detail::TextEngine te(font_path_, effective_scale());
    const auto L = at(row, col).layout(cell(row, col), te);
    return {L.px(x), L.py(y)};
  }

  /// Rasterise the whole figure.
  Image render() const {
    const detail::TextEngine te(font_path_, effective_scale());
    detail::Canvas cv(width(), height(), white);
    if (!title_.empty())
      te.draw(cv, title_, detail::FontSizes::suptitle, 0.5 * width(), 0.5 * title_band(), detail::HAlign::Center,
              detail::VAlign::Center, black, true);
    for (int r = 0; r < rows_; ++r)
      for (int c = 0; c < cols_; ++c) {
        const Axes& ax = at(r, c);
        ax.draw(cv, ax.layout(cell(r, c), te), te);
      }
    return Image{cv.w, cv.h, std::move(cv.px)};
  }

  /// Render and write a PNG.  Throws PlotError naming the path (and the errno
  /// text for I/O failures).
  void save_png(const std::string& path) const {
    if (path.empty()) throw PlotError("Figure::save_png: path is empty (path=\"\")");
    const Image img = render();
    std::vector<unsigned char> png;
    auto sink = [](void* ctx, void* data, int size) {
      auto* out = static_cast<std::vector<unsigned char>*>(ctx);
      const auto* p = static_cast<const unsigned char*>(data);
      out->insert(out->end(), p, p + size);
    };
    if (!stbi_write_png_to_func(sink, &png, img.width, img.height, 3, img.rgb.data(), img.width * 3))
      throw PlotError("Figure::save_png: PNG encoding failed for path '" + path + "'");
    errno = 0;
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) throw PlotError("Figure::save_png: cannot open path '" + path + "' for writing: " + errno_text());
    const std::size_t n = std::fwrite(png.data(), 1, png.size(), f);
    const int write_errno = errno;
    const bool close_ok = std::fclose(f) == 0;
    if (n != png.size() || !close_ok) {
      if (write_errno != 0) errno = write_errno;
      throw PlotError("Figure::save_png: writing path '" + path + "' failed: " + errno_text());
    }
  }

 private:
  static std::string errno_text() {
    const int e = errno;
    return e ? std::error_code(e, std::generic_category()).message() : std::string("unknown error");
  }
  std::size_t index(const char* fn, int row, int col) const {
    if (row < 0 || row >= rows_ || col < 0 || col >= cols_)
      throw PlotError(std::string(fn) + ": (row, col) out of range, got row=" + std::to_string(row) +
                      ", col=" + std::to_string(col) + " for a " + std::to_string(rows_) + "x" +
                      std::to_string(cols_) + " figure");
    return static_cast<std::size_t>(row) * static_cast<std::size_t>(cols_) + static_cast<std::size_t>(col);
  }
  // Fonts grow gently with the panel size (x1 at 400 px, x1.22 at 600 px, x1.41 at 800 px).
  double effective_scale() const {
    return font_scale_ * std::clamp(std::sqrt(std::min(pw_, ph_) / 400.0), 0.85, 2.0);
  }
  int title_band() const { return title_.empty() ? 0 : static_cast<int>(std::lround(34 * effective_scale())); }
  PixelRect cell(int r, int c) const { return {c * pw_, title_band() + r * ph_, pw_, ph_}; }

  int rows_, cols_, pw_, ph_;
  std::string title_;
  std::string font_path_ = FLOWMATCH_PLOT_DEFAULT_FONT;
  double font_scale_ = 1.0;
  std::vector<Axes> axes_;
};

}  // namespace flowmatch::plot
