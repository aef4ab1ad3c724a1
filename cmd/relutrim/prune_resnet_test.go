package main

import (
	"path/filepath"
	"testing"
)

// TestPruneRefusesResidual: until the residual fit exists (issue 21), prune refuses a
// ResNet exported by torch (prune/model/testdata/resnet, scripts/make_resnet_fixture.py),
// weight and channel pruning alike: exit 2 naming the file and the first residual Add, and
// nothing written.
func TestPruneRefusesResidual(t *testing.T) {
	dir := filepath.Join("..", "..", "prune", "model", "testdata", "resnet")
	calib := filepath.Join(dir, "resnet_x.npy")
	for _, file := range []string{"resnet.onnx", "resnet_fused.onnx"} {
		for _, extra := range [][]string{nil, {"--structure", "neurons"}} {
			out := t.TempDir()
			args := []string{"prune", "--model", filepath.Join(dir, file), "--calib", calib, "--sparsity", "0.5",
				"--out", filepath.Join(out, "p.onnx"), "--report", filepath.Join(out, "r.json")}
			args = append(args, extra...)
			expectUsageError(t, run(t, ".", args...),
				[]string{file, "node /layer1/Add (Add): residual Add: pruning residual networks is not supported yet"}, out)
		}
	}
}
