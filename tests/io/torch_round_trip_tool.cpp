// The C++ half of the ctest io.torch_round_trip (tests/io/torch_round_trip.py drives it):
//
//   torch_round_trip_tool write DIR   writes DIR/fm_<activation>.safetensors: an MLPVectorField of
//                                     every built-in activation saved by save_checkpoint
//   torch_round_trip_tool check DIR   after PyTorch loaded each into nn.Sequential with
//                                     load_state_dict and saved its own state_dict (under "net.")
//                                     as DIR/pt_<activation>.safetensors, with its float32 and
//                                     float64 outputs in pt_<activation>.io.safetensors: imports
//                                     each, requires the parameters bit-identical to the original,
//                                     and both forwards to match PyTorch's
//
// Exits 0 when every check holds, 1 otherwise (saying which).

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <flowmatch/io/checkpoint.hpp>
#include <flowmatch/io/torch_import.hpp>
#include <flowmatch/nn/mlp_from_state.hpp>

namespace fs = std::filesystem;
using namespace flowmatch;

namespace {

std::vector<std::string> builtin_names() {
  std::vector<std::string> names;
  std::string all(kBuiltinActivationNames);
  std::size_t pos = 0;
  while (pos <= all.size()) {
    const std::size_t comma = all.find(", ", pos);
    names.push_back(all.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
    if (comma == std::string::npos) break;
    pos = comma + 2;
  }
  return names;
}

Matrix<double> tensor_rows(const StateDict& d, const std::string& key) {
  const Tensor* t = d.find_tensor(key);
  if (t == nullptr || t->dtype != DType::F64 || t->shape.size() > 2) throw Error("round trip: bad tensor " + key);
  const Index rows = t->shape[0], cols = t->shape.size() < 2 ? 1 : t->shape[1];
  Matrix<double> m(rows, cols);
  for (Index r = 0; r < rows; ++r)
    for (Index c = 0; c < cols; ++c) m(r, c) = detail::read_le<double>(t->bytes.data() + 8 * (r * cols + c));
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: torch_round_trip_tool write|check DIR\n";
    return 2;
  }
  const std::string mode = argv[1];
  const fs::path dir = argv[2];
  int failures = 0;
  std::uint64_t seed = 1;
  for (const std::string& name : builtin_names()) {
    const fs::path fm = dir / ("fm_" + name + ".safetensors");
    visit_mlp_activation(name, [&](auto act) {
      using Act = decltype(act);
      if (mode == "write") {
        MLPVectorField<float, Act> model(2, {16, 12}, seed++);
        save_checkpoint(fm, model);
        std::cout << "wrote " << fm.string() << "\n";
        return 0;
      }
      MLPVectorField<float, Act> original(2, {16, 12}, std::uint64_t{0});
      load_checkpoint(fm, original);
      const fs::path pt = dir / ("pt_" + name + ".safetensors");
      const TorchImportOptions opt{name};
      const TorchMLPInfo info = inspect_torch_mlp(pt);
      const auto imported = import_torch_mlp<float, Act>(pt, opt);
      const auto imported64 = import_torch_mlp<double, Act>(pt, opt);
      std::ifstream in(dir / ("pt_" + name + ".io.safetensors"), std::ios::binary);
      const std::vector<unsigned char> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
      const StateDict io = decode_foreign_safetensors(bytes.data(), bytes.size(), "io");
      const Matrix<double> x = tensor_rows(io, "x").transpose();
      const Vector<double> t = tensor_rows(io, "t").col(0);
      const Matrix<double> out32 = tensor_rows(io, "out32").transpose(), out64 = tensor_rows(io, "out64").transpose();
      const Matrix<float> ours = imported(x.cast<float>(), t.cast<float>());
      const Matrix<double> ours64 = imported64(x, t);
      const double e32 = (ours.cast<double>() - out32).cwiseAbs().maxCoeff();
      const double e64 = (ours64 - out64).cwiseAbs().maxCoeff();
      const bool same = imported.parameters() == original.parameters();
      const bool ok = same && info.prefix == "net." && e32 < 1e-5 && e64 < 1e-12;
      std::printf("%-11s %s  parameters %s, float max|diff| vs torch float32 %.2e, double vs torch float64 %.2e: %s\n",
                  name.c_str(), info.describe().c_str(), same ? "bit-identical" : "DIFFER", e32, e64,
                  ok ? "ok" : "FAILED");
      failures += ok ? 0 : 1;
      return 0;
    });
  }
  return failures == 0 ? 0 : 1;
}
