//go:build mpi

// Package mpi is relutrim's binding to Debian's OpenMPI (libopenmpi-dev) through cgo,
// built only with the build tag `mpi`: MPI_Init, the one collective the solver needs
// (MPI_Allgatherv, solver.Comm), MPI_Abort and MPI_Finalize, with counters of the calls,
// the bytes they moved and the time spent in them.
//
// All calls must come from one goroutine at a time (MPI_THREAD_SERIALIZED); the package's
// init locks the main goroutine to the main OS thread.
package mpi

/*
#cgo pkg-config: ompi-c
#include <mpi.h>

static int rl_init(int *provided) {
	return MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, provided);
}
static int rl_rank(int *r) { return MPI_Comm_rank(MPI_COMM_WORLD, r); }
static int rl_size(int *s) { return MPI_Comm_size(MPI_COMM_WORLD, s); }
static int rl_allgatherv(void *send, int n, void *recv, int *counts, int *displs) {
	return MPI_Allgatherv(send, n, MPI_BYTE, recv, counts, displs, MPI_BYTE, MPI_COMM_WORLD);
}
static int rl_abort(int code) { return MPI_Abort(MPI_COMM_WORLD, code); }
static int rl_finalize(void) { return MPI_Finalize(); }
static int rl_serialized(int provided) { return provided >= MPI_THREAD_SERIALIZED; }
*/
import "C"

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

func init() { runtime.LockOSThread() }

// Comm is MPI_COMM_WORLD.
type Comm struct {
	rank, size int
	mu         sync.Mutex
	stats      Stats
	counts     []C.int
	displs     []C.int
}

// Stats counts a Comm's collectives: calls, the bytes this process sent (its own block,
// counted once per call) and received (the other processes' blocks), and the wall time
// spent inside MPI (waiting for the slowest process included).
type Stats struct {
	Calls         int
	BytesSent     int64
	BytesReceived int64
	Seconds       float64
}

// Init initialises MPI (MPI_Init_thread, serialized calls) and returns MPI_COMM_WORLD.
func Init() (*Comm, error) {
	var provided C.int
	if rc := C.rl_init(&provided); rc != 0 {
		return nil, fmt.Errorf("mpi: MPI_Init_thread failed (error %d)", int(rc))
	}
	if C.rl_serialized(provided) == 0 {
		return nil, fmt.Errorf("mpi: this MPI library does not provide MPI_THREAD_SERIALIZED")
	}
	var r, s C.int
	C.rl_rank(&r)
	C.rl_size(&s)
	return &Comm{rank: int(r), size: int(s)}, nil
}

// Rank is this process's rank in MPI_COMM_WORLD.
func (c *Comm) Rank() int { return c.rank }

// Size is the number of processes.
func (c *Comm) Size() int { return c.size }

// Stats returns the counters so far.
func (c *Comm) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// AllGather is solver.Comm's, by MPI_Allgatherv of bytes. MPI errors abort the job
// (MPI_ERRORS_ARE_FATAL, the default).
func (c *Comm) AllGather(send []byte, counts []int, recv []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(counts) != c.size || len(send) != counts[c.rank] {
		panic(fmt.Sprintf("mpi: AllGather of %d bytes with counts %v on rank %d", len(send), counts, c.rank))
	}
	if cap(c.counts) < c.size {
		c.counts, c.displs = make([]C.int, c.size), make([]C.int, c.size)
	}
	cs, ds := c.counts[:c.size], c.displs[:c.size]
	off := 0
	for r, n := range counts {
		if n < 0 || n > math.MaxInt32 || off > math.MaxInt32 {
			panic(fmt.Sprintf("mpi: AllGather block of %d bytes at offset %d exceeds MPI's int counts", n, off))
		}
		cs[r], ds[r] = C.int(n), C.int(off)
		off += n
	}
	if len(recv) != off {
		panic(fmt.Sprintf("mpi: AllGather recv %d bytes, counts sum to %d", len(recv), off))
	}
	var one [1]byte // MPI wants valid pointers even for empty blocks
	sp, rp := unsafe.Pointer(&one[0]), unsafe.Pointer(&one[0])
	if len(send) > 0 {
		sp = unsafe.Pointer(&send[0])
	}
	if len(recv) > 0 {
		rp = unsafe.Pointer(&recv[0])
	}
	t0 := time.Now()
	rc := C.rl_allgatherv(sp, C.int(len(send)), rp, &cs[0], &ds[0])
	c.stats.Seconds += time.Since(t0).Seconds()
	if rc != 0 {
		panic(fmt.Sprintf("mpi: MPI_Allgatherv failed (error %d)", int(rc)))
	}
	c.stats.Calls++
	c.stats.BytesSent += int64(len(send))
	c.stats.BytesReceived += int64(off - len(send))
}

// Abort ends every process of the job with the exit status code (MPI_Abort).
func (c *Comm) Abort(code int) { C.rl_abort(C.int(code)) }

// Finalize ends MPI (MPI_Finalize); no MPI call may follow.
func (c *Comm) Finalize() { C.rl_finalize() }
