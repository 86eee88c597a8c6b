// oomer allocates memory in chunks, touches every page and keeps it, until the kernel
// kills it. It is the OOM victim of the end-to-end tests.
//
// Flags: -chunk bytes per allocation (default 1 MiB), -delay between chunks,
// -wait: read one line from stdin before allocating (lets a test register the pid first).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"time"

	"oomprof.test/fixtures/internal/fixture"
)

var kept [][]byte

//go:noinline
func allocChunk(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	return b
}

func main() {
	chunk := flag.Int("chunk", 1<<20, "bytes per allocation")
	delay := flag.Duration("delay", 0, "pause between allocations")
	wait := flag.Bool("wait", false, "wait for a line on stdin before allocating")
	flag.Parse()
	fixture.Start()
	fixture.Ready()
	if *wait {
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	fmt.Println("allocating")
	for {
		kept = append(kept, allocChunk(*chunk))
		if *delay > 0 {
			time.Sleep(*delay)
		}
	}
}
