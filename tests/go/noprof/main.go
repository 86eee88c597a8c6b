// noprof never references runtime.MemProfile, so the Go linker sets
// runtime.disableMemoryProfiling and the runtime records (almost) nothing. It allocates
// 1 MiB chunks until killed, or with -hold prints "ready" and waits; with -wait it
// starts allocating only after a line on stdin (the growth tests attach first). With -rate N it
// sets runtime.MemProfileRate = N itself first: the linker flag stays set, but the
// runtime samples again.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"
)

var kept [][]byte

//go:noinline
func allocNoprof() []byte {
	b := make([]byte, 1<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	return b
}

func main() {
	hold := flag.Bool("hold", false, "allocate 8 MiB, print ready and wait")
	wait := flag.Bool("wait", false, "after ready, read a line from stdin before allocating")
	rate := flag.Int("rate", 0, "set runtime.MemProfileRate to this first (0: leave it)")
	flag.Parse()
	if *rate > 0 {
		runtime.MemProfileRate = *rate
	}
	if *hold {
		for i := 0; i < 8; i++ {
			kept = append(kept, allocNoprof())
		}
		fmt.Printf("ready pid=%d\n", os.Getpid())
		// Not `select {}`: with no other goroutine that is a deadlock and the runtime exits.
		for {
			time.Sleep(time.Hour)
		}
	}
	fmt.Printf("ready pid=%d\n", os.Getpid())
	if *wait {
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	for {
		kept = append(kept, allocNoprof())
	}
}
