// holder builds a known live heap and keeps it: -large objects of 1 MiB from
// allocLarge and -small objects of 1 KiB from allocSmall. It prints "ready", and on
// SIGUSR2 writes its own heap profile (see package fixture). It is the reference the
// fidelity tests compare oomprof's profiles against. With -exit it exits at once
// (the churn tests' short-lived Go process); with -exit-on-stdin it exits normally
// once a line (or EOF) arrives on stdin, after a watcher had time to see it.
package main

import (
	"bufio"
	"flag"
	"os"

	"oomprof.test/fixtures/internal/fixture"
)

var (
	large [][]byte
	small [][]byte
)

//go:noinline
func allocLarge() []byte {
	b := make([]byte, 1<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	return b
}

//go:noinline
func allocSmall() []byte {
	b := make([]byte, 1024)
	b[0] = 1
	return b
}

func main() {
	nLarge := flag.Int("large", 40, "number of 1 MiB objects")
	nSmall := flag.Int("small", 10000, "number of 1 KiB objects")
	exit := flag.Bool("exit", false, "exit right after printing ready (short-lived process)")
	exitOnStdin := flag.Bool("exit-on-stdin", false, "exit normally when a line (or EOF) arrives on stdin")
	flag.Parse()
	fixture.Start()
	for i := 0; i < *nLarge; i++ {
		large = append(large, allocLarge())
	}
	for i := 0; i < *nSmall; i++ {
		small = append(small, allocSmall())
	}
	fixture.Ready()
	if *exit {
		return
	}
	if *exitOnStdin {
		bufio.NewReader(os.Stdin).ReadString('\n')
		return
	}
	fixture.Wait()
}
