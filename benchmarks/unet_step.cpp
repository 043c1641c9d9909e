// Times UNetVectorField on Fashion-MNIST-shaped data (1 x 28 x 28, 10 classes): a training step
// (forward_train, the CFM loss's gradient, backward, Adam) at --batch, and a sampling evaluation
// (forward at --sample-batch) of the conditional field; prints medians over --steps timed
// repetitions after --warmup, as one RESULT line (what benchmarks/unet_compare.py reads, beside
// the PyTorch peer benchmarks/unet_torch.py that prints the same line for the same network).
//
//   build/benchmarks/flowmatch_unet_step --threads 1 --batch 128 --steps 10 [--attention HEADS]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <flowmatch.hpp>
#include <flowmatch/nn/unet_vector_field.hpp>

namespace fm = flowmatch;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

std::vector<fm::Index> parse_widths(const std::string& s) {
  std::vector<fm::Index> w;
  std::size_t pos = 0;
  while (pos < s.size()) {
    const std::size_t comma = s.find(',', pos);
    w.push_back(std::stol(s.substr(pos, comma - pos)));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return w;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1, steps = 10, warmup = 2;
  fm::Index batch = 128, sample_batch = 256;
  fm::UNetOptions opt;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--threads") threads = std::stoi(v);
    else if (a == "--steps") steps = std::stoi(v);
    else if (a == "--warmup") warmup = std::stoi(v);
    else if (a == "--batch") batch = std::stol(v);
    else if (a == "--sample-batch") sample_batch = std::stol(v);
    else if (a == "--widths") opt.widths = parse_widths(v);
    else if (a == "--blocks") opt.blocks = std::stol(v);
    else if (a == "--embedding") opt.embedding = std::stol(v);
    else if (a == "--attention") opt.attention = std::stol(v);
    else {
      std::fprintf(stderr, "unet_step: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  fm::set_num_threads(threads);
  fm::UNetVectorField<float> net(opt, fm::ConditionKind::Label, 10, 0);
  fm::Adam<float> adam(1e-3);
  fm::Rng rng(1);
  const fm::Index d = net.dim();
  fm::Matrix<float> x(d, batch), target(d, batch), grad(d, batch);
  fm::RowVector<float> t(batch);
  fm::ConditionBatch<float> c;
  c.set_labels(batch);
  fm::UNetVectorField<float>::Workspace ws;
  using Clock = std::chrono::steady_clock;
  std::vector<double> train_ms, sample_ms;
  for (int k = 0; k < warmup + steps; ++k) {
    rng.fill_normal(x);
    rng.fill_normal(target);
    for (fm::Index j = 0; j < batch; ++j) {
      t(j) = static_cast<float>(rng.uniform());
      c.labels(j) = static_cast<fm::Index>(rng.below(10));
      c.present(j) = rng.uniform() < 0.1 ? 0.0f : 1.0f;
    }
    const auto t0 = Clock::now();
    grad = net.forward_train(x, t, c, ws) - target;
    grad *= 2.0f / static_cast<float>(grad.size());
    net.backward(grad, ws);
    adam.step(net.parameters(), net.gradients());
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (k >= warmup) train_ms.push_back(ms);
  }
  fm::Matrix<float> xs(d, sample_batch), out(d, sample_batch);
  fm::ConditionBatch<float> cs;
  cs.set_labels(sample_batch);
  for (fm::Index j = 0; j < sample_batch; ++j) cs.labels(j) = j % 10;
  fm::UNetVectorField<float>::Workspace wss;
  for (int k = 0; k < warmup + steps; ++k) {
    rng.fill_normal(xs);
    const auto t0 = Clock::now();
    net.forward(xs, 0.5, cs, out, wss);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (k >= warmup) sample_ms.push_back(ms);
  }
  std::printf("RESULT program=flowmatch threads=%d batch=%ld sample_batch=%ld params=%ld train_ms=%.2f sample_ms=%.2f\n",
              threads, static_cast<long>(batch), static_cast<long>(sample_batch),
              static_cast<long>(net.num_parameters()), median(train_ms), median(sample_ms));
  return 0;
}
