# ctest: `gmm2d` resumes exactly. For every optimizer (adam, adamw, sgd), with and without warm-up
# + cosine decay and with and without an EMA of the weights, a 40-step run that checkpoints every
# 20 steps and a run resumed from its step-20 checkpoint must write byte-identical final
# checkpoints: the model, the optimizer's moments, the schedule's position, the EMA, the step count
# and the generator all round-trip through the file.
#   cmake -DGMM2D=<path to gmm2d> -DWORK=<scratch folder> -P resume_test.cmake
if(NOT GMM2D OR NOT WORK)
  message(FATAL_ERROR "usage: cmake -DGMM2D=<gmm2d> -DWORK=<folder> -P resume_test.cmake")
endif()
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
set(common --steps 40 --batch 32 --hidden 16 16 --samples 8 --time-points 2 --trajectories 0 --threads 1 --seed 5)

function(run_gmm2d out_var)
  execute_process(COMMAND ${GMM2D} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gmm2d ${ARGN} failed (${rc}):\n${out}\n${err}")
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()

set(combinations 0)
foreach(optimizer adam adamw sgd)
  foreach(warmup 0 5)
    foreach(ema 0 0.9)
      set(name ${optimizer}-w${warmup}-ema${ema})
      set(dir ${WORK}/${name})
      set(flags --optimizer ${optimizer} --warmup ${warmup} --ema ${ema})
      run_gmm2d(straight ${common} ${flags} --out ${dir}/straight --checkpoint-every 20
                --checkpoint-dir ${dir}/ckpt --save ${dir}/straight.safetensors)
      file(GLOB halfway ${dir}/ckpt/gmm2d-*20.safetensors)
      list(LENGTH halfway found)
      if(NOT found EQUAL 1)
        message(FATAL_ERROR "${name}: no step-20 checkpoint in ${dir}/ckpt")
      endif()
      # The resumed run is given other flags on purpose: the file's settings must win.
      run_gmm2d(resumed --steps 40 --batch 32 --samples 8 --time-points 2 --trajectories 0 --threads 1
                --out ${dir}/resumed --resume ${halfway} --save ${dir}/resumed.safetensors)
      if(NOT resumed MATCHES "resumed from")
        message(FATAL_ERROR "${name}: the resumed run does not say it resumed:\n${resumed}")
      endif()
      file(SHA256 ${dir}/straight.safetensors a)
      file(SHA256 ${dir}/resumed.safetensors b)
      if(NOT a STREQUAL b)
        message(FATAL_ERROR "${name}: 40 straight steps and 20 + 20 resumed give different checkpoints")
      endif()
      file(SHA256 ${halfway} h)
      if(h STREQUAL a)
        message(FATAL_ERROR "${name}: the step-20 checkpoint equals the step-40 one (nothing trained?)")
      endif()
      math(EXPR combinations "${combinations} + 1")
    endforeach()
  endforeach()
endforeach()
message(STATUS "gmm2d resume: ${combinations} combinations byte-identical")

# A checkpoint already at the requested step: nothing is trained, the program says so, and the
# RESULT line reports steps_trained=0 and the checkpoint's loss on a fresh batch (not nan).
file(GLOB at20 ${WORK}/adam-w0-ema0/ckpt/gmm2d-*20.safetensors)
run_gmm2d(none --steps 20 --batch 32 --samples 8 --time-points 2 --trajectories 0 --threads 1
          --out ${WORK}/none --resume ${at20})
if(NOT none MATCHES "is already at step 20 \\(--steps 20\\): nothing to train")
  message(FATAL_ERROR "resuming at the final step does not say that nothing is trained:\n${none}")
endif()
if(NOT none MATCHES "RESULT [^\n]*steps_trained=0 " OR none MATCHES "final_loss=nan" OR NOT none MATCHES "final_loss=[0-9]")
  message(FATAL_ERROR "resuming at the final step: the RESULT line is not meaningful:\n${none}")
endif()
message(STATUS "gmm2d resume at the final step: nothing trained, said so, the checkpoint's loss reported")
