//go:build mpi

package main

import (
	"os"

	"relutrim/internal/mpi"
)

// mpiBuilt: this relutrim links OpenMPI (build tag mpi).
const mpiBuilt = true

// startGroup initialises MPI when the process was started by mpirun (OMPI_COMM_WORLD_SIZE
// is set), else returns nil: the binary then runs as one process, like the default build.
func startGroup() (*procGroup, error) {
	if os.Getenv("OMPI_COMM_WORLD_SIZE") == "" {
		return nil, nil
	}
	c, err := mpi.Init()
	if err != nil {
		return nil, err
	}
	return &procGroup{comm: c, rank: c.Rank(), size: c.Size(),
		stats: func() mpiStats {
			s := c.Stats()
			return mpiStats{Calls: s.Calls, BytesSent: s.BytesSent, BytesReceived: s.BytesReceived, Seconds: s.Seconds}
		},
		abort: c.Abort, finalize: c.Finalize}, nil
}
