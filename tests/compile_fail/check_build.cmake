# Run by ctest for the compile-fail tests: builds one EXCLUDE_FROM_ALL target of the flowmatch build
# tree and checks the outcome.
#
#   cmake -DBUILD_DIR=<build tree> -DTARGET=<target> [-DCONFIG=<config>] -DEXPECT=fail|pass
#         [-DPATTERN_1=<regex> ... -DPATTERN_4=<regex>] -P check_build.cmake
#
# EXPECT=fail: the build must fail AND its output must match every PATTERN_i (so a case that fails
# for another reason, a typo or a missing include, does not pass). EXPECT=pass: the build must
# succeed. (ctest's WILL_FAIL cannot be combined with PASS_REGULAR_EXPRESSION, which makes ctest
# ignore the exit code: hence this script.)

foreach(var BUILD_DIR TARGET EXPECT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_build.cmake: -D${var}=... is required")
  endif()
endforeach()

# Plain ASCII quotes in GCC's diagnostics, whatever the caller's locale.
set(ENV{LC_ALL} C)
set(ENV{LANG} C)

set(command ${CMAKE_COMMAND} --build ${BUILD_DIR} --target ${TARGET})
if(CONFIG)
  list(APPEND command --config ${CONFIG})
endif()
execute_process(COMMAND ${command} RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)

if(EXPECT STREQUAL "pass")
  if(NOT result EQUAL 0)
    message("${output}")
    message(FATAL_ERROR "'${TARGET}' must compile but its build failed (${result}): the compile-fail "
                        "mechanism is broken, or the control case no longer compiles.")
  endif()
  message(STATUS "'${TARGET}' compiled, as it must")
  return()
elseif(NOT EXPECT STREQUAL "fail")
  message(FATAL_ERROR "check_build.cmake: EXPECT must be 'fail' or 'pass', not '${EXPECT}'")
endif()

if(result EQUAL 0)
  message("${output}")
  message(FATAL_ERROR "'${TARGET}' must NOT compile, but its build succeeded.")
endif()
set(missing)
foreach(i RANGE 1 4)
  if(DEFINED PATTERN_${i} AND NOT output MATCHES "${PATTERN_${i}}")
    list(APPEND missing "${PATTERN_${i}}")
  endif()
endforeach()
if(missing)
  message("${output}")
  string(REPLACE ";" "\n  " missing "${missing}")
  message(FATAL_ERROR "'${TARGET}' failed to compile, as it must, but the diagnostics above do not "
                      "match:\n  ${missing}")
endif()
message(STATUS "'${TARGET}' failed to compile, as it must, with the expected diagnostic")
