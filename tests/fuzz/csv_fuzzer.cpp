// libFuzzer harness for the CSV reader (scripts/sanitize.sh builds and runs it under ASan and
// UBSan). Every input must parse or throw CsvError; anything else is a failure. The first byte
// picks the options (delimiter, header mode, scalar type), the rest is the file's text.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <flowmatch/io/csv.hpp>

namespace fm = flowmatch;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const unsigned mode = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  fm::CsvOptions options;
  options.delimiter = (mode & 1) ? ';' : ',';
  options.header = (mode & 6) == 0 ? fm::CsvHeader::Auto : (mode & 6) == 2 ? fm::CsvHeader::Present : fm::CsvHeader::Absent;
  options.comment = (mode & 8) ? '\0' : '#';
  try {
    if (mode & 16) {
      const fm::Matrix<float> m = fm::parse_csv<float>(text, "fuzz.csv", options);
      if (!m.allFinite() || m.size() == 0) __builtin_trap();  // the reader promises finite, non-empty data
    } else {
      const fm::CsvTable<double> t = fm::parse_csv_table<double>(text, "fuzz.csv", options);
      if (!t.data.allFinite() || t.data.size() == 0) __builtin_trap();
      if (!t.names.empty() && static_cast<fm::Index>(t.names.size()) != t.data.rows()) __builtin_trap();
    }
  } catch (const fm::CsvError& e) {
    if (e.line() < 0 || e.column() < 0) __builtin_trap();
  }
  return 0;
}
