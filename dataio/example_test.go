package dataio_test

import (
	"fmt"
	"os"
	"path/filepath"

	"relutrim/dataio"
)

// ExampleLoad writes a 2 x 3 float32 array as .npy and as CSV with a header, and reads both
// back with Load, the reader the command line uses for every input (.npy, file.npz:name or
// .csv, chosen by the file name).
func ExampleLoad() {
	dir, err := os.MkdirTemp("", "dataio-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	m := dataio.NewMatrix32("x", 2, 3)
	copy(m.F32, []float32{1, 2, 3, 4, 5, 6.5})
	npy, csv := filepath.Join(dir, "x.npy"), filepath.Join(dir, "x.csv")
	if err := dataio.WriteNPY(npy, m); err != nil {
		panic(err)
	}
	if err := dataio.WriteCSV(csv, m, []string{"a", "b", "c"}); err != nil {
		panic(err)
	}
	for _, path := range []string{npy, csv} {
		x, err := dataio.Load(path)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s: %d x %d, float32 %v, header %q, x[1][2] = %g\n",
			filepath.Ext(path), x.Rows, x.Cols, x.IsFloat32(), x.Header, x.At(1, 2))
	}
	// Output:
	// .npy: 2 x 3, float32 true, header [], x[1][2] = 6.5
	// .csv: 2 x 3, float32 false, header ["a" "b" "c"], x[1][2] = 6.5
}
