//go:build !mpi

package main

// mpiBuilt: this relutrim is built without MPI (no build tag mpi).
const mpiBuilt = false

// startGroup: without MPI every run is one process.
func startGroup() (*procGroup, error) { return nil, nil }
