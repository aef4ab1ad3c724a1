#!/usr/bin/env bash
# The project's test command (README.md, "Two commands"). Needs Go. The OpenBLAS backend
# also needs Debian's libopenblas-dev, the MPI build (tag mpi) libopenmpi-dev and
# openmpi-bin: when they are missing, this script installs them if it runs as root with
# apt-get, and otherwise skips those steps with a notice. The Python cross-checks need
# /usr/bin/python3 with python3-numpy, python3-onnx and python3-torch (not installed here:
# .ci/run does), and skip with a notice without them. The onnxruntime cross-check needs node
# and the npm package onnxruntime-node (installed into .cache/ort as root when missing; see
# below). With CI=true all are required: a missing one fails the run. Also runs staticcheck
# (installed at a pinned version if missing).
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

# The cross-checks against NumPy (dataio) and against onnx.checker and torch (cmd/relutrim's
# ONNX tests) run Debian's /usr/bin/python3 with python3-numpy, python3-onnx and
# python3-torch (.ci/run installs them). Without them those tests skip, and go test shows a
# skip only with -v, so the notice is printed here; with CI=true they are required (the
# tests fail instead of skipping: RELUTRIM_REQUIRE_PYTHON=1).
python_missing=""
/usr/bin/python3 -c "import numpy" >/dev/null 2>&1 || python_missing="python3-numpy"
/usr/bin/python3 -c "import onnx, torch" >/dev/null 2>&1 || python_missing="$python_missing python3-onnx python3-torch"
if [ -n "$python_missing" ]; then
  if [ "${CI:-}" = true ]; then
    echo "FAIL: CI=true requires /usr/bin/python3 with numpy, onnx and torch for the cross-checks (apt-get install$python_missing)" >&2
    exit 1
  fi
  echo "NOTICE: Python cross-checks SKIPPED (NumPy in dataio, onnx/torch in cmd/relutrim): /usr/bin/python3 lacks$python_missing" >&2
fi
if [ "${CI:-}" = true ]; then export RELUTRIM_REQUIRE_PYTHON=1; fi

# The onnxruntime cross-check (cmd/relutrim's TestPrunedONNXRuntime: pruned ONNX files run in
# onnxruntime through scripts/ort_logits.js) needs node and the npm package onnxruntime-node
# (pinned; it ships libonnxruntime.so.1) under $RELUTRIM_ORT_DIR, by default .cache/ort here
# (git-ignored). When they are missing, this script installs them if it runs as root (node
# and npm with apt-get when those are missing too); otherwise the test skips, and the notice
# is printed here. With CI=true they are required (RELUTRIM_REQUIRE_ORT=1: the test fails).
ort_version=1.30.0
RELUTRIM_ORT_DIR="$(realpath -m "${RELUTRIM_ORT_DIR:-.cache/ort}")" # the test runs in cmd/relutrim
export RELUTRIM_ORT_DIR
have_ort() {
  local v
  command -v node >/dev/null 2>&1 && v="$(node scripts/ort_logits.js --version 2>/dev/null)" &&
    [[ "$v" == "onnxruntime-node $ort_version "* ]]
}
ort=1
if ! have_ort; then
  if [ "$(id -u)" = 0 ]; then
    if { ! command -v node || ! command -v npm; } >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
      echo "== installing nodejs npm (needed by the onnxruntime cross-check)"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null || true
    fi
    if command -v npm >/dev/null 2>&1; then
      echo "== installing onnxruntime-node $ort_version into $RELUTRIM_ORT_DIR (needed by the onnxruntime cross-check)"
      mkdir -p "$RELUTRIM_ORT_DIR"
      # --ignore-scripts: the package's install script downloads GPU provider libraries
      # (not needed here) and fails without network access to them; the CPU library for
      # linux-x64 is in the package itself.
      npm install --prefix "$RELUTRIM_ORT_DIR" --ignore-scripts --no-audit --no-fund --loglevel=error \
        "onnxruntime-node@$ort_version" >/dev/null || true
    fi
  fi
  if ! have_ort; then
    ort=0
    if [ "${CI:-}" = true ]; then
      echo "FAIL: CI=true requires node and onnxruntime-node $ort_version in $RELUTRIM_ORT_DIR for the onnxruntime cross-check (npm install --prefix $RELUTRIM_ORT_DIR --ignore-scripts onnxruntime-node@$ort_version)" >&2
      exit 1
    fi
    echo "NOTICE: onnxruntime cross-check SKIPPED: node or onnxruntime-node $ort_version missing (npm install --prefix $RELUTRIM_ORT_DIR --ignore-scripts onnxruntime-node@$ort_version, or run as root to let this script install it)" >&2
  fi
fi
if [ "${CI:-}" = true ]; then export RELUTRIM_REQUIRE_ORT=1; fi

echo "== go vet"
go vet ./...
if [ "$openblas" = 1 ]; then go vet -tags openblas ./internal/kern ./solver; fi
# staticcheck at a pinned version (installed with go install when missing or another
# version), over every build the project has: the default one, and openblas and mpi when they
# build here (-matrix merges them: code used by one build only is not reported as unused).
staticcheck_version=0.8.2
staticcheck="$(go env GOPATH)/bin/staticcheck"
if ! "$staticcheck" -version 2>/dev/null | grep -q "($staticcheck_version)"; then
  echo "== installing staticcheck v$staticcheck_version"
  GOBIN="$(go env GOPATH)/bin" go install "honnef.co/go/tools/cmd/staticcheck@v$staticcheck_version"
fi
echo "== staticcheck"
{
  echo "default:"
  if [ "$openblas" = 1 ]; then echo "openblas: -tags=openblas"; fi
  if [ "$mpi" = 1 ]; then echo "mpi: -tags=mpi"; fi
} | "$staticcheck" -matrix ./...
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
# internal/kern's TestAVXAgainstGeneric compares the kernels with the AVX2 micro-kernels on
# and off in every run; this step runs the solver's tests on the generic kernels (what CPUs
# without AVX2/FMA run). RELUTRIM_NOAVX is read at package init, which go test's cache does
# not see: -count=1, or the step would print the cached results of the AVX run.
echo "== pure Go with the AVX2 micro-kernels off (the gonum Dgemv path of CPUs without AVX2/FMA)"
RELUTRIM_NOAVX=1 go test -count=1 ./solver
if [ "$mpi" = 1 ]; then
  echo "== MPI build: mpirun --oversubscribe -np 1,2,3 against one process, and the failure cases"
  go vet -tags mpi ./internal/mpi ./cmd/relutrim
  go test -tags mpi -count=1 -run MPI ./cmd/relutrim
fi
if [ "$openblas" = 1 ]; then
  echo "== OpenBLAS backend"
  go test -tags openblas ./internal/kern ./solver
fi
skipped=""
[ "$openblas" = 1 ] || skipped="$skipped; OpenBLAS backend SKIPPED: libopenblas-dev missing"
[ "$mpi" = 1 ] || skipped="$skipped; MPI build SKIPPED"
[ -z "$python_missing" ] || skipped="$skipped; Python cross-checks SKIPPED:$python_missing missing"
[ "$ort" = 1 ] || skipped="$skipped; onnxruntime cross-check SKIPPED: node or onnxruntime-node missing"
echo "all tests passed${skipped:+ (${skipped#; })}"
