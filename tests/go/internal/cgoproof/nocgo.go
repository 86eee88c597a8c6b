//go:build !cgo

// Package cgoproof links a little C into cgo builds of the fixtures.
package cgoproof

// Enabled reports whether this binary was built with cgo.
func Enabled() bool { return false }
