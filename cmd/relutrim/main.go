// Command relutrim fits sparse ReLU layers (see `relutrim help`).
//
// Each subcommand lives in its own file and registers itself on root in an init function
// (fit.go: `relutrim fit`). Shared plumbing (exit statuses, usage errors, signals, --quiet,
// the progress bar) is in cli.go.
package main

import "os"

func main() {
	os.Exit(execute(os.Args[1:], os.Stdout, os.Stderr))
}
