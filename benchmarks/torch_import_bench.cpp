// The C++ half of benchmarks/torch_import_check.py: imports a PyTorch MLP state_dict
// (io/torch_import.hpp) and integrates it with flowmatch's Euler simulator.
//
//   torch_import_bench integrate MODEL ACTIVATION POINTS STEPS OUT
//       POINTS: a safetensors file with x0 [n, d] (F32 or F64); writes OUT (safetensors, x1 [n, d]
//       F64) after STEPS Euler steps over t in [0, 1] of the imported float model
//   torch_import_bench speed MODEL ACTIVATION N STEPS THREADS ROUNDS
//       N start points (standard normal, seed 0), STEPS Euler steps, THREADS flowmatch threads:
//       prints "seconds <median> <min> <max>" over ROUNDS rounds (after an untimed 2-step warm-up)

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <flowmatch/core/random.hpp>
#include <flowmatch/core/threads.hpp>
#include <flowmatch/io/atomic_file.hpp>
#include <flowmatch/io/safetensors.hpp>
#include <flowmatch/io/torch_import.hpp>
#include <flowmatch/ode/euler_simulator.hpp>
#include <flowmatch/ode/learned_vector_field_ode.hpp>

namespace fm = flowmatch;

namespace {

fm::Matrix<float> read_points(const std::string& file) {
  const std::vector<unsigned char> bytes = fm::detail::read_file_bytes(file, "torch_import_bench");
  const fm::StateDict d = fm::decode_foreign_safetensors(bytes.data(), bytes.size(), file);
  const fm::Tensor* t = d.find_tensor("x0");
  if (t == nullptr || t->shape.size() != 2) throw fm::Error(file + ": no 2-D tensor 'x0'");
  fm::Matrix<float> x(t->shape[1], t->shape[0]);  // d x n
  for (fm::Index j = 0; j < x.cols(); ++j)
    for (fm::Index i = 0; i < x.rows(); ++i) {
      const auto k = static_cast<std::size_t>(j * x.rows() + i);
      x(i, j) = static_cast<float>(fm::detail::torch_element(*t, k));
    }
  return x;
}

void write_points(const std::string& file, const fm::Matrix<float>& x) {
  fm::StateDict d;
  fm::Tensor t;
  t.dtype = fm::DType::F64;
  t.shape = {x.cols(), x.rows()};
  for (fm::Index j = 0; j < x.cols(); ++j)
    for (fm::Index i = 0; i < x.rows(); ++i) fm::detail::append_le<double>(t.bytes, static_cast<double>(x(i, j)));
  d.put_tensor("x1", std::move(t));
  const std::vector<unsigned char> bytes = fm::encode_safetensors(d);
  std::ofstream(file, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                              static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() == 6 && a[0] == "integrate") {
    const fm::Matrix<float> x0 = read_points(a[3]);
    fm::visit_torch_mlp<float>(a[1], {a[2]}, [&](auto model) {
      fm::LearnedVectorFieldODE ode(model);
      fm::EulerSimulator sim(ode);
      write_points(a[5], sim.simulate(x0, std::stol(a[4])));
    });
    return 0;
  }
  if (a.size() == 7 && a[0] == "speed") {
    const fm::Index n = std::stol(a[3]), steps = std::stol(a[4]);
    fm::set_num_threads(std::stoi(a[5]));
    const int rounds = std::stoi(a[6]);
    fm::visit_torch_mlp<float>(a[1], {a[2]}, [&](auto model) {
      fm::Rng rng(0);
      fm::Matrix<float> x0(model.dim(), n);
      for (fm::Index j = 0; j < n; ++j)
        for (fm::Index i = 0; i < model.dim(); ++i) x0(i, j) = static_cast<float>(rng.normal());
      fm::LearnedVectorFieldODE ode(model);
      fm::EulerSimulator sim(ode);
      std::vector<double> s;
      float sink = 0;
      sink += sim.simulate(x0, 2)(0, 0);  // warm-up: workspaces, thread pool, caches
      for (int r = 0; r < rounds; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        const fm::Matrix<float> x1 = sim.simulate(x0, steps);
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        sink += x1(0, 0);
        s.push_back(dt);
      }
      std::sort(s.begin(), s.end());
      std::printf("seconds %.6f %.6f %.6f (checksum %g)\n", s[s.size() / 2], s.front(), s.back(),
                  static_cast<double>(sink));
    });
    return 0;
  }
  std::cerr << "usage: torch_import_bench integrate MODEL ACTIVATION POINTS STEPS OUT\n"
               "       torch_import_bench speed MODEL ACTIVATION N STEPS THREADS ROUNDS\n";
  return 2;
}
