// Package dataio reads and writes the numeric arrays relutrim works with:
// NumPy .npy and .npz files, CSV tables and safetensors checkpoints.
//
// Readers return a [Matrix] (a row-major 2-D array of float32 or float64)
// or, for safetensors, a map of [Tensor] values. Every error names the file
// (or spec) it came from. Writers go through [WriteFileAtomic], so a failed
// write never leaves a partial file behind.
//
// dataio is a leaf package: it imports nothing else from relutrim.
package dataio
