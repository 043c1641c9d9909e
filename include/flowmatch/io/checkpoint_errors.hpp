#pragma once
/// \file
/// The exceptions of checkpoint files (io/checkpoint.hpp, io/safetensors.hpp,
/// io/checkpoint_v1.hpp): one class per kind of bad file, each message naming the file.
/// CheckpointError (the base) and CheckpointMismatchError (a valid file that does not fit the
/// parts passed) live in core/state.hpp.
///
///     CheckpointError
///       CheckpointIOError            cannot open, read, write, sync or rename
///       CheckpointMagicError         not a flowmatch checkpoint (neither format 1 nor a flowmatch
///                                    safetensors file)
///       CheckpointVersionError       a format version this build does not read (or none)
///       CheckpointTruncatedError     shorter than its header says (also: a tensor ends past the file)
///       CheckpointTrailingDataError  bytes after the last tensor
///       CheckpointChecksumError      a CRC-32 does not match: a byte changed after the file was written
///       CheckpointCorruptError       the checksums hold but a field is impossible; its subclasses
///                                    name the safetensors header's problems one by one:
///         CheckpointHeaderSizeError    header length above the cap
///         CheckpointJsonError          the header is not valid JSON
///         CheckpointHeaderTypeError    not an object, an entry not {dtype, shape, data_offsets}, too deep
///         CheckpointMetadataError      __metadata__ not a map of strings, a bad checksum field
///         CheckpointDTypeError         an unknown dtype
///         CheckpointShapeError         a shape not a list of non-negative integers
///         CheckpointSizeOverflowError  elements x element size overflows
///         CheckpointOffsetsError       data_offsets not [begin, end] with end - begin = the tensor's size
///         CheckpointOverlapError       two tensors' bytes overlap
///         CheckpointGapError           bytes of the data section no tensor covers
///         CheckpointDuplicateError     a name given twice in one JSON object
///         (non-finite F16/BF16/F32/F64 values throw CheckpointCorruptError itself)

#include "flowmatch/core/state.hpp"

namespace flowmatch {

#define FLOWMATCH_CHECKPOINT_ERROR(Name, Base) \
  class Name : public Base {                   \
   public:                                     \
    using Base::Base;                          \
  }

/// The file cannot be opened, read, written, synced or renamed (the message holds the OS's reason).
FLOWMATCH_CHECKPOINT_ERROR(CheckpointIOError, CheckpointError);
/// Not a flowmatch checkpoint: neither the format-1 magic nor a safetensors header holding
/// flowmatch's metadata ("format": "flowmatch").
FLOWMATCH_CHECKPOINT_ERROR(CheckpointMagicError, CheckpointError);
/// The file's format version is missing or not one this build reads.
FLOWMATCH_CHECKPOINT_ERROR(CheckpointVersionError, CheckpointError);
/// The file is shorter than its header says.
FLOWMATCH_CHECKPOINT_ERROR(CheckpointTruncatedError, CheckpointError);
/// The file has bytes after the end its header declares.
FLOWMATCH_CHECKPOINT_ERROR(CheckpointTrailingDataError, CheckpointError);
/// A checksum does not match: some byte of the file changed after it was written.
FLOWMATCH_CHECKPOINT_ERROR(CheckpointChecksumError, CheckpointError);
/// The checksums hold but a field is impossible (a size larger than the file, an unknown code,
/// a non-finite parameter): a file written by something else, or crafted.
FLOWMATCH_CHECKPOINT_ERROR(CheckpointCorruptError, CheckpointError);

FLOWMATCH_CHECKPOINT_ERROR(CheckpointHeaderSizeError, CheckpointCorruptError);
FLOWMATCH_CHECKPOINT_ERROR(CheckpointJsonError, CheckpointCorruptError);
FLOWMATCH_CHECKPOINT_ERROR(CheckpointHeaderTypeError, CheckpointCorruptError);
FLOWMATCH_CHECKPOINT_ERROR(CheckpointMetadataError, CheckpointCorruptError);
FLOWMATCH_CHECKPOINT_ERROR(CheckpointDTypeError, CheckpointCorruptError);
FLOWMATCH_CHECKPOINT_ERROR(CheckpointShapeError, CheckpointCorruptError);
FLOWMATCH_CHECKPOINT_ERROR(CheckpointSizeOverflowError, CheckpointCorruptError);
FLOWMATCH_CHECKPOINT_ERROR(CheckpointOffsetsError, CheckpointCorruptError);
FLOWMATCH_CHECKPOINT_ERROR(CheckpointOverlapError, CheckpointCorruptError);
FLOWMATCH_CHECKPOINT_ERROR(CheckpointGapError, CheckpointCorruptError);
FLOWMATCH_CHECKPOINT_ERROR(CheckpointDuplicateError, CheckpointCorruptError);

#undef FLOWMATCH_CHECKPOINT_ERROR

}  // namespace flowmatch
