#!/usr/bin/env python3
"""Builds examples/posterior/sbibm/ from a copy of sbibm's task files (sbi-benchmark/sbibm, commit
f0bc440, sbibm/tasks/<task>/files/).

For each of the five tasks:
  <task>/observations.csv     the 10 observations x_o, one per line (line k = num_observation_k),
                              the lines of sbibm's observation.csv copied verbatim;
  <task>/true_parameters.csv  the 10 parameters that produced them, likewise.
For bernoulli_glm also:
  <task>/observations_raw.csv the spike trains (100 steps, 0 or 1) whose statistics are the
                              observations (sbibm's observation_raw.csv), likewise.
For slcp and bernoulli_glm (no closed-form reference posterior):
  <task>/reference_<k>.npy    sbibm's 10,000 reference posterior samples of observation k
                              (reference_posterior_samples.csv.bz2, decompressed), float32,
                              shape (10000, dim(theta)).

Usage: python3 convert.py SBIBM_FILES_DIR [OUT_DIR]   (OUT_DIR defaults to this script's folder)
"""
import bz2
import sys
from pathlib import Path

import numpy as np

TASKS = {"gaussian_linear": 10, "two_moons": 2, "gaussian_mixture": 2, "slcp": 5, "bernoulli_glm": 10}
STORED_REFERENCE = ("slcp", "bernoulli_glm")
NUM_OBSERVATIONS = 10
NUM_REFERENCE_SAMPLES = 10000


def copy_rows(src_dir: Path, task: str, file_name: str, out_file: Path) -> None:
    """Concatenates the single data row of each observation's file under one header."""
    header = None
    rows = []
    for k in range(1, NUM_OBSERVATIONS + 1):
        lines = (src_dir / task / f"num_observation_{k}" / file_name).read_text().splitlines()
        lines = [line for line in lines if line.strip()]
        assert len(lines) == 2, f"{task} {k} {file_name}: expected a header and one row"
        if header is None:
            header = lines[0]
        assert lines[0] == header
        rows.append(lines[1])
    out_file.write_text("\n".join([header] + rows) + "\n")


def main() -> None:
    src_dir = Path(sys.argv[1])
    out_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parent
    for task, dim in TASKS.items():
        (out_dir / task).mkdir(parents=True, exist_ok=True)
        copy_rows(src_dir, task, "observation.csv", out_dir / task / "observations.csv")
        copy_rows(src_dir, task, "true_parameters.csv", out_dir / task / "true_parameters.csv")
        if task == "bernoulli_glm":
            copy_rows(src_dir, task, "observation_raw.csv", out_dir / task / "observations_raw.csv")
        if task not in STORED_REFERENCE:
            continue
        for k in range(1, NUM_OBSERVATIONS + 1):
            src = src_dir / task / f"num_observation_{k}" / "reference_posterior_samples.csv.bz2"
            with bz2.open(src, "rt") as f:
                samples = np.loadtxt(f, delimiter=",", skiprows=1, dtype=np.float64)
            assert samples.shape == (NUM_REFERENCE_SAMPLES, dim), (src, samples.shape)
            as_float = samples.astype(np.float32)
            # The csv holds decimals of at most 8 significant digits (sbibm wrote float32 tensors);
            # each becomes the nearest float32, within half a float32 ulp (2^-24 relative).
            error = np.abs(as_float.astype(np.float64) - samples)
            assert np.all(error <= np.abs(samples) * 2.0**-24), src
            np.save(out_dir / task / f"reference_{k}.npy", as_float)


if __name__ == "__main__":
    main()
