package main

import "relutrim/prune"

// checkSelectFlags validates --select and --select-rows (prune and demo): a known method,
// and -1 (all rows) or a positive number of rows.
func checkSelectFlags(cmd, method string, rows int) error {
	if method != prune.SelectGradual && method != prune.SelectL1Path {
		return usageErrorf("%s: --select %q: want %s or %s", cmd, method, prune.SelectGradual, prune.SelectL1Path)
	}
	if rows == 0 || rows < -1 {
		return usageErrorf("%s: --select-rows %d: want a positive number of rows, or -1 for all", cmd, rows)
	}
	return nil
}
