# posterior.smoke: the posterior example end to end at a tiny budget, and its bad inputs.
#   cmake -DPOSTERIOR=<path to posterior> -DWORK=<scratch folder> -P smoke_test.cmake
# Good run: two_moons, 400 simulations, a small network for a few epochs, observations 1 and 2 with
# 1,000 samples each, C2ST: the files (obs<k>.csv with the theta0,theta1 header, the marginals
# figure) and the per-observation and RESULT lines. The C2ST of such a small run is far from 0.5;
# the test checks that it is a number in [0.4, 1], not its quality (the README's table does that).
# Bad inputs: each must exit non-zero with one line on stderr naming the problem.

foreach(var POSTERIOR WORK)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "smoke_test.cmake: -D${var}=... is required")
  endif()
endforeach()
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})

execute_process(COMMAND ${POSTERIOR} --task two_moons --simulations 400 --out ${WORK}/run --threads 1
                        --observations 1 2 --samples 1000 --hidden 32 32 --max-epochs 5 --ode-steps 4
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "good run: exit ${rc}\n${out}\n${err}")
endif()
foreach(re "task=two_moons simulations=400 " "obs=1 c2st=0\\.[0-9]+ rejected=[0-9]+ " "obs=2 c2st="
           "RESULT task=two_moons simulations=400 c2st=(0\\.[4-9][0-9]*|1\\.0+) c2st_sd=[0-9.]+ train_s=[0-9.]+ sample_s=[0-9.]+\n")
  if(NOT out MATCHES "${re}")
    message(FATAL_ERROR "good run: output does not match '${re}':\n${out}")
  endif()
endforeach()
foreach(f obs1.csv obs2.csv marginals_obs1.png)
  if(NOT EXISTS ${WORK}/run/${f})
    message(FATAL_ERROR "good run: ${WORK}/run/${f} was not written")
  endif()
endforeach()
file(STRINGS ${WORK}/run/obs1.csv lines)
list(LENGTH lines n)
list(GET lines 0 header)
if(NOT header STREQUAL "theta0,theta1" OR NOT n EQUAL 1001)
  message(FATAL_ERROR "obs1.csv: header '${header}' and ${n} lines, expected 'theta0,theta1' and 1001")
endif()
message(STATUS "ok   good run")

function(fail name regex)
  execute_process(COMMAND ${POSTERIOR} ${ARGN} --out ${WORK}/bad RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  string(STRIP "${err}" e)
  if(rc EQUAL 0 OR NOT e MATCHES "${regex}")
    message(FATAL_ERROR "${name}: exit ${rc}, stderr '${e}', expected a failure matching '${regex}'")
  endif()
  message(STATUS "ok   ${name}: ${e}")
endfunction()
fail("unknown task" "unknown task.*two_moons" --task nope --simulations 100)
fail("budget 0" "--simulations.*0" --task two_moons --simulations 0)
fail("observation 11" "--observations.*11" --task two_moons --simulations 100 --observations 11)
fail("missing data" "observations\\.csv" --task slcp --simulations 100 --data ${WORK}/no-such-folder --max-epochs 1)
