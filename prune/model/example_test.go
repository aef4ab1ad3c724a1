package model_test

import (
	"fmt"

	"relutrim/dataio"
	"relutrim/prune/model"
)

// ExampleLoad reads the small test MLP (a PyTorch nn.Sequential state_dict in safetensors)
// and runs its forward pass on the test inputs.
func ExampleLoad() {
	m, err := model.Load("../testdata/small.safetensors")
	if err != nil {
		panic(err)
	}
	for l, L := range m.Layers {
		fmt.Printf("layer %s: %d -> %d, ReLU after it: %v\n", L.Key, L.In, L.Out, m.Relu(l))
	}
	fmt.Println("weights:", m.Weights())

	x, err := dataio.ReadNPYFile("../testdata/test_x.npy")
	if err != nil {
		panic(err)
	}
	y, err := dataio.ReadNPYFile("../testdata/test_y.npy")
	if err != nil {
		panic(err)
	}
	labels := make([]int, y.Rows)
	for i := range labels {
		labels[i] = int(y.At(i, 0))
	}
	acts := m.Forward(x.Float64(), x.Rows) // every layer's input, then the logits
	fmt.Println("logits per sample:", len(acts[len(acts)-1])/x.Rows)
	fmt.Printf("test accuracy: %.1f%%\n", 100*m.Accuracy(x.Float64(), x.Rows, labels))
	// Output:
	// layer 0: 20 -> 16, ReLU after it: true
	// layer 2: 16 -> 8, ReLU after it: true
	// layer 4: 8 -> 3, ReLU after it: false
	// weights: 472
	// logits per sample: 3
	// test accuracy: 93.6%
}
