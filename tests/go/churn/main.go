// churn looks like a busy service with a leak: -workers goroutines allocate and drop
// garbage of assorted sizes while leakSite keeps 64 KiB every -leak-every, until killed.
package main

import (
	"flag"
	"time"

	"oomprof.test/fixtures/internal/fixture"
)

var leaked [][]byte

var sink []byte

//go:noinline
func garbage(n int) []byte {
	b := make([]byte, n)
	b[0] = byte(n)
	return b
}

//go:noinline
func leakSite() {
	b := make([]byte, 64<<10)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	leaked = append(leaked, b)
}

func worker(id int) {
	sizes := []int{16, 200, 1500, 9000, 33000}
	for i := 0; ; i++ {
		b := garbage(sizes[(i+id)%len(sizes)])
		if i%1000 == 0 {
			sink = b
		}
	}
}

func main() {
	workers := flag.Int("workers", 4, "garbage-producing goroutines")
	every := flag.Duration("leak-every", time.Millisecond, "how often leakSite keeps 64 KiB")
	flag.Parse()
	fixture.Start()
	for i := 0; i < *workers; i++ {
		go worker(i)
	}
	fixture.Ready()
	for {
		leakSite()
		time.Sleep(*every)
	}
}
