// deep allocates from -depth frames below main and keeps the memory. With -oom it keeps
// allocating 1 MiB chunks at that depth until killed; otherwise it allocates -count
// objects, prints "ready" and waits.
package main

import (
	"flag"

	"oomprof.test/fixtures/internal/fixture"
)

var kept [][]byte

//go:noinline
func allocDeep(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	return b
}

//go:noinline
func descend(depth int, at func()) {
	if depth <= 0 {
		at()
		return
	}
	descend(depth-1, at)
}

func main() {
	depth := flag.Int("depth", 300, "frames between main and the allocation")
	count := flag.Int("count", 64, "objects to allocate (without -oom)")
	oom := flag.Bool("oom", false, "allocate until killed")
	flag.Parse()
	fixture.Start()
	if *oom {
		fixture.Ready()
		descend(*depth, func() {
			for {
				kept = append(kept, allocDeep(1<<20))
			}
		})
	}
	descend(*depth, func() {
		for i := 0; i < *count; i++ {
			kept = append(kept, allocDeep(64<<10))
		}
	})
	fixture.Ready()
	fixture.Wait()
}
