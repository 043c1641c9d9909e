// libFuzzer harness for the checkpoint readers (scripts/sanitize.sh builds and runs it under ASan
// and UBSan). Every input must end in success or a CheckpointError: any other exception, crash,
// leak or sanitizer report is a failure.
//
// Each input goes four ways: (1) as a whole file through decode_checkpoint, which dispatches on the
// magic to the format-1 reader or the safetensors reader (format 2); (2) through the safetensors
// reader with its checksums not verified, so that the checks behind them (entries, layout, values)
// are reached by mutated inputs; (3) as a format-1 payload behind a header with correct checksums;
// (4) when (1) or (2) succeeds, the StateDict is loaded into a small test part (a one-layer model
// of widths 3-2) that checks what it reads, and encoded again, which must decode to the same state.

#include <cstddef>
#include <cstdint>
#include <vector>

#include <flowmatch/io/checkpoint.hpp>

namespace fm = flowmatch;

namespace {

struct FuzzModel {
  static constexpr std::string_view state_scope = "model";
  fm::Matrix<float> weight = fm::Matrix<float>::Zero(2, 3);
  fm::Vector<float> bias = fm::Vector<float>::Zero(2);
  void save_state(fm::StateWriter& w) const {
    w.text("type", "mlp_vector_field");
    w.matrix("0.weight", weight);
    w.vector("0.bias", bias);
  }
  void load_state(const fm::StateReader& r) {
    r.expect_text("type", "mlp_vector_field", "model type");
    (void)r.text("scalar");
    (void)r.integers("widths");
    fm::Matrix<float> w = r.matrix<float>("0.weight", 2, 3);
    fm::Vector<float> b = r.vector<float>("0.bias", 2);
    weight = w;
    bias = b;
  }
};

void exercise(const fm::StateDict& d) {
  static FuzzModel model;
  try {
    fm::load_state_parts(d, "fuzz", model);
  } catch (const fm::CheckpointMismatchError&) {
  }
  // Whatever decodes encodes again (no reserved name, no invalid UTF-8, no NaN can come out of a
  // decode) and decodes to the same state.
  try {
    const std::vector<unsigned char> again = fm::encode_safetensors(d);
    const fm::StateDict back = fm::decode_safetensors(again.data(), again.size(), "fuzz-again");
    if (back.attributes() != d.attributes() || back.tensors().size() != d.tensors().size()) __builtin_trap();
    for (const auto& [name, t] : d.tensors()) {
      const fm::Tensor* u = back.find_tensor(name);
      if (u == nullptr || u->bytes != t.bytes || u->shape != t.shape || u->dtype != t.dtype) __builtin_trap();
    }
  } catch (const fm::Error&) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    exercise(fm::decode_checkpoint(data, size, "fuzz-file"));
  } catch (const fm::CheckpointError&) {
  }
  try {
    exercise(fm::detail::decode_safetensors_impl(data, size, "fuzz-unchecked", false));
  } catch (const fm::CheckpointError&) {
  }
  try {
    std::vector<unsigned char> file(fm::detail::v1::kCheckpointMagic.begin(), fm::detail::v1::kCheckpointMagic.end());
    fm::detail::append_le<std::uint32_t>(file, 1);
    fm::detail::append_le<std::uint32_t>(file, 32);
    fm::detail::append_le<std::uint64_t>(file, size);
    fm::detail::append_le<std::uint32_t>(file, fm::detail::crc32(0, data, size));
    fm::detail::append_le<std::uint32_t>(file, fm::detail::crc32(0, file.data(), 28));
    file.insert(file.end(), data, data + size);
    exercise(fm::decode_checkpoint(file, "fuzz-payload"));
  } catch (const fm::CheckpointError&) {
  }
  return 0;
}
