#!/usr/bin/env bash
# The project's test command (README.md, "Run the tests"). Needs Go and, for the OpenBLAS
# backend, Debian's libopenblas-dev (.ci/run installs it on a fresh machine).
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-SkylakeX}" # Debian's OpenBLAS 0.3.21 misdetects this CPU
echo "== go vet"
go vet ./...
go vet -tags openblas ./internal/kern ./solver
echo "== default (pure Go) build, race detector on the solver packages"
go test -race ./solver ./internal/kern ./dataio
echo "== default build, all packages"
go test ./...
echo "== pure Go without cgo"
CGO_ENABLED=0 go test ./internal/kern ./solver
echo "== OpenBLAS backend"
go test -tags openblas ./internal/kern ./solver
echo "all tests passed"
