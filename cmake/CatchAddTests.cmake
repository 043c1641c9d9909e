# flowmatch's replacement for Catch2 2.13's CatchAddTests.cmake, the script that catch_discover_tests()
# runs after each build of a test binary to register its TEST_CASEs with ctest. Same interface (the
# -D variables Catch.cmake passes); tests/CMakeLists.txt points Catch.cmake at it.
#
# Why: the stock script splits the `--list-test-names-only` output as a CMake list, in which an
# unbalanced '[' (a test named "... lies on the 2^-24 grid of [0, 1)") protects every following ';'
# so that all later test names merge into one bogus test, and a ';' inside a name splits it. Here
# the output is split on newlines by hand, each name is kept whole, and written with bracket
# arguments; the names given to the test binary escape Catch's test-spec characters.

foreach(var TEST_EXECUTABLE CTEST_FILE)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "CatchAddTests.cmake: ${var} is not set")
  endif()
endforeach()
if(NOT EXISTS "${TEST_EXECUTABLE}")
  message(FATAL_ERROR "Specified test executable '${TEST_EXECUTABLE}' does not exist")
endif()

execute_process(
  COMMAND ${TEST_EXECUTOR} "${TEST_EXECUTABLE}" ${TEST_SPEC} --list-test-names-only
  OUTPUT_VARIABLE output
  ERROR_VARIABLE error_output
  RESULT_VARIABLE result
  WORKING_DIRECTORY "${TEST_WORKING_DIR}")
# Catch 2 exits with the number of tests listed: 0 means none, a non-number means it crashed.
if(NOT result MATCHES "^[0-9]+$")
  message(FATAL_ERROR "Error running test executable '${TEST_EXECUTABLE}' --list-test-names-only:\n"
                      "  Result: ${result}\n  Output: ${output}${error_output}\n")
elseif(result EQUAL 0)
  message(WARNING "Test executable '${TEST_EXECUTABLE}' contains no tests!")
endif()

# `content` as one bracket argument, with a bracket level that `content` does not close.
function(bracket_quote content out_var)
  set(eq "=")
  while(content MATCHES "]${eq}]")
    string(APPEND eq "=")
  endwhile()
  set(${out_var} "[${eq}[${content}]${eq}]" PARENT_SCOPE)
endfunction()

set(common_args)
foreach(arg IN LISTS TEST_EXTRA_ARGS)
  bracket_quote("${arg}" quoted)
  string(APPEND common_args " ${quoted}")
endforeach()
if(TEST_REPORTER)
  string(APPEND common_args " --reporter ${TEST_REPORTER}")
endif()
set(properties)
foreach(arg IN LISTS TEST_PROPERTIES)
  bracket_quote("${arg}" quoted)
  string(APPEND properties " ${quoted}")
endforeach()
if(TEST_OUTPUT_DIR AND NOT IS_ABSOLUTE "${TEST_OUTPUT_DIR}")
  set(TEST_OUTPUT_DIR "${TEST_WORKING_DIR}/${TEST_OUTPUT_DIR}")
endif()
if(TEST_OUTPUT_DIR)
  file(MAKE_DIRECTORY "${TEST_OUTPUT_DIR}")
endif()

set(script "")
set(test_list "")
string(REPLACE "\r" "" output "${output}")
while(NOT output STREQUAL "")
  string(FIND "${output}" "\n" newline)
  if(newline EQUAL -1)
    set(name "${output}")
    set(output "")
  else()
    string(SUBSTRING "${output}" 0 ${newline} name)
    math(EXPR rest "${newline} + 1")
    string(SUBSTRING "${output}" ${rest} -1 output)
  endif()
  if(name STREQUAL "")
    continue()
  endif()
  # Catch lists a name that starts with '#' in double quotes.
  if(name MATCHES "^\"(#.*)\"$")
    set(name "${CMAKE_MATCH_1}")
  endif()
  # The name as a Catch test spec: backslash-escape the characters the spec parser interprets.
  set(spec "${name}")
  foreach(char "\\" "," "[" "]" "\"" "*" "~")
    string(REPLACE "${char}" "\\${char}" spec "${spec}")
  endforeach()
  set(ctest_name "${TEST_PREFIX}${name}${TEST_SUFFIX}")
  bracket_quote("${ctest_name}" quoted_name)
  bracket_quote("${spec}" quoted_spec)
  set(executor)
  foreach(arg IN LISTS TEST_EXECUTOR)
    bracket_quote("${arg}" quoted)
    string(APPEND executor " ${quoted}")
  endforeach()
  bracket_quote("${TEST_EXECUTABLE}" quoted_executable)
  set(out_args "")
  if(TEST_OUTPUT_DIR)
    string(REGEX REPLACE "[^A-Za-z0-9_]" "_" clean_name "${name}")
    bracket_quote("${TEST_OUTPUT_DIR}/${TEST_OUTPUT_PREFIX}${clean_name}${TEST_OUTPUT_SUFFIX}" quoted_out)
    set(out_args " --out ${quoted_out}")
  endif()
  bracket_quote("${TEST_WORKING_DIR}" quoted_dir)
  string(APPEND script
    "add_test(${quoted_name}${executor} ${quoted_executable} ${quoted_spec}${common_args}${out_args})\n"
    "set_tests_properties(${quoted_name} PROPERTIES WORKING_DIRECTORY ${quoted_dir}${properties})\n")
  string(APPEND test_list " ${quoted_name}")
endwhile()

# The list of discovered tests, as the stock script provides it to the including ctest file.
if(TEST_LIST)
  string(APPEND script "set(${TEST_LIST}${test_list})\n")
endif()
file(WRITE "${CTEST_FILE}" "${script}")
