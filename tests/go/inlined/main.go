// inlined allocates inside functions the compiler inlines: a plain function, a method,
// a generic function and a closure, each called from a //go:noinline function, so the
// profile's locations carry several lines (inline frames).
package main

import (
	"flag"

	"oomprof.test/fixtures/internal/fixture"
)

type item struct{ buf [256]byte }

type pool struct{ items []*item }

type box[T any] struct {
	v   T
	pad [512]byte
}

var (
	bufs  [][]byte
	p     pool
	boxes []*box[int]
	strs  []*box[string]
	clos  [][]int64
)

func newBuf(n int) []byte { return make([]byte, n) }

func (p *pool) get() *item {
	it := &item{}
	p.items = append(p.items, it)
	return it
}

func newBox[T any](v T) *box[T] { return &box[T]{v: v} }

//go:noinline
func allocInlinedFunc() { bufs = append(bufs, newBuf(4096)) }

//go:noinline
func allocInlinedMethod() { p.get() }

//go:noinline
func allocInlinedGeneric() {
	boxes = append(boxes, newBox(7))
	strs = append(strs, newBox("seven"))
}

//go:noinline
func allocInlinedClosure() {
	mk := func(n int) []int64 { return make([]int64, n) }
	clos = append(clos, mk(300))
}

func main() {
	n := flag.Int("n", 2000, "allocations per site")
	flag.Parse()
	fixture.Start()
	for i := 0; i < *n; i++ {
		allocInlinedFunc()
		allocInlinedMethod()
		allocInlinedGeneric()
		allocInlinedClosure()
	}
	fixture.Ready()
	fixture.Wait()
}
