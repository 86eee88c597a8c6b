/*
 * leak.cpp: a C++ program whose memory grows through Cache::grow (1 MiB every 10 ms,
 * each page touched by the method itself) up to `max_mib` (argument 1, default 160),
 * then idles until killed. Prints "ready pid=N" first. The growth tests build it with
 * frame pointers and check the demangled names.
 */
#include <cstdio>
#include <cstdlib>
#include <unistd.h>
#include <vector>

class Cache {
public:
	__attribute__((noinline)) void grow(unsigned long n)
	{
		volatile char *p = static_cast<char *>(std::malloc(n));
		if (!p)
			std::abort();
		for (unsigned long i = 0; i < n; i += 4096)
			p[i] = 1;
		kept.push_back(const_cast<char *>(p));
	}
	std::vector<char *> kept;
};

__attribute__((noinline)) void handle_request(Cache &c)
{
	c.grow(1 << 20);
}

int main(int argc, char **argv)
{
	unsigned max_mib = argc > 1 ? (unsigned)std::atoi(argv[1]) : 160;
	Cache c;
	c.kept.reserve(max_mib);
	std::printf("ready pid=%d\n", getpid());
	std::fflush(stdout);
	for (unsigned i = 0;; i++) {
		if (i < max_mib)
			handle_request(c);
		usleep(10000);
	}
}
