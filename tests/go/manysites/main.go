// manysites keeps one live object from each of -n distinct call stacks. Site i's
// stack is a path of stepA/stepB frames spelling the bits of i, so every site has its
// own bucket. MemProfileRate is 1 so every allocation is recorded. With -oom it then
// allocates 1 MiB chunks from allocChunk until the kernel kills it.
package main

import (
	"flag"
	"runtime"

	"oomprof.test/fixtures/internal/fixture"
)

var kept [][]byte

//go:noinline
func allocSite() []byte {
	b := make([]byte, 64)
	b[0] = 1
	return b
}

//go:noinline
func stepA(i, bit int) {
	walk(i, bit-1)
}

//go:noinline
func stepB(i, bit int) {
	walk(i, bit-1)
}

//go:noinline
func allocChunk() []byte {
	b := make([]byte, 1<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	return b
}

func walk(i, bit int) {
	if bit < 0 {
		kept = append(kept, allocSite())
		return
	}
	if i&(1<<bit) != 0 {
		stepA(i, bit)
	} else {
		stepB(i, bit)
	}
}

func main() {
	n := flag.Int("n", 10000, "distinct allocation stacks")
	oom := flag.Bool("oom", false, "then allocate until killed")
	flag.Parse()
	runtime.MemProfileRate = 1
	fixture.Start()
	bits := 0
	for (1 << bits) < *n {
		bits++
	}
	for i := 0; i < *n; i++ {
		walk(i, bits-1)
	}
	fixture.Ready()
	if *oom {
		runtime.MemProfileRate = 512 * 1024
		for {
			kept = append(kept, allocChunk())
		}
	}
	fixture.Wait()
}
