#pragma once
/// \file
/// CRC-32 (IEEE 802.3, the polynomial of zlib, PNG and gzip): the checksum of flowmatch's
/// checkpoint files. It detects every error burst of up to 32 bits, so every single flipped byte.

#include <array>
#include <cstddef>
#include <cstdint>

namespace flowmatch::detail {

inline constexpr std::array<std::uint32_t, 256> make_crc32_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? (0xEDB88320u ^ (c >> 1)) : (c >> 1);
    table[i] = c;
  }
  return table;
}

inline constexpr std::array<std::uint32_t, 256> kCrc32Table = make_crc32_table();

/// Continues a CRC-32 over `size` more bytes (start with crc = 0): crc32(crc32(0, a), b) = crc32(0, ab).
inline std::uint32_t crc32(std::uint32_t crc, const unsigned char* data, std::size_t size) {
  crc = ~crc;
  for (std::size_t i = 0; i < size; ++i) crc = kCrc32Table[(crc ^ data[i]) & 0xffu] ^ (crc >> 8);
  return ~crc;
}

}  // namespace flowmatch::detail
