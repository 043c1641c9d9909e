// The main() of the MPI test binary: MPI up, Catch2's session on every rank, and a job that fails
// if any rank's tests failed. Non-root ranks report in Catch2's compact form, to keep the log short.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <flowmatch/distributed/communicator.hpp>

int main(int argc, char** argv) {
  flowmatch::distributed::Environment mpi(argc, argv);
  const flowmatch::distributed::Communicator comm;
  Catch::Session session;
  if (const int rc = session.applyCommandLine(argc, argv); rc != 0) return rc;
  if (!comm.is_root()) session.configData().reporterName = "compact";
  const int failed = session.run();
  // Every rank's verdict: the job fails if any rank failed.
  return comm.max(failed);
}
