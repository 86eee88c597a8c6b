// oracle makes Go's own view of its heap at an OOM kill known in advance. It builds a
// known heap (live and freed objects from distinct sites), runs runtime.GC() twice,
// turns the GC off, and writes its own heap profile (FIXTURE_PROFILE). With the GC off
// no profiling cycle is published after that write, so runtime.MemProfile at the kill
// returns exactly what was written. Then it makes one giant allocation (-giant bytes)
// and touches it page by page until the kernel kills it: an allocation Go has recorded
// but not published.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"

	"oomprof.test/fixtures/internal/fixture"
)

var kept [][]byte
var sink []byte

//go:noinline
func allocLarge() []byte { return make([]byte, 1<<20) }

//go:noinline
func allocSmall() []byte { return make([]byte, 1024) }

//go:noinline
func allocGarbage() []byte { return make([]byte, 256<<10) }

//go:noinline
func giant(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	return b
}

func main() {
	large := flag.Int("large", 20, "live 1 MiB objects")
	small := flag.Int("small", 10000, "live 1 KiB objects")
	garbage := flag.Int("garbage", 120, "256 KiB objects allocated and dropped")
	size := flag.Int("giant", 1<<30, "bytes of the final allocation")
	flag.Parse()
	fixture.Start()
	for i := 0; i < *large; i++ {
		kept = append(kept, allocLarge())
	}
	for i := 0; i < *small; i++ {
		kept = append(kept, allocSmall())
	}
	for i := 0; i < *garbage; i++ {
		sink = allocGarbage()
	}
	sink = nil
	runtime.GC()
	runtime.GC()
	debug.SetGCPercent(-1)
	path := os.Getenv("FIXTURE_PROFILE")
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fixture.Ready()
	kept = append(kept, giant(*size))
	fmt.Println("survived")
	fixture.Wait()
}
