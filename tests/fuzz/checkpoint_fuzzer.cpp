// libFuzzer harness for the checkpoint loader (scripts/sanitize.sh builds and runs it under ASan
// and UBSan). Every input must end in success or a CheckpointError: any other exception, crash,
// leak or sanitizer report is a failure.
//
// Each input goes three ways: (1) as a whole file through the checks of load_checkpoint; (2) as a
// payload behind a header with correct checksums, so that the payload's own checks are reached
// (the checksums stop almost every random input in (1)); (3) if (2) parses, loaded into a small
// model and Adam when the architecture fits.

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include <flowmatch/io/checkpoint.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>
#include <flowmatch/optim/adam.hpp>

namespace fm = flowmatch;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    (void)fm::detail::decode_checkpoint(data, size, "fuzz-file");
  } catch (const fm::CheckpointError&) {
  }
  try {
    const fm::detail::DecodedCheckpoint d = fm::detail::decode_checkpoint_payload(data, size, "fuzz-payload");
    static fm::MLPVectorField<float> model(2, {2}, 1);  // widths 3-2-2 (as the seed corpus), 14 parameters
    static fm::Adam<float> adam(1e-3);
    try {
      fm::detail::check_model(d, model, "fuzz");
      if (d.optimizer == fm::detail::kOptimizerAdam) {
        fm::detail::check_optimizer(d, adam, "fuzz");
        auto prepared = fm::detail::prepare_optimizer<fm::Adam<float>>(d);
        fm::detail::commit_model(d, model);
        fm::detail::commit_optimizer(d, std::move(prepared), adam);
      } else {
        fm::detail::commit_model(d, model);
      }
    } catch (const fm::CheckpointMismatchError&) {
    }
  } catch (const fm::CheckpointError&) {
  }
  return 0;
}
