#pragma once
/// \file
/// Judging generated samples with a classifier (an opt-in domain header, not part of
/// <flowmatch.hpp>): the classifier two-sample test (c2st), classification accuracy and
/// confusion, the Frechet distance between feature statistics (frechet_distance,
/// MomentAccumulator), and the classifier that provides features and labels (MLPClassifier, its
/// trainer ClassifierTrainer, softmax cross-entropy). The sample-only distances (MMD, energy,
/// sliced Wasserstein: metrics/distances.hpp), densities and straightness stay in the umbrella.
/// Kept out of <flowmatch.hpp> so that it stays under 2x the compile time of <Eigen/Dense>
/// (issue 20; benchmarks/header_cost.py).

#include "flowmatch.hpp"
#include "flowmatch/metrics/c2st.hpp"
#include "flowmatch/metrics/classification.hpp"
#include "flowmatch/metrics/frechet.hpp"
#include "flowmatch/nn/mlp_classifier.hpp"
#include "flowmatch/nn/softmax_cross_entropy.hpp"
#include "flowmatch/train/classifier_trainer.hpp"
