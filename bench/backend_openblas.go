//go:build openblas

package main

// buildBackend names the relutrim kernel backend compiled into this binary.
const buildBackend = "openblas"
