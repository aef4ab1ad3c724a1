package main

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	"relutrim/internal/demo"
)

func main() {
	f, _ := os.Create(os.Args[1])
	pprof.StartCPUProfile(f)
	defer pprof.StopCPUProfile()
	t0 := time.Now()
	res, err := demo.Run(context.Background(), demo.Config{CNN: true, Levels: []float64{0.8}, Log: func(s string) { fmt.Fprintf(os.Stderr, "%6.1fs %s\n", time.Since(t0).Seconds(), s) }}, os.Stderr)
	if err != nil {
		panic(err)
	}
	res.WriteTable(os.Stdout, true)
}
