// Writes a checkpoint as flowmatch writes a model's (an MLPVectorField-style "model." part: a
// float SiLU MLP 3-8-2 by the naming conventions of core/state.hpp, plus optimizer and trainer
// state of every dtype the parts use) to argv[1], and the values it holds to argv[1] +
// ".expected.json" (printed here, not through the checkpoint code). The ctest test
// io.numpy_reads_checkpoint then reads the checkpoint with tests/io/read_flowmatch.py, which uses
// only numpy and Python's standard library, and compares.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <flowmatch/io/checkpoint.hpp>

namespace fm = flowmatch;

namespace {

std::string list(const std::vector<double>& v) {
  std::string s = "[";
  char buf[64];
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%.17g", v[i]);
    s.append(i ? ", " : "").append(buf);
  }
  return s + "]";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT.safetensors\n", argv[0]);
    return 2;
  }
  const std::string out = argv[1];
  fm::StateDict dict;
  fm::StateWriter model(dict, "model.");
  model.text("type", "mlp_vector_field");
  model.text("scalar", "float");
  model.text("activation", "silu");
  model.integers("widths", {3, 8, 2});
  model.text("time", "last");
  std::string expected = "{\n";
  const std::vector<long long> widths{3, 8, 2};
  for (std::size_t l = 0; l + 1 < widths.size(); ++l) {
    const long long in = widths[l], fan_out = widths[l + 1];
    std::vector<float> w(static_cast<std::size_t>(in * fan_out)), b(static_cast<std::size_t>(fan_out));
    std::vector<double> wd, bd;
    for (std::size_t i = 0; i < w.size(); ++i) wd.push_back(w[i] = static_cast<float>(std::sin(1.0 + static_cast<double>(i + 10 * l))));
    for (std::size_t i = 0; i < b.size(); ++i) bd.push_back(b[i] = static_cast<float>(0.125 * static_cast<double>(i) - 0.5));
    const std::string layer = std::to_string(2 * l);
    model.tensor(layer + ".weight", w.data(), {fan_out, in});
    model.tensor(layer + ".bias", b.data(), {fan_out});
    expected += "  \"model." + layer + ".weight\": {\"dtype\": \"F32\", \"shape\": [" + std::to_string(fan_out) + ", " +
                std::to_string(in) + "], \"values\": " + list(wd) + "},\n";
    expected += "  \"model." + layer + ".bias\": {\"dtype\": \"F32\", \"shape\": [" + std::to_string(fan_out) +
                "], \"values\": " + list(bd) + "},\n";
  }
  fm::StateWriter opt(dict, "optimizer.");
  opt.text("type", "adam");
  opt.real("lr", 1e-3);
  opt.integer("steps", 7);
  const double m[] = {0.1, -1e-300, 12345.678, 0.0};
  opt.tensor("exp_avg", m, {2, 2});
  fm::StateWriter trainer(dict, "trainer.");
  trainer.integer("steps_done", 7);
  const std::uint64_t rng[] = {0xffffffffffffffffull, 1, 0x8000000000000000ull, 42};
  trainer.tensor("rng", rng, {4});
  const std::int64_t counts[] = {-3, 0, 9007199254740993LL};
  trainer.tensor("counts", counts, {3});
  const float none[] = {0.0f};
  trainer.tensor("empty", none, {0});
  expected += "  \"optimizer.exp_avg\": {\"dtype\": \"F64\", \"shape\": [2, 2], \"values\": [0.1, -1e-300, 12345.678, 0.0]},\n";
  // Integers as strings: JSON numbers do not hold every 64-bit integer exactly.
  expected += "  \"trainer.rng\": {\"dtype\": \"U64\", \"shape\": [4], \"values\": [\"18446744073709551615\", \"1\", "
              "\"9223372036854775808\", \"42\"]},\n";
  expected += "  \"trainer.counts\": {\"dtype\": \"I64\", \"shape\": [3], \"values\": [\"-3\", \"0\", \"9007199254740993\"]},\n";
  expected += "  \"trainer.empty\": {\"dtype\": \"F32\", \"shape\": [0], \"values\": []},\n";
  expected += "  \"__metadata__\": {";
  for (const auto& [k, v] : dict.attributes()) expected += "\"" + k + "\": \"" + v + "\", ";
  expected += "\"format\": \"flowmatch\", \"flowmatch.format_version\": \"2\"}\n}\n";

  fm::save_state_dict(out, dict);
  std::FILE* f = std::fopen((out + ".expected.json").c_str(), "w");
  if (f == nullptr) return 1;
  std::fputs(expected.c_str(), f);
  std::fclose(f);
  std::printf("wrote %s and %s.expected.json\n", out.c_str(), out.c_str());
  return 0;
}
