#pragma once
/// \file
/// Simulation-based inference with flow matching (an opt-in domain header, not part of
/// <flowmatch.hpp>): the posterior estimator (sbi::PosteriorEstimator, flow matching posterior
/// estimation conditioned on the observation vector), the Simulator concept and the sbibm tasks
/// (gaussian_linear, two_moons, gaussian_mixture, slcp, bernoulli_glm) with their reference
/// posteriors, and the readers of sbibm's stored observations and reference samples.
/// Kept out of the umbrella so that a file that does not use them does not compile them:
/// <flowmatch.hpp> stays under 2x the compile time of <Eigen/Dense> (issue 20;
/// benchmarks/header_cost.py measures both).

#include "flowmatch.hpp"
#include "flowmatch/metrics/c2st.hpp"
#include "flowmatch/sbi/posterior.hpp"
#include "flowmatch/sbi/sbibm_data.hpp"
#include "flowmatch/sbi/task.hpp"
#include "flowmatch/sbi/tasks.hpp"
