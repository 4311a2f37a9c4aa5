/*
 * Self-test of the unit-test harness: a case runs forked, and CHECK passes.
 */
#include "harness.h"

#include <unistd.h>

static void
harness_forked(void)
{
	CHECK(getpid() != getpgid(0) || 1);
	CHECK_EQ(1 + 1, 2);
	CHECK_STR("a", "a");
}

static const struct th_case cases[] = {
	TH_CASE(harness_forked),
	TH_END,
};

TH_MAIN(cases)
