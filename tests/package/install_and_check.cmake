# Run by ctest as package.install (the fixture package.find_package needs): installs the flowmatch
# build tree into an empty prefix with `cmake --install --prefix`, then checks that exactly the
# expected files landed there: every file under include/, and flowmatchConfig.cmake,
# flowmatchConfigVersion.cmake (for VERSION) and flowmatchTargets.cmake under <DATADIR>/cmake/flowmatch.
#
#   cmake -DBUILD_DIR=... -DPREFIX=... -DSOURCE_INCLUDE_DIR=... -DINCLUDEDIR=include -DDATADIR=share
#         -DVERSION=x.y.z [-DCONFIG=...] [-DPROGRAMS=bin/flowmatch;...] -P install_and_check.cmake
# PROGRAMS: executables that must be installed too (relative to the prefix); each must run --help.

foreach(var BUILD_DIR PREFIX SOURCE_INCLUDE_DIR INCLUDEDIR DATADIR VERSION)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "install_and_check.cmake: -D${var}=... is required")
  endif()
endforeach()

file(REMOVE_RECURSE ${PREFIX})  # stale files from an earlier run must not hide a missing rule
set(command ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${PREFIX})
if(CONFIG)
  list(APPEND command --config ${CONFIG})
endif()
execute_process(COMMAND ${command} RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
message("${output}")
if(NOT result EQUAL 0)
  message(FATAL_ERROR "cmake --install failed (${result})")
endif()

set(cmake_dir ${DATADIR}/cmake/flowmatch)
file(GLOB_RECURSE expected RELATIVE ${SOURCE_INCLUDE_DIR} ${SOURCE_INCLUDE_DIR}/*)
list(TRANSFORM expected PREPEND ${INCLUDEDIR}/)
list(APPEND expected ${cmake_dir}/flowmatchConfig.cmake ${cmake_dir}/flowmatchConfigVersion.cmake
  ${cmake_dir}/flowmatchTargets.cmake ${PROGRAMS})
file(GLOB_RECURSE installed RELATIVE ${PREFIX} ${PREFIX}/*)
list(SORT expected)
list(SORT installed)

set(missing ${expected})
list(REMOVE_ITEM missing ${installed})
set(unexpected ${installed})
list(REMOVE_ITEM unexpected ${expected})
if(missing OR unexpected)
  string(REPLACE ";" "\n  " missing "${missing}")
  string(REPLACE ";" "\n  " unexpected "${unexpected}")
  message(FATAL_ERROR "the install tree under ${PREFIX} is not as expected.\n"
                      "Missing:\n  ${missing}\nUnexpected:\n  ${unexpected}")
endif()

file(READ ${PREFIX}/${cmake_dir}/flowmatchConfigVersion.cmake version_file)
if(NOT version_file MATCHES "set\\(PACKAGE_VERSION \"${VERSION}\"\\)")
  message(FATAL_ERROR "${cmake_dir}/flowmatchConfigVersion.cmake does not say version ${VERSION}")
endif()
foreach(program IN LISTS PROGRAMS)
  execute_process(COMMAND ${PREFIX}/${program} --help RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "the installed ${program} --help failed (${rc}):\n${out}")
  endif()
endforeach()
list(LENGTH installed count)
message(STATUS "installed ${count} files into ${PREFIX}: the headers and the package files of flowmatch ${VERSION}")
