# otcfm_table.smoke: the table example end to end at a tiny budget, its --summarize mode and bad inputs.
#   cmake -DOTCFM_TABLE=<path to otcfm_table> -DWORK=<scratch folder> -P smoke_test.cmake
# Good run: moons and twodim, one seed, 2 epochs (40 and 38 steps), every row: the RUN and RESULT
# lines, the CSV files the issue names (generated points and the target they were scored against)
# and the two figures. The W2 of so short a run is poor; the test checks the numbers are finite
# and the files complete, not their quality (the README's table does that).
foreach(var OTCFM_TABLE WORK)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "smoke_test.cmake: -D${var}=... is required")
  endif()
endforeach()
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})

execute_process(COMMAND ${OTCFM_TABLE} --seeds 1 --tasks moons,twodim --epochs 2 --val-every 1 --pairs 256
                        --reflow-steps 10 --meanflow-steps 10 --out ${WORK}/run
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "good run: exit ${rc}\n${out}\n${err}")
endif()
set(num "[0-9]+\\.[0-9]+")
foreach(re "RUN task=moons method=data seed=42 nfe=0 w2=${num}"
           "RUN task=moons method=otcfm seed=42 nfe=100 w2=${num} npe=${num}"
           "RUN task=twodim method=otcfm seed=42 nfe=100 w2=${num} npe=${num}"
           "RUN task=moons method=otcfm-ab2 seed=42 nfe=4 w2=${num}"
           "RUN task=moons method=distill seed=42 nfe=1 w2=${num}"
           "RUN task=moons method=meanflow seed=42 nfe=1 w2=${num}"
           "RUN task=twodim method=icfm seed=42 nfe=100 w2=${num}"
           "RESULT task=moons method=otcfm nfe=100 w2=${num} w2_std=0\\.0000 npe=${num}\n"
           "RESULT task=twodim method=reflow-euler nfe=1 w2=${num} w2_std=0\\.0000 npe=n/a\n"
           "\\| OT-CFM, paper \\(Tong et al. Table 2\\) \\| 100 \\| 0\\.130 \\+- 0\\.016 \\| 0\\.601 \\+- 0\\.027 \\|"
           "bar moons: OT-CFM ${num} vs paper mean \\+ std 0\\.146: ")
  if(NOT out MATCHES "${re}")
    message(FATAL_ERROR "good run: output does not match '${re}':\n${out}")
  endif()
endforeach()
if(out MATCHES "nan|inf")
  message(FATAL_ERROR "good run: a number is not finite:\n${out}")
endif()
foreach(f moons_otcfm_seed42.csv moons_target_seed42.csv moons_icfm_seed42.csv moons_distill_seed42.csv
          moons_meanflow_seed42.csv twodim_otcfm_seed42.csv twodim_target_seed42.csv nfe_vs_w2.png straightness.png)
  if(NOT EXISTS ${WORK}/run/${f})
    message(FATAL_ERROR "good run: ${f} was not written")
  endif()
endforeach()
file(STRINGS ${WORK}/run/moons_otcfm_seed42.csv lines)
list(LENGTH lines n)
if(NOT n EQUAL 1001)
  message(FATAL_ERROR "moons_otcfm_seed42.csv: ${n} lines, expected a header and 1000 points")
endif()
# The table as CSV: the paper's row per task, then a row per RESULT line.
file(STRINGS ${WORK}/run/results.csv lines)
list(GET lines 0 header)
string(REGEX MATCHALL "\nRESULT " results "${out}")
list(LENGTH results nresults)
list(LENGTH lines n)
math(EXPR expected "${nresults} + 3")
if(NOT header STREQUAL "task,method,nfe,w2_mean,w2_std,npe_mean,seeds" OR NOT n EQUAL expected)
  message(FATAL_ERROR "results.csv: header '${header}' and ${n} lines, expected a header, 2 paper rows and ${nresults}")
endif()
if(NOT lines MATCHES "(^|;)moons,otcfm,100,[0-9.e-]+,0,[0-9.e-]+,1(;|$)")
  message(FATAL_ERROR "results.csv: no row 'moons,otcfm,100,<w2>,0,<npe>,1':\n${lines}")
endif()
file(STRINGS ${WORK}/run/twodim_target_seed42.csv lines)
list(LENGTH lines n)
if(NOT n EQUAL 513)
  message(FATAL_ERROR "twodim_target_seed42.csv: ${n} lines, expected a header and 512 points (torchcfm's one test batch)")
endif()

# --summarize rebuilds the table from the log.
file(WRITE ${WORK}/log.txt "${out}")
execute_process(COMMAND ${OTCFM_TABLE} --summarize ${WORK}/log.txt --out ${WORK}/summary
  RESULT_VARIABLE rc OUTPUT_VARIABLE sout ERROR_VARIABLE serr)
if(NOT rc EQUAL 0 OR NOT sout MATCHES "RESULT task=moons method=otcfm nfe=100 w2=${num}")
  message(FATAL_ERROR "--summarize: exit ${rc}\n${sout}\n${serr}")
endif()

# Bad inputs: non-zero exit and a message naming the problem.
foreach(case "--tasks;circles|unknown task 'circles'" "--methods;fm|unknown method 'fm'" "--epochs;0|--epochs"
             "--summarize;${WORK}/missing.txt|cannot read")
  string(REPLACE "|" ";" parts "${case}")
  list(GET parts 0 flag)
  list(GET parts 1 value)
  list(GET parts 2 expect)
  execute_process(COMMAND ${OTCFM_TABLE} ${flag} ${value} --out ${WORK}/bad RESULT_VARIABLE rc OUTPUT_VARIABLE o ERROR_VARIABLE e)
  if(rc EQUAL 0 OR NOT "${o}${e}" MATCHES "${expect}")
    message(FATAL_ERROR "bad input ${flag} ${value}: exit ${rc}, expected a message matching '${expect}':\n${o}\n${e}")
  endif()
endforeach()
