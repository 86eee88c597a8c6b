/*
 * leakchurn.c: a native program whose memory grows through one caller while another
 * churns buffers. handle_request leaks 1 MiB through grow_cache on every 4th request
 * and otherwise has churn_buffer fill and free a 64 KiB buffer (which malloc reuses:
 * it faults once). Both touch their memory themselves, one byte per page, so the
 * faulting instruction is in the function the test expects on top.
 *
 * Prints "ready pid=N", then serves a request every 10 ms (about 25 MiB/s of leak)
 * until it has leaked `max_mib` (argument 1, default 256), then idles until killed.
 * Built by the tests with and without frame pointers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char *cache[4096];
static unsigned ncache;

__attribute__((noinline)) void grow_cache(size_t n)
{
	volatile char *p = malloc(n);
	if (!p)
		abort();
	for (size_t i = 0; i < n; i += 4096)
		p[i] = 1;
	cache[ncache++ % 4096] = (char *)p;
}

__attribute__((noinline)) void churn_buffer(size_t n)
{
	volatile char *p = malloc(n);
	if (!p)
		abort();
	for (size_t i = 0; i < n; i += 4096)
		p[i] = 2;
	free((char *)p);
}

__attribute__((noinline)) void handle_request(unsigned i)
{
	if (i % 4 == 0)
		grow_cache(1 << 20);
	else
		churn_buffer(64 << 10);
}

int main(int argc, char **argv)
{
	unsigned max_mib = argc > 1 ? (unsigned)atoi(argv[1]) : 256;
	printf("ready pid=%d\n", getpid());
	fflush(stdout);
	for (unsigned i = 0;; i++) {
		if (ncache < max_mib)
			handle_request(i);
		usleep(10000);
	}
}
