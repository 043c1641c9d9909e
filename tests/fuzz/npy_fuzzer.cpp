// libFuzzer harness for the .npy reader (scripts/sanitize.sh builds and runs it under ASan and
// UBSan). Every input must decode or throw NpyError; anything else is a failure. The first byte
// picks the scalar type and whether non-finite values are refused, the rest is the file.

#include <cstddef>
#include <cstdint>

#include <flowmatch/io/npy.hpp>

namespace fm = flowmatch;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const unsigned mode = data[0];
  fm::NpyReadOptions options;
  options.require_finite = (mode & 2) == 0;
  try {
    if (mode & 1) {
      const fm::Matrix<float> m = fm::decode_npy<float>(data + 1, size - 1, "fuzz.npy", options);
      if (m.size() == 0) __builtin_trap();  // the reader promises non-empty data
      if (options.require_finite && !m.allFinite()) __builtin_trap();
    } else {
      const fm::Matrix<double> m = fm::decode_npy<double>(data + 1, size - 1, "fuzz.npy", options);
      if (m.size() == 0) __builtin_trap();
      if (options.require_finite && !m.allFinite()) __builtin_trap();
      // What was read writes back and reads again to the same values.
      if (options.require_finite) {
        const auto bytes = fm::encode_npy(m);
        if (fm::decode_npy<double>(bytes.data(), bytes.size(), "again.npy") != m) __builtin_trap();
      }
    }
  } catch (const fm::NpyError&) {
  }
  return 0;
}
