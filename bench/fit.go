//go:build !benchstub

package main

import "relutrim/solver"

// fit is the solver under test (a variable so that a local stub can stand in while the
// solver is being written: build with -tags benchstub and a stub file defining fit).
var fit = solver.Fit
