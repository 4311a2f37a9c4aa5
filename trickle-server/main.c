/*
 * build/trickle-server entry point. Placeholder until issue #4 lands: it says so and
 * exits non-zero, so that nothing pretends to work.
 */
#include <stdio.h>

int
main(void)
{
	fprintf(stderr, "ctrickle trickle-server: not available yet (arrives with issue #4)\n");
	return 2;
}
