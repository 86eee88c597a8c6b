// leakchurn leaks 256 KiB objects from one site (main.leak) while -churners goroutines
// allocate and drop 64 KiB buffers from another (main.churn), like request handlers,
// until the kernel kills it. The culprit of the OOM is the leak; the churners allocate
// several times more bytes, all garbage. With -generic the leak goes through a method
// of a generic type.
package main

import (
	"flag"
	"time"

	"oomprof.test/fixtures/internal/fixture"
)

var leaked [][]byte

//go:noinline
func leak() []byte {
	b := make([]byte, 256<<10)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	return b
}

type store[T any] struct{ items []T }

//go:noinline
func (s *store[T]) keep(v T) { s.items = append(s.items, v) }

//go:noinline
func genericLeak(s *store[[]byte]) { s.keep(leak()) }

var sinks [64][]byte

//go:noinline
func churn(i int) {
	b := make([]byte, 64<<10)
	for j := 0; j < len(b); j += 4096 {
		b[j] = byte(i)
	}
	sinks[i%len(sinks)] = b[:1]
	sinks[i%len(sinks)] = nil
}

func main() {
	churners := flag.Int("churners", 7, "goroutines allocating garbage")
	every := flag.Duration("every", 2*time.Millisecond, "pause between leaked objects")
	generic := flag.Bool("generic", false, "leak through a generic method")
	pause := flag.Duration("pause", 100*time.Microsecond, "pause between a churner's buffers")
	flag.Parse()
	fixture.Start()
	fixture.Ready()
	for g := 0; g < *churners; g++ {
		go func(g int) {
			for i := g; ; i += *churners {
				churn(i)
				time.Sleep(*pause)
			}
		}(g)
	}
	s := &store[[]byte]{}
	for {
		if *generic {
			genericLeak(s)
		} else {
			leaked = append(leaked, leak())
		}
		time.Sleep(*every)
	}
}
