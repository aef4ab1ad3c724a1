package demo

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestCNNDemoCancelEarly (issue 22): relutrim demo --cnn took 3.6-11 s to exit after SIGINT
// during its first phase, the dense network's evaluation on the 10,000 test images, which
// did not check the context. Canceled there (0.5 s in, while the calibration and test
// images are loaded and evaluated), Run returns context.Canceled within a generous 2 s.
func TestCNNDemoCancelEarly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var canceled time.Time
	go func() {
		time.Sleep(500 * time.Millisecond)
		canceled = time.Now()
		cancel()
	}()
	_, err := Run(ctx, Config{CNN: true, Levels: []float64{0.9}, Threads: 1}, nil)
	late := time.Since(canceled)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	if late > 2*time.Second {
		t.Errorf("Run returned %.1f s after the cancellation, want promptly (< 2 s)", late.Seconds())
	}
	// Canceled before it starts: it returns at once, without loading anything.
	start := time.Now()
	if _, err := Run(ctx, Config{CNN: true}, nil); !errors.Is(err, context.Canceled) || time.Since(start) > time.Second {
		t.Errorf("already canceled: %v after %v", err, time.Since(start))
	}
}
