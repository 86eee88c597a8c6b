// manysites keeps one live object from each of -n distinct call stacks. Site i's
// stack is a path of stepA/stepB frames spelling the bits of i, so every site has its
// own bucket. MemProfileRate is 1 so every allocation is recorded. With -oom it then
// allocates 1 MiB chunks from allocChunk until the kernel kills it.
//
// -then says how it ends after "ready" (without -oom):
//
//	wait    wait until killed (the default)
//	exit    os.Exit(0)
//	return  return from main
//	exec    syscall.Exec("/bin/true")
//
// exit, return and exec first lock extraThreads goroutines to OS threads of their
// own (so that the exit_group or exec has threads to kill, none of it a kill), print
// "ready", and read one line from stdin (so that a test can watch the pid first).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"runtime"
	"syscall"

	"oomprof.test/fixtures/internal/fixture"
)

const extraThreads = 4

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
	then := flag.String("then", "wait", "after ready: wait, exit, return or exec")
	flag.Parse()
	switch *then {
	case "wait", "exit", "return", "exec":
	default:
		fmt.Fprintf(os.Stderr, "unknown -then %q\n", *then)
		os.Exit(2)
	}
	runtime.MemProfileRate = 1
	fixture.Start()
	bits := 0
	for (1 << bits) < *n {
		bits++
	}
	for i := 0; i < *n; i++ {
		walk(i, bits-1)
	}
	if *then != "wait" {
		started := make(chan struct{})
		for i := 0; i < extraThreads; i++ {
			go func() {
				runtime.LockOSThread()
				started <- struct{}{}
				select {}
			}()
			<-started
		}
	}
	fixture.Ready()
	if *then != "wait" {
		bufio.NewReader(os.Stdin).ReadString('\n')
		switch *then {
		case "exit":
			os.Exit(0)
		case "return":
			return
		case "exec":
			err := syscall.Exec("/bin/true", []string{"true"}, os.Environ())
			fmt.Fprintf(os.Stderr, "exec /bin/true: %v\n", err)
			os.Exit(1)
		}
	}
	if *oom {
		runtime.MemProfileRate = 512 * 1024
		for {
			kept = append(kept, allocChunk())
		}
	}
	fixture.Wait()
}
