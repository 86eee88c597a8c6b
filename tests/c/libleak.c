/*
 * libleak.c: a shared library that leaks: lib_grow mallocs `n` bytes, touches each
 * page itself and keeps the block. Built by the growth tests with frame pointers as
 * libleak.so; libleak-main.c calls it.
 */
#include <stdlib.h>

static char *kept[4096];
static unsigned nkept;

__attribute__((noinline)) void lib_grow(size_t n)
{
	volatile char *p = malloc(n);
	if (!p)
		abort();
	for (size_t i = 0; i < n; i += 4096)
		p[i] = 1;
	kept[nkept++ % 4096] = (char *)p;
}
