#pragma once
/// \file
/// flowmatch over MPI (the optional component flowmatch::mpi): data-parallel training
/// (DataParallelTrainer), collective checkpoints, sharded sampling and likelihoods, and the job's
/// failure handling. Needs MPI's <mpi.h> (Debian: libopenmpi-dev); link flowmatch::mpi.

#include "flowmatch/distributed/checkpoint.hpp"
#include "flowmatch/distributed/communicator.hpp"
#include "flowmatch/distributed/data_parallel_trainer.hpp"
#include "flowmatch/distributed/sharded.hpp"
