# cli.end_to_end: the flowmatch program end to end on a small 2-D CSV (examples/cli/testdata).
#   cmake -DFLOWMATCH=<path to flowmatch> -DWORK=<scratch folder> -P end_to_end_test.cmake
# Good runs: train (a few hundred steps), sample (CSV and .npy, --x0), eval, info, loglik (exact
# and Hutchinson), resume, a conditional model with guidance. Bad inputs: each must exit non-zero
# with exactly one line on stderr that names the problem.

foreach(var FLOWMATCH WORK)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "end_to_end_test.cmake: -D${var}=... is required")
  endif()
endforeach()
set(DATA ${CMAKE_CURRENT_LIST_DIR}/testdata)
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
set(SMALL --hidden 64 64 --batch 128 --threads 1 --quiet)

# run(<name> <expected: ok|fail|an exit code> <regex the output (ok, code) or the single stderr line
# (fail) must match> args...)
function(run name expect regex)
  execute_process(COMMAND ${FLOWMATCH} ${ARGN} WORKING_DIRECTORY ${WORK}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(want 0)
  if(expect MATCHES "^[0-9]+$")
    set(want ${expect})
    set(expect ok)
  endif()
  if(expect STREQUAL "ok")
    if(NOT rc EQUAL want)
      message(FATAL_ERROR "${name}: exit ${rc}\n${out}\n${err}")
    endif()
    if(NOT out MATCHES "${regex}")
      message(FATAL_ERROR "${name}: output does not match '${regex}':\n${out}")
    endif()
    message(STATUS "ok   ${name}")
    set(LAST_OUT "${out}" PARENT_SCOPE)
  else()
    if(rc EQUAL 0)
      message(FATAL_ERROR "${name}: exit 0, expected a failure\n${out}\n${err}")
    endif()
    string(STRIP "${err}" e)
    string(FIND "${e}" "\n" nl)
    if(NOT nl EQUAL -1)
      message(FATAL_ERROR "${name}: more than one line on stderr:\n${err}")
    endif()
    if(NOT e MATCHES "${regex}")
      message(FATAL_ERROR "${name}: stderr does not match '${regex}':\n${err}")
    endif()
    message(STATUS "ok   ${name} (exit ${rc}): ${e}")
  endif()
endfunction()

# ---------------------------------------------------------------- good runs
run(train ok "wrote model.safetensors" train --data ${DATA}/moons_small.csv --out model.safetensors --steps 300
    --warmup 30 --ema 0.99 ${SMALL})
run(info ok "architecture +MLP 3-64-64-2, activation silu.*step 300 of 300.*ema +decay 0.99" info model.safetensors)
run(sample_csv ok "wrote 500 samples of dimension 2" sample model.safetensors --out s.csv --n 500 --seed 1 --threads 1)
run(sample_npy ok "wrote 500 samples" sample model.safetensors --out s.npy --n 500 --seed 1 --solver rk4 --steps 20 --threads 1)
run(sample_dopri5 ok "wrote 100 samples" sample model.safetensors --out d.csv --n 100 --solver dopri5 --threads 1)
run(sample_ab2 ok "wrote 100 samples .*\\(ab2, 8 steps\\)" sample model.safetensors --out a.csv --n 100 --solver ab2 --steps 8 --threads 1)
run(eval ok "w2 [0-9.]+\nsliced_w2 [0-9.]+\nmmd2_rbf [-0-9.e]+\nenergy [-0-9.e]+" eval s.csv ${DATA}/moons_small.csv --n 400 --threads 1)
# The trained model is far closer to the data than its own noise is.
string(REGEX MATCH "w2 ([0-9.]+)" _ "${LAST_OUT}")
set(w2_model ${CMAKE_MATCH_1})
run(eval_npy ok "w2" eval s.npy s.csv --threads 1)
run(loglik ok "mean log-likelihood -?[0-9.]+ \\(exact" loglik model.safetensors --data ${DATA}/moons_small.csv --out ll.csv --steps 10 --threads 1)
run(loglik_hutch ok "Hutchinson, 2 probe" loglik model.safetensors --data ${DATA}/moons_small.csv --hutchinson 2 --steps 10 --threads 1)
run(loglik_ab3 ok "mean log-likelihood -?[0-9.]+ \\(exact divergence, ab3, 40 steps\\)" loglik model.safetensors --data ${DATA}/moons_small.csv --solver ab3 --steps 40 --threads 1)
file(STRINGS ${WORK}/ll.csv ll_lines)
list(LENGTH ll_lines ll_count)
if(NOT ll_count EQUAL 401)
  message(FATAL_ERROR "ll.csv has ${ll_count} lines, expected 401 (header + one per point)")
endif()
if(w2_model GREATER 0.5)
  message(FATAL_ERROR "W2 of the samples to the data is ${w2_model}, expected < 0.5 after 300 steps")
endif()
message(STATUS "W2(samples, data) = ${w2_model}")

# Interrupt and resume: --stop-after stops the run as Ctrl-C does (saves, prints the resume
# command, exit 130); resuming it to the end gives exactly the uninterrupted run's model.
run(interrupted 130 "interrupted at step 120 of 300.*resume with: flowmatch train --data .*moons_small.csv --out half.safetensors --resume half.safetensors"
    train --data ${DATA}/moons_small.csv --out half.safetensors --steps 300 --warmup 30 --ema 0.99 --stop-after 120 ${SMALL})
run(info_half ok "step 120 of 300" info half.safetensors)
run(resume ok "resumed from 'half.safetensors' at step 120 of 300" train --data ${DATA}/moons_small.csv
    --out half.safetensors --resume half.safetensors --threads 1 --quiet)
run(info_resumed ok "step 300 of 300" info half.safetensors)
run(sample_resumed ok "wrote" sample half.safetensors --out r.csv --n 500 --seed 1 --threads 1)
file(SHA256 ${WORK}/s.csv h_full)
file(SHA256 ${WORK}/r.csv h_resumed)
if(NOT h_full STREQUAL h_resumed)
  message(FATAL_ERROR "the resumed run's samples differ from the uninterrupted run's")
endif()
message(STATUS "ok   resumed run == uninterrupted run (same samples)")

# A conditional model: column 2 (the moon's label) is the condition; sample with guidance.
run(train_cond ok "1 condition columns.*wrote cond.safetensors" train --data ${DATA}/moons_labelled.csv --out cond.safetensors
    --condition-columns 2 --steps 200 --warmup 10 ${SMALL})
run(sample_cond ok "wrote 200 samples" sample cond.safetensors --out c.csv --n 200 --condition 1 --guidance 1 --steps 20 --threads 1)

# ---------------------------------------------------------------- bad inputs
run(missing_data fail "missing.csv.*no such file" train --data missing.csv --out m.safetensors)
run(missing_model fail "nope.safetensors.*no such model file" sample nope.safetensors --out x.csv)
run(bad_activation fail "unknown --activation 'swishy'" train --data ${DATA}/moons_small.csv --out m.safetensors --activation swishy)
run(bad_solver fail "unknown --solver 'leapfrog'" sample model.safetensors --out x.csv --solver leapfrog)
run(negative_steps fail "--steps.*-5" train --data ${DATA}/moons_small.csv --out m.safetensors --steps -5)
run(zero_sample_steps fail "--steps.*0" sample model.safetensors --out x.csv --steps 0)
run(x0_dimension fail "--x0 .*x0_3d.npy' has dimension 3, the model has dimension 2" sample model.safetensors --out x.csv
    --x0 ${DATA}/x0_3d.npy)
run(loglik_columns fail "three_columns.csv' has dimension 3, the model has dimension 2" loglik model.safetensors
    --data ${DATA}/three_columns.csv)
run(eval_columns fail "has dimension 2, .*three_columns.csv' has 3" eval s.csv ${DATA}/three_columns.csv)
run(resume_columns fail "three_columns.csv' has 3 data columns, the model in 'model.safetensors' has dimension 2" train
    --data ${DATA}/three_columns.csv --out m.safetensors --resume model.safetensors)
run(not_a_model fail "moons_small.csv" info ${DATA}/moons_small.csv)
run(bad_condition_column fail "--condition-columns 7" train --data ${DATA}/moons_small.csv --out m.safetensors --condition-columns 7)
run(unknown_flag fail "--bogus" train --data ${DATA}/moons_small.csv --out m.safetensors --bogus)
run(no_subcommand fail "subcommand")
file(WRITE ${WORK}/ragged.csv "1,2\n3\n")
run(ragged_csv fail "ragged.csv:2" train --data ragged.csv --out m.safetensors)
file(WRITE ${WORK}/bad.npy "NUMPY junk")
run(bad_npy fail "bad.npy" train --data bad.npy --out m.safetensors)
run(condition_on_unconditional fail "takes no condition" sample model.safetensors --out x.csv --condition 1)
run(warmup_too_long fail "--warmup 400 must be below --steps 300" train --data ${DATA}/moons_small.csv --out m.safetensors
    --steps 300 --warmup 400)
message(STATUS "cli.end_to_end: all cases passed")
