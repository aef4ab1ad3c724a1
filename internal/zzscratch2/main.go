package main

import (
	"context"
	"fmt"

	"relutrim/dataio"
	"relutrim/prune"
	"relutrim/prune/model"
)

func main() {
	m, _ := model.Load("prune/testdata/small.safetensors")
	read := func(name string) dataio.Matrix {
		x, err := dataio.ReadNPYFile("prune/testdata/" + name)
		if err != nil {
			panic(err)
		}
		return x
	}
	calib, testX, testY := read("calib_x.npy"), read("test_x.npy"), read("test_y.npy")
	labels := make([]int, testY.Rows)
	for i := range labels {
		labels[i] = int(testY.At(i, 0))
	}
	fmt.Println("test rows", testX.Rows, "calib", calib.Rows)
	for _, sel := range []string{"gradual", "l1-path"} {
		p, _ := prune.NewPruner(m, calib.Float64(), calib.Rows, prune.Options{Select: sel})
		for _, s := range []float64{0.5, 0.7, 0.8, 0.9} {
			keep, _ := prune.Budget(m, s)
			pm, reps, _ := p.Prune(context.Background(), keep)
			acc := 100 * pm.Accuracy(testX.Float64(), testX.Rows, labels)
			fmt.Printf("%s %.0f%%: acc %.1f%% errs", sel, 100*s, acc)
			for _, r := range reps {
				fmt.Printf(" %.4f", r.PostErr)
			}
			fmt.Println()
		}
	}
}
