// Package models embeds the dense models relutrim ships with.
package models

import (
	_ "embed"

	"relutrim/dataio"
	"relutrim/prune"
)

// lenet is LeNet-300-100 trained on MNIST by scripts/train_mnist.py (inputs pixel/255);
// models/lenet300100.json records its accuracy and training settings.
//
//go:embed lenet300100.safetensors
var lenet []byte

// LeNet300100 returns the bundled dense MNIST model.
func LeNet300100() (prune.Model, error) {
	ts, _, err := dataio.DecodeSafetensors(lenet, "models/lenet300100.safetensors")
	if err != nil {
		return prune.Model{}, err
	}
	return prune.ModelFromTensors(ts, "models/lenet300100.safetensors")
}
