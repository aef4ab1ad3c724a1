// Command relutrim fits sparse ReLU layers (see `relutrim help`).
//
// Each subcommand lives in its own file and registers itself on root in an init function
// (fit.go: `relutrim fit`). Shared plumbing (exit statuses, usage errors, signals, --quiet,
// the progress bar) is in cli.go; running one fit across MPI processes in group.go.
package main

import (
	"fmt"
	"os"
)

func main() {
	g, err := startGroup()
	if err != nil {
		fmt.Fprintf(os.Stderr, "relutrim: %v\n", err)
		os.Exit(exitFailure)
	}
	group = g
	st := execute(os.Args[1:], os.Stdout, os.Stderr)
	if g != nil {
		st = g.finish(st)
	}
	os.Exit(st)
}
