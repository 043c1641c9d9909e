// libFuzzer harness for the PyTorch importer (io/torch_import.hpp) and the foreign safetensors
// decoder under it (scripts/sanitize.sh builds and runs it under ASan and UBSan; seed corpus
// tests/fuzz/corpus/torch_import/: fixtures of tests/io/make_torch_fixtures.py). Every input must
// end in success or a CheckpointError (TorchImportError is one): any other exception, crash, leak
// or sanitizer report is a failure. Each input is decoded as a foreign safetensors file, inspected,
// and imported as float and double, time last and time first; a model that imports must have the
// structure inspect_torch_mlp reported and run a forward pass.

#include <cstddef>
#include <cstdint>
#include <string>

#include <flowmatch/io/torch_import.hpp>

namespace fm = flowmatch;

namespace {

template <class S>
void import_and_run(const std::uint8_t* data, std::size_t size, bool time_first) {
  const fm::TorchImportOptions opt{time_first ? "tanh" : "silu", time_first};
  try {
    const fm::TorchMLPInfo info = fm::inspect_torch_mlp_bytes(data, size, "fuzz");
    (void)info.describe();
    fm::visit_torch_mlp_bytes<S>(data, size, "fuzz", opt, [&](auto model) {
      if (model.layer_widths() != info.widths) __builtin_trap();
      if (model.num_parameters() > 100000) return;  // a forward pass of a huge net is only slow
      const fm::Matrix<S> x = fm::Matrix<S>::Constant(model.input_dim(), 3, S(0.5));
      const fm::Matrix<S> out = model(x, S(0.25));
      if (out.rows() != model.dim() || out.cols() != 3) __builtin_trap();
    });
  } catch (const fm::CheckpointError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const fm::StateDict d = fm::decode_foreign_safetensors(data, size, "fuzz");
    for (const auto& [name, t] : d.tensors())
      if (t.bytes.size() != static_cast<std::size_t>(t.numel()) * fm::dtype_size(t.dtype)) __builtin_trap();
  } catch (const fm::CheckpointError&) {
  }
  import_and_run<float>(data, size, false);
  import_and_run<double>(data, size, true);
  return 0;
}
