#!/usr/bin/env bash
# The project's test command (README.md, "Two commands"). Needs Go. The OpenBLAS backend
# also needs Debian's libopenblas-dev, the MPI build (tag mpi) libopenmpi-dev and
# openmpi-bin: when they are missing, this script installs them if it runs as root with
# apt-get, and otherwise skips those steps with a notice. With CI=true both are required:
# a missing library fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-SkylakeX}" # Debian's OpenBLAS 0.3.21 misdetects this CPU

# have_openblas: cgo works and the openblas-tagged kernels link.
have_openblas() {
  [ "$(go env CGO_ENABLED)" = 1 ] && go build -tags openblas ./internal/kern >/dev/null 2>&1 &&
    go vet -tags openblas ./internal/kern >/dev/null 2>&1
}
openblas=1
if ! have_openblas; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing libopenblas-dev (needed by the OpenBLAS backend)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev >/dev/null || true
  fi
  if ! have_openblas; then
    openblas=0
    if [ "${CI:-}" = true ]; then
      echo "FAIL: CI=true requires the OpenBLAS backend, but 'go build -tags openblas ./internal/kern' fails (install libopenblas-dev)" >&2
      exit 1
    fi
    echo "NOTICE: OpenBLAS backend SKIPPED: libopenblas-dev is missing (apt-get install libopenblas-dev, or run as root to let this script install it)" >&2
  fi
fi

# have_mpi: cgo works, OpenMPI's headers and mpirun are there and the mpi-tagged code links.
have_mpi() {
  [ "$(go env CGO_ENABLED)" = 1 ] && command -v mpirun >/dev/null 2>&1 &&
    go build -tags mpi ./internal/mpi >/dev/null 2>&1
}
mpi=1
if ! have_mpi; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing libopenmpi-dev openmpi-bin (needed by the MPI build)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenmpi-dev openmpi-bin >/dev/null || true
  fi
  if ! have_mpi; then
    mpi=0
    if [ "${CI:-}" = true ]; then
      echo "FAIL: CI=true requires the MPI build, but 'go build -tags mpi ./internal/mpi' or mpirun fails (install libopenmpi-dev openmpi-bin)" >&2
      exit 1
    fi
    echo "NOTICE: MPI build SKIPPED: libopenmpi-dev/openmpi-bin missing (apt-get install libopenmpi-dev openmpi-bin, or run as root to let this script install them)" >&2
  fi
fi

echo "== go vet"
go vet ./...
if [ "$openblas" = 1 ]; then go vet -tags openblas ./internal/kern ./solver; fi
if [ "$(go env CGO_ENABLED)" = 1 ]; then
  echo "== default (pure Go) build, race detector on the solver packages"
  go test -race ./solver ./internal/kern ./dataio
else
  echo "NOTICE: race detector SKIPPED: it needs cgo (a C compiler)" >&2
fi
echo "== default build, all packages"
go test ./...
echo "== the model readers fuzzed briefly (go test runs only their seeds)"
go test -run '^$' -fuzz '^FuzzONNX$' -fuzztime 15s ./prune/model
go test -run '^$' -fuzz '^FuzzMLPShapes$' -fuzztime 15s ./prune/model
echo "== pure Go without cgo"
CGO_ENABLED=0 go test ./internal/kern ./solver
echo "== pure Go with the AVX2 micro-kernels off (the gonum Dgemv path of CPUs without AVX2/FMA)"
RELUTRIM_NOAVX=1 go test ./internal/kern ./solver
if [ "$mpi" = 1 ]; then
  echo "== MPI build: mpirun --oversubscribe -np 1,2,3 against one process, and the failure cases"
  go vet -tags mpi ./internal/mpi ./cmd/relutrim
  go test -tags mpi -count=1 -run MPI ./cmd/relutrim
fi
if [ "$openblas" = 1 ]; then
  echo "== OpenBLAS backend"
  go test -tags openblas ./internal/kern ./solver
  echo "all tests passed$([ "$mpi" = 1 ] || echo " (MPI build SKIPPED)")"
else
  echo "all tests passed (OpenBLAS backend SKIPPED: libopenblas-dev missing$([ "$mpi" = 1 ] || echo "; MPI build SKIPPED"))"
fi
