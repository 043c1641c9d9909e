// fashion: a class-conditional flow on Fashion-MNIST (28 x 28 grey images, 784-D, pixels in
// [-1, 1]) on the CPU. Trains u(x, t | y), a convolutional U-Net (--model unet, the default:
// UNetVectorField) or MLP([x; fourier(t); onehot(y); t]) (--model mlp), on the rectified
// (OT) path x_t = t z + (1 - t) eps with label dropout, Adam (warm-up + cosine decay) and an EMA of
// the weights, for a time budget (--minutes) or a step count (--steps), checkpointing as it goes;
// then samples with classifier-free guidance
//   dx/dt = (1 + w) u(x, t | y) - w u(x, t | empty)   (w = 0: the conditional model alone)
// and writes a 10 x 10 grid (one row per class) per guidance weight, and evaluates the samples
// with a classifier trained on the real images (see evaluate.hpp). The grids' images and the
// evaluation's are written as CSV too (docs/outputs.md).

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <flowmatch/io/checkpoint.hpp>

#include "cli.hpp"
#include "csv_out.hpp"
#include "fashion_model.hpp"
#include "mpi_job.hpp"
#include "plot.hpp"

namespace fm = flowmatch;
namespace ff = flowmatch::fashion;

namespace {

using Clock = std::chrono::steady_clock;

struct Options : fm::examples::CommonOptions {
  Options() : CommonOptions{.steps = 0, .batch = 128, .hidden = {1024, 1024}} {}
  std::string model = "unet";   // "unet" or "mlp"
  std::vector<long long> widths{16, 32, 64};  // U-Net channels per level
  long long blocks = 1;         // U-Net residual blocks per level
  long long attention = 0;      // U-Net: heads of the self-attention at the lowest resolution (0: none)
  double unet_dropout = 0.0;    // U-Net: dropout in its residual blocks (--dropout is label dropout)
  double minutes = 10.0;        // training time budget (ignored when --steps > 0)
  double dropout = 0.1;
  double ema = -1.0;            // EMA decay (-1: 0.999 for the MLP, 0.995 for the U-Net, which takes fewer steps)
  std::string samples_out;      // folder for samples_w<w>.csv (the evaluation's generated images; default OUT)
  long long frequencies = 8;
  std::vector<double> guidance;  // empty: {0, 1, 1.5, 2} for the U-Net, {0, 0.5, 1, 2, 4} for the MLP
  double grid_guidance = 2.0;   // the guidance weight of grid.png
  std::string solver = "midpoint";
  long long nfe = 0;            // 0: 20 for the U-Net, 40 for the MLP
  std::string save;             // final checkpoint (default OUT/fashion.safetensors)
  std::string resume;
  long long checkpoint_every = 2000;  // steps between checkpoints into OUT/checkpoint.safetensors (0: none)
  std::string data;             // folder of the IDX files (default: find_fashion_mnist())
  long long train_count = -1;   // training images used (-1: all 60000)
  long long eval_per_class = 200;
  std::string classifier;       // cached classifier checkpoint (default OUT/classifier.safetensors)
  long long classifier_epochs = 8;
  bool no_eval = false;
};

std::atomic<bool> stop_requested{false};
extern "C" void on_sigint(int) {
  stop_requested.store(true);
  std::signal(SIGINT, SIG_DFL);
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// A grid of 28 x 28 images (columns of `x`, row-major in the grid: rows x cols), each pixel
// `scale` x `scale`, a label per row on the left and a title on top, as a PNG.
void write_grid(const std::filesystem::path& file, const fm::Matrix<float>& x, int rows, int cols,
                const std::vector<std::string>& row_names, const std::string& title, int scale = 2) {
  namespace pd = flowmatch::plot::detail;
  const int cell = 28 * scale, gap = 2, left = 110, top = 28;
  const int width = left + cols * (cell + gap) + gap, height = top + rows * (cell + gap) + gap;
  pd::Canvas cv(width, height, flowmatch::plot::white);
  const char* env_font = std::getenv("FLOWMATCH_PLOT_FONT");
  const pd::TextEngine te(env_font != nullptr && *env_font != '\0' ? env_font : FLOWMATCH_PLOT_DEFAULT_FONT, 1.0);
  te.draw(cv, title, 14.0, width / 2.0, 8.0, pd::HAlign::Center, pd::VAlign::Top, flowmatch::plot::black, true);
  for (int r = 0; r < rows; ++r) {
    const int y0 = top + gap + r * (cell + gap);
    if (static_cast<std::size_t>(r) < row_names.size())
      te.draw(cv, row_names[static_cast<std::size_t>(r)], 12.0, left - 8.0, y0 + cell / 2.0, pd::HAlign::Right,
              pd::VAlign::Center, flowmatch::plot::black);
    for (int c = 0; c < cols; ++c) {
      const fm::Index j = static_cast<fm::Index>(r) * cols + c;
      if (j >= x.cols()) continue;
      const int x0 = left + gap + c * (cell + gap);
      for (int py = 0; py < 28 * scale; ++py)
        for (int px = 0; px < 28 * scale; ++px) {
          const float v = x((py / scale) * 28 + px / scale, j);
          const auto g = static_cast<std::uint8_t>(std::lround(std::clamp((v + 1.0f) * 127.5f, 0.0f, 255.0f)));
          cv.blend(x0 + px, y0 + py, flowmatch::plot::Color{g, g, g}, 1.0f);
        }
    }
  }
  if (stbi_write_png(file.string().c_str(), cv.w, cv.h, 3, cv.px.data(), cv.w * 3) == 0)
    throw fm::Error("fashion: cannot write '" + file.string() + "'");
}

// 200 (per_class) images of each class from `d`, the first ones in file order, class by class.
fm::LabeledImages balanced_subset(const fm::LabeledImages& d, fm::Index per_class) {
  fm::LabeledImages out;
  out.rows = d.rows;
  out.cols = d.cols;
  out.images.resize(d.images.rows(), 10 * per_class);
  out.labels.resize(10 * per_class);
  std::vector<fm::Index> filled(10, 0);
  for (fm::Index j = 0; j < d.size(); ++j) {
    const int c = d.labels(j);
    fm::Index& k = filled[static_cast<std::size_t>(c)];
    if (k >= per_class) continue;
    out.images.col(c * per_class + k) = d.images.col(j);
    out.labels(c * per_class + k) = c;
    ++k;
  }
  for (fm::Index k : filled)
    if (k < per_class) throw fm::Error("fashion: too few images of some class for --eval-per-class");
  return out;
}

struct EvalRow {
  std::string what;
  double accuracy;  // conditional accuracy (generated) or classifier accuracy (real)
  double frechet;
  double seconds;
};

// The quality measures: a classifier trained on the real training images (cached in a
// checkpoint) judges per_class generated images of each class per guidance weight: the fraction
// it assigns to their conditioning class, and the Frechet distance between its last hidden layer's
// features of the generated images and of as many real test images (the floor: real training
// images against the same test images).
// One image per line: its label, then its 784 pixels in [-1, 1] (row-major); docs/outputs.md.
void write_images_csv(const std::filesystem::path& file, const fm::Matrix<float>& x, const fm::Vector<fm::Index>& labels) {
  std::vector<std::string> pixels;
  for (fm::Index i = 0; i < x.rows(); ++i) pixels.push_back("p" + std::to_string(i));
  fm::examples::Csv csv(fm::examples::columns({"label"}, pixels));
  csv.labelled_samples(x, labels);
  csv.save(file);
}

template <class M>
std::vector<EvalRow> evaluate(const Options& opt, const M& sampler, const fm::LabeledImages& train,
                              const fm::LabeledImages& test, const std::filesystem::path& out_dir) {
  const auto seconds_since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  const std::filesystem::path clf_file =
      opt.classifier.empty() ? out_dir / "classifier.safetensors" : std::filesystem::path(opt.classifier);
  fm::MLPClassifier<float> clf(784, 10, {512, 128}, static_cast<std::uint64_t>(opt.seed) + 11);
  std::error_code ec;
  const auto t_clf = Clock::now();
  if (std::filesystem::exists(clf_file, ec)) {
    fm::load_checkpoint(clf_file, clf);
    std::printf("evaluation: classifier 784-512-128-10 loaded from %s\n", clf_file.string().c_str());
  } else {
    fm::ClassifierTrainingOptions co;
    co.epochs = opt.classifier_epochs;
    co.batch = 128;
    co.learning_rate = 1e-3;
    co.seed = static_cast<std::uint64_t>(opt.seed) + 12;
    std::printf("evaluation: training the classifier 784-512-128-10 (SiLU, Adam 1e-3, batch 128) on the %lld real "
                "training images, %lld epochs\n", static_cast<long long>(train.size()), opt.classifier_epochs);
    fm::train_classifier(clf, train.images, train.labels, co, [&](fm::Index epoch, double loss) {
      std::printf("  epoch %lld  loss %.4f  %.0f s\n", static_cast<long long>(epoch), loss, seconds_since(t_clf));
      std::fflush(stdout);
    });
    fm::save_checkpoint(clf_file, clf);
    std::printf("evaluation: classifier saved to %s (reruns load it)\n", clf_file.string().c_str());
  }
  const double test_accuracy = fm::classification_accuracy(clf, test.images, test.labels);
  const double train_accuracy = fm::classification_accuracy(clf, train.images, train.labels);
  std::printf("evaluation: classifier accuracy %.2f%% on the 10000 test images (%.2f%% on the training images), %.1f s\n",
              100.0 * test_accuracy, 100.0 * train_accuracy, seconds_since(t_clf));

  const fm::Index per_class = opt.eval_per_class;
  const fm::Index n = 10 * per_class;
  const fm::LabeledImages ref = balanced_subset(test, per_class);
  const fm::LabeledImages train_sub = balanced_subset(train, per_class);
  const fm::GaussianMoments ref_moments = fm::feature_moments(clf, ref.images);
  std::vector<EvalRow> rows;
  rows.push_back({"real_train_floor", fm::classification_accuracy(clf, train_sub.images, train_sub.labels),
                  fm::frechet_distance(ref_moments, fm::feature_moments(clf, train_sub.images)), 0.0});
  std::printf("evaluation: %lld real test images (%lld per class) as the reference; floor: Frechet distance of %lld "
              "real training images %.3f\n", static_cast<long long>(n), static_cast<long long>(per_class),
              static_cast<long long>(n), rows.back().frechet);

  const std::string& solver = opt.solver;
  const fm::Index ode_steps = ff::solver_steps(solver, opt.nfe);
  fm::Vector<fm::Index> labels(n);
  for (fm::Index j = 0; j < n; ++j) labels(j) = j / per_class;
  fm::Rng rng(static_cast<std::uint64_t>(opt.seed) + 13);
  fm::Matrix<float> noise(784, n);
  fm::StandardNormal(784).sample(rng, noise);  // the same noise for every guidance weight
  for (double w : opt.guidance) {
    const auto t_w = Clock::now();
    const fm::Matrix<float> x = ff::sample_images(sampler, labels, w, solver, ode_steps, noise);
    if (!x.allFinite()) throw fm::NumericalError("fashion: non-finite generated images at guidance " + fmt("%g", w));
    // The classifier sees what a PNG shows: pixels clipped to [-1, 1].
    const fm::Matrix<float> clipped = x.cwiseMax(-1.0f).cwiseMin(1.0f);
    const std::filesystem::path samples_dir = opt.samples_out.empty() ? out_dir : std::filesystem::path(opt.samples_out);
    write_images_csv(samples_dir / ("samples_w" + fmt("%g", w) + ".csv"), clipped, labels);
    const double acc = fm::classification_accuracy(clf, clipped, labels);
    const double fd = fm::frechet_distance(ref_moments, fm::feature_moments(clf, clipped));
    rows.push_back({"generated", acc, fd, seconds_since(t_w)});
    std::printf("  guidance w = %-4g  conditional accuracy %6.2f%%  Frechet distance %8.3f  (%lld images, %.1f s)\n", w,
                100.0 * acc, fd, static_cast<long long>(n), rows.back().seconds);
    std::fflush(stdout);
  }
  rows.insert(rows.begin(), EvalRow{"real_test_classifier", test_accuracy, 0.0, 0.0});
  return rows;
}

template <class M>
int run(const Options& opt, const fm::examples::Job& job) {
  constexpr bool unet = std::is_same_v<M, ff::UNetModel>;
  const auto t_start = Clock::now();
  const auto since_start = [&] { return std::chrono::duration<double>(Clock::now() - t_start).count(); };
  fm::set_num_threads(static_cast<int>(opt.threads));
  const std::filesystem::path out_dir(opt.out);
  if (job.is_root()) std::filesystem::create_directories(out_dir);
  if (job.is_root() && !opt.samples_out.empty()) std::filesystem::create_directories(opt.samples_out);
  const auto seed = static_cast<std::uint64_t>(opt.seed);

  // ---------------------------------------------------------------- data
  std::optional<std::filesystem::path> data_dir =
      opt.data.empty() ? fm::find_fashion_mnist() : std::optional<std::filesystem::path>(opt.data);
  if (!data_dir)
    throw fm::Error("Fashion-MNIST not found: install the Debian package dataset-fashion-mnist, or pass --data DIR "
                    "(or set FLOWMATCH_FASHION_MNIST_DIR) to a folder holding train-images-idx3-ubyte.gz and the "
                    "other three files");
  const fm::LabeledImages train = fm::read_fashion_mnist(*data_dir, true, opt.train_count);
  const fm::LabeledImages test = fm::read_fashion_mnist(*data_dir, false);
  std::printf("fashion: %lld training and %lld test images (28 x 28) from %s, %.1f s\n",
              static_cast<long long>(train.size()), static_cast<long long>(test.size()), data_dir->string().c_str(),
              since_start());
  std::vector<std::string> class_names(fm::kFashionMnistClassNames.begin(), fm::kFashionMnistClassNames.end());

  // ---------------------------------------------------------------- model and trainer
  ff::ModelConfig mc;
  mc.hidden.assign(opt.hidden.begin(), opt.hidden.end());
  mc.frequencies = opt.frequencies;
  mc.unet.widths.assign(opt.widths.begin(), opt.widths.end());
  mc.unet.blocks = static_cast<fm::Index>(opt.blocks);
  mc.unet.attention = static_cast<fm::Index>(opt.attention);
  mc.unet.dropout = opt.unet_dropout;
  ff::TrainConfig tc;
  tc.batch = opt.batch;
  tc.lr = opt.lr;
  tc.label_dropout = opt.dropout;
  tc.ema_decay = opt.ema >= 0.0 ? opt.ema : unet ? 0.995 : 0.999;
  tc.seed = seed;
  if (!opt.resume.empty()) {
    // The architecture is the checkpoint's own: the field's settings and its network's widths
    // (the file is fully checked here, and again on loading).
    const fm::StateDict dict = fm::read_checkpoint(opt.resume);
    const fm::StateReader r(dict, opt.resume);
    if constexpr (unet) {
      if (!r.has_attribute("model.type") || r.text("model.type") != "unet_field" || r.text("model.condition") != "labels" ||
          r.integer("model.condition_size") != 10 || r.integers("model.image") != std::vector<long long>{1, 28, 28} ||
          !r.has_attribute("trainer.steps_done"))
        throw fm::Error("'" + opt.resume + "' is not a fashion U-Net training checkpoint (class-conditional U-Net on "
                        "1 x 28 x 28 images, 10 classes, with trainer state)");
      const std::vector<long long> widths = r.integers("model.widths");
      mc.unet.widths.assign(widths.begin(), widths.end());
      mc.unet.blocks = static_cast<fm::Index>(r.integer("model.blocks"));
      mc.unet.groups = static_cast<fm::Index>(r.integer("model.groups"));
      mc.unet.embedding = static_cast<fm::Index>(r.integer("model.embedding"));
      mc.unet.frequencies = static_cast<fm::Index>(r.integer("model.frequencies"));
      // Absent from checkpoints without attention. Dropout is not stored: --unet-dropout applies.
      mc.unet.attention = r.has_attribute("model.attention") ? static_cast<fm::Index>(r.integer("model.attention")) : 0;
    } else {
    if (!r.has_attribute("model.type") || r.text("model.type") != "conditional_field" ||
        r.text("model.condition") != "labels" || r.integer("model.num_classes") != 10 ||
        r.integer("model.dim") != 784 || r.text("model.net.activation") != "silu" ||
        r.text("model.net.scalar") != "float" || !r.has_attribute("trainer.steps_done"))
      throw fm::Error("'" + opt.resume + "' is not a fashion training checkpoint (float SiLU class-conditional field "
                      "on 784 pixels, 10 classes, with trainer state)");
    const std::vector<long long> widths = r.integers("model.net.widths");
    if (widths.size() < 3) throw fm::Error("'" + opt.resume + "': the network has no hidden layer");
    mc.hidden.assign(widths.begin() + 1, widths.end() - 1);
    mc.frequencies = static_cast<fm::Index>(r.integer("model.num_frequencies"));
    }
  }
  const ff::LabelledImageSet data(train);
  ff::BasicFashionFlow<M> flow(data, mc, tc);
  if (!opt.resume.empty()) {
    flow.load(opt.resume);
    std::printf("fashion: resumed from '%s' at step %lld\n", opt.resume.c_str(), flow.steps_done());
  }
  if constexpr (unet) {
    const fm::UNetOptions& u = flow.model().options();
    std::printf("fashion: U-Net, widths ");
    for (std::size_t k = 0; k < u.widths.size(); ++k) std::printf("%s%lld", k ? "-" : "", static_cast<long long>(u.widths[k]));
    std::printf(" at 28/14/7..., %lld residual block(s) per level, GroupNorm %lld, embedding %lld (%lld Fourier time "
                "features + label), ",
                static_cast<long long>(u.blocks), static_cast<long long>(u.groups), static_cast<long long>(u.embedding),
                static_cast<long long>(2 * u.frequencies));
    if (u.attention > 0) std::printf("self-attention (%lld heads) in the middle, ", static_cast<long long>(u.attention));
    if (u.dropout > 0) std::printf("dropout %g, ", u.dropout);
    std::printf("%lld parameters", static_cast<long long>(flow.num_parameters()));
  } else {
    std::printf("fashion: MLP %lld-", static_cast<long long>(flow.model().network().layer_widths().front()));
    for (auto h : mc.hidden) std::printf("%lld-", static_cast<long long>(h));
    std::printf("784 SiLU (%lld parameters; input = 784 pixels + %lld Fourier time features + 10 one-hot labels + t)",
                static_cast<long long>(flow.num_parameters()), static_cast<long long>(2 * mc.frequencies));
  }
  std::printf(", batch %lld, Adam lr %g (warm-up %lld, cosine), label dropout %g, EMA %g, %d thread(s) x %d rank(s), seed %lld\n",
              opt.batch, opt.lr, tc.warmup, opt.dropout, tc.ema_decay, fm::num_threads(), job.size(), opt.seed);

  // ---------------------------------------------------------------- training
  const bool by_steps = opt.steps > 0;
  const long long target_steps = by_steps ? opt.steps : 0;
  const double budget_s = 60.0 * opt.minutes;
  if (by_steps)
    std::printf("fashion: training to step %lld\n", target_steps);
  else
    std::printf("fashion: training for %.1f minutes\n", opt.minutes);
  const std::filesystem::path periodic = out_dir / "checkpoint.safetensors";
  stop_requested.store(false);
  std::signal(SIGINT, on_sigint);
  const auto t_train = Clock::now();
  double loss_sum = 0.0, first_losses = 0.0;
  long long loss_count = 0, first_count = 0;
  double last_report = 0.0;
  const long long start_step = flow.steps_done();
  for (;;) {
    // Under mpirun every rank takes the same decisions: rank 0's clock sets the budget's progress
    // (and so the learning rate), and Ctrl-C on any rank stops all of them at the same step.
    const double elapsed = job.from_root(std::chrono::duration<double>(Clock::now() - t_train).count());
    double progress;
    if (by_steps) {
      if (flow.steps_done() >= target_steps) break;
      progress = static_cast<double>(flow.steps_done()) / static_cast<double>(target_steps);
    } else {
      if (elapsed >= budget_s) break;
      progress = elapsed / budget_s;
    }
    if (job.any(stop_requested.load())) break;
    const double loss = flow.step(progress);
    loss_sum += loss;
    ++loss_count;
    if (first_count < 50) first_losses += loss, ++first_count;
    if (opt.checkpoint_every > 0 && flow.steps_done() % opt.checkpoint_every == 0)
      flow.save(periodic);
    const double now = std::chrono::duration<double>(Clock::now() - t_train).count();
    if (now - last_report >= 30.0 || flow.steps_this_run() == 1) {
      std::printf("  step %7lld  %6.0f s  loss %.4f  lr %.2e  %.2f steps/s\n", flow.steps_done(), now,
                  loss_sum / static_cast<double>(loss_count), flow.learning_rate(),
                  static_cast<double>(flow.steps_done() - start_step) / std::max(now, 1e-9));
      std::fflush(stdout);
      loss_sum = 0.0;
      loss_count = 0;
      last_report = now;
    }
  }
  const double train_s = std::chrono::duration<double>(Clock::now() - t_train).count();
  const bool interrupted = job.any(stop_requested.load());
  std::signal(SIGINT, SIG_DFL);
  const long long steps_run = flow.steps_done() - start_step;
  if (steps_run > 0) {
    const std::filesystem::path final_ckpt = opt.save.empty() ? out_dir / "fashion.safetensors" : std::filesystem::path(opt.save);
    flow.save(final_ckpt);
    std::printf("fashion: trained %lld steps in %.1f s (%.2f steps/s, %.0f images/s); first 50 steps' mean loss %.4f, "
                "last %lld steps' %.4f; checkpoint (with the EMA) at step %lld: %s\n",
                steps_run, train_s, static_cast<double>(steps_run) / train_s,
                static_cast<double>(steps_run * opt.batch) / train_s, first_losses / static_cast<double>(first_count),
                loss_count, loss_count > 0 ? loss_sum / static_cast<double>(loss_count) : 0.0, flow.steps_done(),
                final_ckpt.string().c_str());
    if (interrupted) {
      std::printf("fashion: interrupted; continue with --resume %s\n", final_ckpt.string().c_str());
      return 130;
    }
  }
  // Under mpirun, rank 0 alone samples, evaluates and writes the figures.
  if (!job.is_root()) return 0;

  // ---------------------------------------------------------------- sampling: the grids
  const M sampler = flow.ema_model();
  const std::string& solver = opt.solver;
  const fm::Index ode_steps = ff::solver_steps(solver, opt.nfe);
  fm::Vector<fm::Index> grid_labels(100);
  for (fm::Index j = 0; j < 100; ++j) grid_labels(j) = j / 10;
  fm::Rng rng(seed + 7);
  fm::Matrix<float> grid_noise(784, 100);
  fm::StandardNormal(784).sample(rng, grid_noise);
  std::vector<double> weights = opt.guidance;
  if (std::find(weights.begin(), weights.end(), opt.grid_guidance) == weights.end()) weights.push_back(opt.grid_guidance);
  const auto t_grids = Clock::now();
  for (double w : weights) {
    const fm::Matrix<float> images = ff::sample_images(sampler, grid_labels, w, solver, ode_steps, grid_noise);
    if (!images.allFinite()) throw fm::NumericalError("fashion: non-finite images at guidance " + fmt("%g", w));
    const std::string title = "Fashion-MNIST flow, step " + std::to_string(flow.steps_done()) + ", guidance w = " +
                              fmt("%g", w) + ", " + opt.solver + " x " + std::to_string(ode_steps);
    write_grid(out_dir / ("grid_w" + fmt("%g", w) + ".png"), images, 10, 10, class_names, title);
    // The grid's images as drawn (pixels clipped to [-1, 1]), one row of the grid = one class.
    write_images_csv(out_dir / ("grid_w" + fmt("%g", w) + ".csv"), images.cwiseMax(-1.0f).cwiseMin(1.0f), grid_labels);
    if (w == opt.grid_guidance) write_grid(out_dir / "grid.png", images, 10, 10, class_names, title);
  }
  {
    // Real test images, 10 per class, for comparison.
    fm::Matrix<float> real(784, 100);
    std::vector<int> filled(10, 0);
    for (fm::Index j = 0; j < test.size(); ++j) {
      const int c = test.labels(j);
      if (filled[static_cast<std::size_t>(c)] < 10) real.col(c * 10 + filled[static_cast<std::size_t>(c)]++) = test.images.col(j);
    }
    write_grid(out_dir / "real.png", real, 10, 10, class_names, "Fashion-MNIST test images");
  }
  std::printf("fashion: wrote grid.png (w = %g), grid_w<w>.png for w in {", opt.grid_guidance);
  for (std::size_t k = 0; k < weights.size(); ++k) std::printf("%s%g", k ? ", " : "", weights[k]);
  std::printf("} with their images as grid_w<w>.csv, and real.png to %s (%s, %lld steps = %lld evaluations of the "
              "guided field; %.1f s)\n",
              out_dir.string().c_str(), opt.solver.c_str(), static_cast<long long>(ode_steps),
              static_cast<long long>(ode_steps * ff::solver_stages(solver)),
              std::chrono::duration<double>(Clock::now() - t_grids).count());

  if (!opt.no_eval) {
    const std::vector<EvalRow> rows = evaluate(opt, sampler, train, test, out_dir);
    const std::filesystem::path csv = out_dir / "metrics.csv";
    std::FILE* f = std::fopen(csv.string().c_str(), "w");
    if (f == nullptr) throw fm::Error("fashion: cannot write '" + csv.string() + "'");
    std::fprintf(f, "what,guidance,accuracy,frechet_distance,images,steps_trained,solver,ode_steps\n");
    std::printf("\n| images | guidance w | classifier accuracy (generated: conditional) | Frechet distance (classifier "
                "features) |\n|---|---:|---:|---:|\n");
    for (std::size_t k = 0; k < rows.size(); ++k) {
      const EvalRow& r = rows[k];
      const bool generated = k >= 2;
      const double w = generated ? opt.guidance[k - 2] : 0.0;
      std::fprintf(f, "%s,%s,%.6f,%s,%lld,%lld,%s,%lld\n", r.what.c_str(), generated ? fmt("%g", w).c_str() : "",
                   r.accuracy, k == 0 ? "" : fmt("%.6f", r.frechet).c_str(),
                   static_cast<long long>(k == 0 ? test.size() : 10 * opt.eval_per_class), flow.steps_done(),
                   opt.solver.c_str(), static_cast<long long>(ode_steps));
      std::printf("| %s | %s | %.2f%% | %s |\n", k == 0 ? "real test (10000)" : generated ? "generated" : "real training",
                  generated ? fmt("%g", w).c_str() : "-", 100.0 * r.accuracy, k == 0 ? "-" : fmt("%.3f", r.frechet).c_str());
    }
    std::fclose(f);
    std::printf("\nfashion: wrote %s and the evaluation's images as %s/samples_w<w>.csv\n", csv.string().c_str(),
                (opt.samples_out.empty() ? out_dir : std::filesystem::path(opt.samples_out)).string().c_str());
  }
  std::printf("fashion: total wall time %.1f s (%.2f min)\n", since_start(), since_start() / 60.0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  fm::examples::Job job(argc, argv);  // MPI, when built with it
  Options opt;
  opt.threads = job.default_threads();
  CLI::App app{"fashion: class-conditional flow matching on Fashion-MNIST with classifier-free guidance"};
  fm::examples::add_common_options(app, opt,
      {.steps = "train to this total step count instead of for --minutes (0: use --minutes)", .min_steps = 0,
       .lr = "peak Adam learning rate"});
  app.add_option("--model", opt.model, "the vector field: mlp or unet (convolutional U-Net)")
      ->check(CLI::IsMember({"unet", "mlp"}))->capture_default_str();
  app.add_option("--widths", opt.widths, "U-Net channels per level (28 x 28, 14 x 14, 7 x 7 for three)")
      ->check(fm::examples::at_least(8))->capture_default_str();
  app.add_option("--blocks", opt.blocks, "U-Net residual blocks per level")->check(fm::examples::at_least(1))->capture_default_str();
  app.add_option("--attention", opt.attention, "U-Net: heads of a self-attention block at the lowest resolution "
                                               "(0: none; divides the last width)")
      ->check(fm::examples::at_least(0))->capture_default_str();
  app.add_option("--unet-dropout", opt.unet_dropout, "U-Net: dropout probability in its residual blocks (training "
                                                     "only; --dropout is label dropout)")
      ->check(CLI::Range(0.0, 0.999))->capture_default_str();
  app.add_option("--samples-out", opt.samples_out, "folder for the evaluation's generated images, samples_w<w>.csv "
                                                   "per guidance weight (label,p0,...,p783; pixels in [-1, 1]; "
                                                   "default: the --out folder)");
  app.add_option("--minutes", opt.minutes, "training time budget in minutes (used unless --steps is given)")
      ->check(CLI::Range(0.0, 1e6))->capture_default_str();
  app.add_option("--dropout", opt.dropout, "label dropout probability")->check(CLI::Range(0.0, 0.999))->capture_default_str();
  app.add_option("--ema", opt.ema, "EMA decay of the weights used for sampling (default 0.995 for the U-Net, 0.999 "
                                   "for the MLP)")->check(CLI::Range(0.0, 0.99999));
  app.add_option("--frequencies", opt.frequencies, "Fourier time frequencies")->check(fm::examples::at_least(0))->capture_default_str();
  app.add_option("--guidance", opt.guidance, "guidance weights w (one grid each; 0 = no guidance; default 0 1 1.5 2 "
                                             "for the U-Net, 0 0.5 1 2 4 for the MLP)");
  app.add_option("--grid-guidance", opt.grid_guidance, "guidance weight of grid.png")->capture_default_str();
  const auto solvers = fm::stepper_names();
  app.add_option("--solver", opt.solver, "ODE solver: " + fm::stepper_name_list())
      ->check(CLI::IsMember(std::vector<std::string>(solvers.begin(), solvers.end())))->capture_default_str();
  app.add_option("--nfe", opt.nfe, "evaluations of the guided field per sample (steps = nfe / solver stages; "
                                   "default 20 for the U-Net, 40 for the MLP: the default run, 10 minutes of "
                                   "training and the evaluation, fits in 15 minutes on 2 cores)")
      ->check(fm::examples::at_least(1));
  app.add_option("--save", opt.save, "final checkpoint (default OUT/fashion.safetensors, with the EMA weights)");
  app.add_option("--resume", opt.resume, "continue from this checkpoint (its architecture and EMA); "
                                         "--minutes 0 only samples and evaluates");
  app.add_option("--checkpoint-every", opt.checkpoint_every, "write OUT/checkpoint.safetensors every N steps (0: never)")
      ->check(fm::examples::at_least(0))->capture_default_str();
  app.add_option("--data", opt.data, "folder of the Fashion-MNIST IDX files (default: $FLOWMATCH_FASHION_MNIST_DIR, "
                                     "then /usr/share/datasets/fashion-mnist)");
  app.add_option("--train-count", opt.train_count, "training images used (-1: all 60000)")->capture_default_str();
  app.add_option("--eval-per-class", opt.eval_per_class, "generated (and real) images per class for the evaluation")
      ->check(fm::examples::at_least(1))->capture_default_str();
  app.add_option("--classifier", opt.classifier, "classifier checkpoint: loaded if present, else trained and saved "
                                                 "(default OUT/classifier.safetensors)");
  app.add_option("--classifier-epochs", opt.classifier_epochs, "epochs of the classifier's training")
      ->check(fm::examples::at_least(1))->capture_default_str();
  app.add_flag("--no-eval", opt.no_eval, "skip the evaluation (classifier accuracy, Frechet distance)");
  return fm::examples::parse_and_run(app, argc, argv, "fashion",
                                     [&] {
                                       return job.guard("fashion", [&] {
                                         std::string model = opt.model;
                                         // --resume: the checkpoint's model type decides.
                                         if (!opt.resume.empty()) {
                                           const fm::StateDict dict = fm::read_checkpoint(opt.resume);
                                           const fm::StateReader r(dict, opt.resume);
                                           if (r.has_attribute("model.type"))
                                             model = r.text("model.type") == "unet_field" ? "unet" : "mlp";
                                         }
                                         // Defaults that depend on the model: the U-Net's forward pass
                                         // costs about 10x the MLP's, so its evaluation samples with
                                         // fewer steps and weights (it is smoother in t, docs/examples/fashion.md).
                                         Options o = opt;
                                         const bool unet = model == "unet";
                                         if (o.nfe <= 0) o.nfe = unet ? 20 : 40;
                                         if (o.guidance.empty())
                                           o.guidance = unet ? std::vector<double>{0.0, 1.0, 1.5, 2.0}
                                                             : std::vector<double>{0.0, 0.5, 1.0, 2.0, 4.0};
                                         return unet ? run<ff::UNetModel>(o, job) : run<ff::Model>(o, job);
                                       });
                                     });
}
