#pragma once
/// \file
/// The "8 gaussians" toy data set: eight equal modes on a circle.

#include "flowmatch/distribution/gaussian_mixture.hpp"

namespace flowmatch {

/// Eight isotropic Gaussians of standard deviation `std`, equally weighted, centred at
/// radius * (cos(k pi / 4), sin(k pi / 4)), k = 0..7 (the FFJORD / torchcfm data set, which uses
/// radius 2 before its own scaling). A GaussianMixture, so it has log_density and mode_counts; the
/// label of sample_labelled is the mode k. Throws InvalidArgument for a non-finite radius or a
/// std that is not finite and > 0.
inline GaussianMixture eight_gaussians(double radius = 2.0, double std = 0.2) {
  return GaussianMixture::symmetric_2D(8, std, radius);
}

}  // namespace flowmatch
