/*
 * build/worker entry point. Placeholder until issue #6 lands: it says so and
 * exits non-zero, so that nothing pretends to work.
 */
#include <stdio.h>

int
main(void)
{
	fprintf(stderr, "ctrickle worker: not available yet (arrives with issue #6)\n");
	return 2;
}
