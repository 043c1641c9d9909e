# ctest: the examples under mpirun (built with flowmatch::mpi).
#  - gmm2d on 2 ranks prints one RESULT line, with ranks=2;
#  - its step-20 checkpoint resumed on 1 rank (no mpirun) reaches step 40 with a final checkpoint
#    byte-identical to the straight 2-rank run's (two shards: one addition per element, which
#    commutes, so one rank doing both shards is bit for bit the two ranks);
#  - a 1-rank checkpoint resumes on 2 ranks;
#  - the flowmatch program: `train` on 2 ranks, then `sample` on 2 ranks writes the very file
#    `sample` writes on 1 (the points spread over the ranks and gathered in order).
#   cmake -DGMM2D=<gmm2d> -DCLI=<flowmatch> -DDATA=<examples/cli/testdata> -DMPIEXEC=<mpiexec>
#         "-DFLAGS=<mpiexec flags>" -DWORK=<folder> -P mpi_test.cmake
foreach(var GMM2D CLI DATA MPIEXEC WORK)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "mpi_test.cmake: -D${var}=... is required")
  endif()
endforeach()
separate_arguments(FLAGS)
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
set(common --batch 64 --hidden 16 16 --samples 8 --time-points 2 --trajectories 0 --threads 1 --seed 5)

# run(<out var> <ranks: 0 = no mpiexec> args...)
function(run out_var ranks)
  if(ranks EQUAL 0)
    set(launch)
  else()
    set(launch ${MPIEXEC} -n ${ranks} ${FLAGS})
  endif()
  execute_process(COMMAND ${launch} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 120)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${launch} ${ARGN} failed (${rc}):\n${out}\n${err}")
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()

run(straight 2 ${GMM2D} ${common} --steps 40 --out ${WORK}/straight --checkpoint-every 20
    --checkpoint-dir ${WORK}/ckpt --save ${WORK}/straight.safetensors)
string(REGEX MATCHALL "RESULT [^\n]*" results "${straight}")
list(LENGTH results count)
if(NOT count EQUAL 1 OR NOT results MATCHES "ranks=2")
  message(FATAL_ERROR "gmm2d on 2 ranks: expected one RESULT line with ranks=2, got:\n${straight}")
endif()
message(STATUS "gmm2d on 2 ranks: ${results}")

run(resumed 0 ${GMM2D} ${common} --steps 40 --out ${WORK}/resumed --resume ${WORK}/ckpt/gmm2d-000000000020.safetensors
    --save ${WORK}/resumed.safetensors)
if(NOT resumed MATCHES "resumed from" OR NOT resumed MATCHES "ranks=1")
  message(FATAL_ERROR "the 1-rank resume of the 2-rank checkpoint did not resume:\n${resumed}")
endif()
file(SHA256 ${WORK}/straight.safetensors a)
file(SHA256 ${WORK}/resumed.safetensors b)
if(NOT a STREQUAL b)
  message(FATAL_ERROR "40 steps on 2 ranks and 20 on 2 + 20 resumed on 1 give different checkpoints")
endif()
message(STATUS "gmm2d: 2-rank checkpoint resumed on 1 rank, final checkpoint byte-identical")

run(one 0 ${GMM2D} ${common} --steps 20 --out ${WORK}/one --save ${WORK}/one.safetensors)
run(two 2 ${GMM2D} ${common} --steps 40 --out ${WORK}/two --resume ${WORK}/one.safetensors)
if(NOT two MATCHES "resumed from .* at step 20" OR NOT two MATCHES "ranks=2")
  message(FATAL_ERROR "the 2-rank resume of a 1-rank checkpoint did not resume:\n${two}")
endif()
message(STATUS "gmm2d: 1-rank checkpoint resumed on 2 ranks")

set(small --hidden 32 --batch 64 --threads 1 --quiet --steps 60)
run(t 2 ${CLI} train --data ${DATA}/moons_small.csv --out ${WORK}/cli.safetensors ${small})
run(s1 0 ${CLI} sample ${WORK}/cli.safetensors --out ${WORK}/one.csv --n 501 --seed 3 --threads 1)
run(s2 3 ${CLI} sample ${WORK}/cli.safetensors --out ${WORK}/three.csv --n 501 --seed 3 --threads 1)
file(SHA256 ${WORK}/one.csv a)
file(SHA256 ${WORK}/three.csv b)
if(NOT a STREQUAL b)
  message(FATAL_ERROR "flowmatch sample on 3 ranks wrote other samples than on 1 rank")
endif()
message(STATUS "flowmatch: trained on 2 ranks; 501 samples on 3 ranks identical to 1 rank")
