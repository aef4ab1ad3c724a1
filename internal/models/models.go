// Package models embeds the dense models relutrim ships with (for the demo).
package models

import (
	_ "embed"

	"relutrim/dataio"
	"relutrim/prune/model"
)

// lenet is LeNet-300-100 trained on MNIST by scripts/train_mnist.py (inputs pixel/255);
// internal/models/lenet300100.json records its accuracy and training settings.
//
//go:embed lenet300100.safetensors
var lenet []byte

// lenetName names the embedded file in error messages.
const lenetName = "internal/models/lenet300100.safetensors"

// LeNet300100 returns the bundled dense MNIST model.
func LeNet300100() (model.Model, error) {
	ts, _, err := dataio.DecodeSafetensors(lenet, lenetName)
	if err != nil {
		return model.Model{}, err
	}
	return model.FromTensors(ts, lenetName)
}

// cnn is the all-conv MNIST network of scripts/train_cnn.py, exported to ONNX (inputs
// pixel/255 as (N, 1, 28, 28)); internal/models/cnn_mnist.json records its accuracy.
//
//go:embed cnn_mnist.onnx
var cnn []byte

// CNNMNIST returns the bundled dense all-conv MNIST model.
func CNNMNIST() (model.Model, error) {
	return model.FromONNX(cnn, "internal/models/cnn_mnist.onnx")
}

// resnet is the MNIST ResNet "16-32-64" of scripts/train_resnet_demo.py (three BasicBlocks,
// two with a strided 1x1 projection shortcut; BatchNorm folded into the convolutions by the
// export), an ONNX residual graph with inputs pixel/255 as (N, 1, 28, 28);
// internal/models/resnet_mnist.json records its accuracy.
//
//go:embed resnet_mnist.onnx
var resnet []byte

// ResNetMNIST returns the bundled dense MNIST ResNet (a residual graph: model.FromONNXGraph).
func ResNetMNIST() (model.Model, error) {
	return model.FromONNXGraph(resnet, "internal/models/resnet_mnist.onnx")
}
