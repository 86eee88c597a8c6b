/*
 * libleak-main.c: grows through libleak.so. handle_request calls lib_grow(1 MiB)
 * every 10 ms up to `max_mib` (argument 1, default 160), then idles until killed.
 * Prints "ready pid=N" first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void lib_grow(size_t n);

__attribute__((noinline)) void handle_request(void)
{
	lib_grow(1 << 20);
}

int main(int argc, char **argv)
{
	unsigned max_mib = argc > 1 ? (unsigned)atoi(argv[1]) : 160;
	printf("ready pid=%d\n", getpid());
	fflush(stdout);
	for (unsigned i = 0;; i++) {
		if (i < max_mib)
			handle_request();
		usleep(10000);
	}
}
