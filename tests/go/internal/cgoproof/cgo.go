//go:build cgo

// Package cgoproof links a little C into cgo builds of the fixtures, so the cgo
// variant of the test matrix really is a cgo program (external linking, C startup).
package cgoproof

// static int oomprof_cgo_answer(void) { return 42; }
import "C"

// Enabled reports whether this binary was built with cgo.
func Enabled() bool { return C.oomprof_cgo_answer() == 42 }
