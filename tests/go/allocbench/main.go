// allocbench is the allocation-heavy workload of the overhead benchmark: -workers
// goroutines allocate -n objects in total, of 16 B to 1 KiB, keeping a small rolling
// window live so the GC has real work. It prints "ready", does the work, then prints
// "elapsed_ns=<wall ns of the work>" and exits.
package main

import (
	"flag"
	"fmt"
	"sync"
	"time"

	"oomprof.test/fixtures/internal/fixture"
)

var sizes = [...]int{16, 32, 64, 128, 256, 1024}

//go:noinline
func alloc(n int) []byte {
	b := make([]byte, n)
	b[0] = byte(n)
	return b
}

func worker(count int, wg *sync.WaitGroup) {
	defer wg.Done()
	var window [256][]byte
	for i := 0; i < count; i++ {
		window[i%len(window)] = alloc(sizes[i%len(sizes)])
	}
}

func main() {
	n := flag.Int("n", 2000000, "objects to allocate in total")
	workers := flag.Int("workers", 2, "allocating goroutines")
	flag.Parse()
	fixture.Start()
	fixture.Ready()
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go worker(*n / *workers, &wg)
	}
	wg.Wait()
	fmt.Printf("elapsed_ns=%d\n", time.Since(start).Nanoseconds())
}
