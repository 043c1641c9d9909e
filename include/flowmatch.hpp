#pragma once
/// \file
/// flowmatch: Flow Matching generative models on the CPU, over Eigen. The umbrella header.
///
/// Everything to train, sample and measure flow models (schedules, paths, distributions,
/// couplings, networks, optimizers, trainers, ODE and SDE solvers, guidance, likelihoods,
/// sample distances, CSV and NPY files). Not included, so that a file pays for them only where it
/// uses them (issue 20: compile time): the file formats that need nlohmann::json, whose parser
/// alone costs more to compile than <Eigen/Dense> (checkpoints' error types come with the
/// umbrella):
///   <flowmatch/io/checkpoint.hpp>          save_checkpoint, load_checkpoint, read_checkpoint_info
///   <flowmatch/train/periodic_checkpoint.hpp>  PeriodicCheckpoint
///   <flowmatch/io/torch_import.hpp>        import_torch_mlp, inspect_torch_mlp, visit_torch_mlp
/// and, as before, <flowmatch/distributed.hpp> (MPI) and <flowmatch/io/idx.hpp> (zlib).
/// Two domains have their own headers, each including this one:
///   <flowmatch/sbi.hpp>         simulation-based inference: sbi::PosteriorEstimator, the sbibm
///                               tasks and their data
///   <flowmatch/evaluation.hpp>  classifier-based evaluation: c2st, classification accuracy,
///                               frechet_distance, MLPClassifier, ClassifierTrainer
/// tests/headers/umbrella_cost.cmake keeps this header under 3x the cost of <Eigen/Dense> (it
/// costs under 2x: benchmarks/header_cost.py).

#include "flowmatch/core/condition.hpp"
#include "flowmatch/core/denormals.hpp"
#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/threads.hpp"
#include "flowmatch/core/time.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/coupling/concepts.hpp"
#include "flowmatch/coupling/independent.hpp"
#include "flowmatch/coupling/minibatch_ot.hpp"
#include "flowmatch/distribution/checkerboard.hpp"
#include "flowmatch/distribution/circles.hpp"
#include "flowmatch/distribution/concepts.hpp"
#include "flowmatch/distribution/eight_gaussians.hpp"
#include "flowmatch/distribution/empirical.hpp"
#include "flowmatch/distribution/gaussian.hpp"
#include "flowmatch/distribution/gaussian_mixture.hpp"
#include "flowmatch/distribution/moons.hpp"
#include "flowmatch/distribution/standard_normal.hpp"
#include "flowmatch/distribution/swiss_roll.hpp"
#include "flowmatch/io/checkpoint_errors.hpp"
#include "flowmatch/io/crc32.hpp"
#include "flowmatch/io/csv.hpp"
#include "flowmatch/io/float16.hpp"
#include "flowmatch/io/npy.hpp"
#include "flowmatch/metrics/density.hpp"
#include "flowmatch/metrics/distances.hpp"
#include "flowmatch/metrics/straightness.hpp"
#include "flowmatch/nn/activation.hpp"
#include "flowmatch/nn/activation_extra.hpp"
#include "flowmatch/nn/builtin_activations.hpp"
#include "flowmatch/nn/class_conditional_field.hpp"
#include "flowmatch/nn/concepts.hpp"
#include "flowmatch/nn/conditional_field.hpp"
#include "flowmatch/nn/fourier_time_field.hpp"
#include "flowmatch/nn/mean_flow_field.hpp"
#include "flowmatch/nn/mlp.hpp"
#include "flowmatch/nn/mlp_jacobian.hpp"
#include "flowmatch/nn/mlp_vector_field.hpp"
#include "flowmatch/ode/classifier_free_guidance.hpp"
#include "flowmatch/ode/concepts.hpp"
#include "flowmatch/ode/dopri5.hpp"
#include "flowmatch/ode/euler_simulator.hpp"
#include "flowmatch/ode/explicit_steppers.hpp"
#include "flowmatch/ode/learned_vector_field_ode.hpp"
#include "flowmatch/ode/log_likelihood.hpp"
#include "flowmatch/ode/multistep.hpp"
#include "flowmatch/ode/simulator.hpp"
#include "flowmatch/ode/stepper_registry.hpp"
#include "flowmatch/ode/time_grids.hpp"
#include "flowmatch/optim/adam.hpp"
#include "flowmatch/optim/adamw.hpp"
#include "flowmatch/optim/concepts.hpp"
#include "flowmatch/optim/ema.hpp"
#include "flowmatch/optim/lr_schedule.hpp"
#include "flowmatch/optim/sgd.hpp"
#include "flowmatch/ot/assignment.hpp"
#include "flowmatch/ot/sinkhorn.hpp"
#include "flowmatch/path/concepts.hpp"
#include "flowmatch/path/gaussian_conditional_path.hpp"
#include "flowmatch/path/gaussian_marginal_field.hpp"
#include "flowmatch/path/paired_path.hpp"
#include "flowmatch/path/time_density.hpp"
#include "flowmatch/path/training_batch.hpp"
#include "flowmatch/schedule/concepts.hpp"
#include "flowmatch/schedule/cosine.hpp"
#include "flowmatch/schedule/linear_alpha.hpp"
#include "flowmatch/schedule/linear_beta.hpp"
#include "flowmatch/schedule/lipman_ot_beta.hpp"
#include "flowmatch/schedule/polynomial.hpp"
#include "flowmatch/schedule/square_root_beta.hpp"
#include "flowmatch/schedule/variance_preserving.hpp"
#include "flowmatch/sde/concepts.hpp"
#include "flowmatch/sde/euler_maruyama_simulator.hpp"
#include "flowmatch/sde/langevin_flow_sde.hpp"
#include "flowmatch/train/cfm_trainer.hpp"
#include "flowmatch/train/mean_flow_trainer.hpp"
#include "flowmatch/train/reflow.hpp"
