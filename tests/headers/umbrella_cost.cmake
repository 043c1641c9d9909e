# headers.umbrella_compile_cost: fails when <flowmatch.hpp> costs more than MAX_RATIO times
# <Eigen/Dense> to compile (-fsyntax-only), both measured here, in the same run, with the compiler
# and include directories of the build: a ratio, so that the machine's speed does not matter.
# Each translation unit is just the #include; the two are compiled alternately REPEAT times and
# each one's fastest time is kept (the minimum is the least disturbed by other processes).
# issue 20 measured 8.1 s against 1.6 s (5x) before the heavy non-template code became templates.
#
#   cmake -DCXX=g++ -DSTD_FLAG=-std=c++20 "-DINCLUDES=include|/usr/include/eigen3" -DWORK=/tmp/w
#         [-DMAX_RATIO=3] [-DREPEAT=3] -P tests/headers/umbrella_cost.cmake
# (INCLUDES separated by '|'; MAX_RATIO an integer).
cmake_minimum_required(VERSION 3.25)
foreach(var CXX INCLUDES WORK)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "umbrella_cost.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT DEFINED MAX_RATIO)
  set(MAX_RATIO 3)
endif()
if(NOT DEFINED REPEAT)
  set(REPEAT 3)
endif()
if(NOT DEFINED STD_FLAG)
  set(STD_FLAG -std=c++20)
endif()

string(REPLACE "|" ";" INCLUDES "${INCLUDES}")
file(MAKE_DIRECTORY ${WORK})
file(WRITE ${WORK}/eigen_dense.cpp "#include <Eigen/Dense>\n")
file(WRITE ${WORK}/umbrella.cpp "#include <flowmatch.hpp>\n")
set(flags ${STD_FLAG} -O0 -fsyntax-only)
foreach(dir IN LISTS INCLUDES)
  list(APPEND flags -I${dir})
endforeach()

# Seconds (with microseconds) since the epoch.
function(now out)
  string(TIMESTAMP t "%s.%f" UTC)
  set(${out} ${t} PARENT_SCOPE)
endfunction()

# Wall-clock time of one -fsyntax-only compile of ${WORK}/${unit}.cpp, in milliseconds (CMake's
# math is integer-only: seconds and microseconds are taken apart).
function(time_unit unit out)
  now(t0)
  execute_process(COMMAND ${CXX} ${flags} ${WORK}/${unit}.cpp RESULT_VARIABLE rc ERROR_VARIABLE err)
  now(t1)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "umbrella_cost: ${unit}.cpp does not compile (${CXX} ${flags}):\n${err}")
  endif()
  string(REGEX MATCH "^([0-9]+)\\.([0-9]+)$" _ ${t0})
  set(s0 ${CMAKE_MATCH_1})
  set(u0 ${CMAKE_MATCH_2})
  string(REGEX MATCH "^([0-9]+)\\.([0-9]+)$" _ ${t1})
  set(s1 ${CMAKE_MATCH_1})
  set(u1 ${CMAKE_MATCH_2})
  string(REGEX REPLACE "^0+([0-9])" "\\1" u0 ${u0})
  string(REGEX REPLACE "^0+([0-9])" "\\1" u1 ${u1})
  math(EXPR ms "(${s1} - ${s0}) * 1000 + (${u1} - ${u0}) / 1000")
  set(${out} ${ms} PARENT_SCOPE)
endfunction()

set(best_eigen "")
set(best_umbrella "")
foreach(i RANGE 1 ${REPEAT})
  time_unit(eigen_dense e)
  time_unit(umbrella u)
  message(STATUS "run ${i}: <Eigen/Dense> ${e} ms, <flowmatch.hpp> ${u} ms")
  if(best_eigen STREQUAL "" OR e LESS best_eigen)
    set(best_eigen ${e})
  endif()
  if(best_umbrella STREQUAL "" OR u LESS best_umbrella)
    set(best_umbrella ${u})
  endif()
endforeach()

if(best_eigen LESS 1)
  set(best_eigen 1)
endif()
math(EXPR ratio_x100 "${best_umbrella} * 100 / ${best_eigen}")
math(EXPR limit_x100 "${MAX_RATIO} * 100")
math(EXPR whole "${ratio_x100} / 100")
math(EXPR frac "${ratio_x100} % 100")
if(frac LESS 10)
  set(frac "0${frac}")
endif()
set(summary "<flowmatch.hpp> ${best_umbrella} ms = ${whole}.${frac} x <Eigen/Dense> ${best_eigen} ms \
(fastest of ${REPEAT} each, ${CXX} -O0 -fsyntax-only; limit ${MAX_RATIO}x)")
if(ratio_x100 GREATER limit_x100)
  message(FATAL_ERROR "FAIL: ${summary}. benchmarks/header_cost.py shows which header costs what.")
endif()
message(STATUS "OK: ${summary}")
