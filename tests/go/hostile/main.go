// hostile corrupts its own memory-profile bucket list, the way a memory-corruption bug
// (or a malicious program) could, to test that profilers reading the list survive it.
//
//	-mode cycle     the last bucket's allnext points back to the head
//	-mode nstk      a bucket claims 2^64-1 stack words
//	-mode typ       a bucket claims type 7
//	-mode unmapped  a bucket's allnext points into unmapped memory
//	-mode many      2,000,000 well-formed fake buckets are spliced into the list
//
// Non-PIE builds only: runtime.mbuckets is found through the binary's own symbol table.
// After corrupting, garbage collection is turned off (the runtime itself walks the list
// at every GC) and the program prints "ready"; with -oom it then allocates until killed.
package main

import (
	"debug/elf"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"unsafe"

	"oomprof.test/fixtures/internal/fixture"
)

type bucket struct {
	next, allnext, typ, hash, size, nstk uintptr
}

var (
	sink  [][]byte
	arena []byte
)

//go:noinline
func victimSite() []byte { return make([]byte, 4321) }

//go:noinline
func frontSiteA() []byte { return make([]byte, 1000) }

//go:noinline
func frontSiteB() []byte { return make([]byte, 2000) }

//go:noinline
func frontSiteC() []byte { return make([]byte, 3000) }

//go:noinline
func allocChunk() []byte {
	b := make([]byte, 1<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	return b
}

func mbucketsAddr() uintptr {
	f, err := elf.Open("/proc/self/exe")
	if err != nil {
		panic(err)
	}
	syms, err := f.Symbols()
	if err != nil {
		panic(err)
	}
	for _, s := range syms {
		if s.Name == "runtime.mbuckets" {
			return uintptr(s.Value)
		}
	}
	panic("runtime.mbuckets not in the symbol table (build without -s, non-PIE)")
}

func at(p uintptr) *bucket { return (*bucket)(unsafe.Pointer(p)) }

// memRecordSize is 128 bytes up to Go 1.26 and 64 from Go 1.27.
func memRecordSize() uintptr {
	v := runtime.Version()
	var minor int
	fmt.Sscanf(strings.TrimPrefix(v, "go1."), "%d", &minor)
	if minor >= 27 {
		return 64
	}
	return 128
}

func main() {
	mode := flag.String("mode", "cycle", "cycle, nstk, typ, unmapped or many")
	many := flag.Int("n", 2000000, "fake buckets for -mode many")
	oom := flag.Bool("oom", false, "then allocate until killed")
	flag.Parse()
	runtime.MemProfileRate = 1
	fixture.Start()
	sink = append(sink, allocChunk()) // allocChunk's bucket exists before the damage
	// The victim bucket, then three in front of it (the list is newest first).
	sink = append(sink, victimSite())
	victimSize := uintptr(0)
	sink = append(sink, frontSiteA(), frontSiteB(), frontSiteC())
	runtime.MemProfileRate = 512 * 1024
	debug.SetGCPercent(-1)

	head := *(*uintptr)(unsafe.Pointer(mbucketsAddr()))
	var victim, last uintptr
	for p := head; p != 0; p = at(p).allnext {
		b := at(p)
		if b.size >= 4321 && b.size <= 4864 && victim == 0 {
			victim = p
			victimSize = b.size
		}
		last = p
	}
	if victim == 0 {
		panic("victim bucket not found")
	}
	switch *mode {
	case "cycle":
		at(last).allnext = head
	case "nstk":
		at(victim).nstk = ^uintptr(0)
	case "typ":
		at(victim).typ = 7
	case "unmapped":
		at(victim).allnext = 0x1000
	case "many":
		stk := *(*uintptr)(unsafe.Pointer(victim + 48)) // a valid PC: victimSite's
		size := 48 + 8 + memRecordSize()
		arena = make([]byte, uintptr(*many)*size)
		base := uintptr(unsafe.Pointer(&arena[0]))
		for i := 0; i < *many; i++ {
			b := at(base + uintptr(i)*size)
			b.typ = 1
			b.size = 16
			b.nstk = 1
			*(*uintptr)(unsafe.Pointer(base + uintptr(i)*size + 48)) = stk
			*(*uintptr)(unsafe.Pointer(base + uintptr(i)*size + 56)) = 1 // active.allocs
			if i+1 < *many {
				b.allnext = base + uintptr(i+1)*size
			}
		}
		at(last).allnext = base
	default:
		fmt.Fprintf(os.Stderr, "unknown -mode %q\n", *mode)
		os.Exit(2)
	}
	fmt.Printf("corrupted mode=%s victim=%#x size=%d\n", *mode, victim, victimSize)
	fixture.Ready()
	if *oom {
		for {
			sink = append(sink, allocChunk())
		}
	}
	for {
		select {}
	}
}
