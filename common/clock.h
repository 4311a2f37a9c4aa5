/*
 * Time helpers: monotonic nanoseconds for intervals and deadlines, wall-clock
 * milliseconds for event timestamps. Header-only; no state.
 */
#ifndef CT_CLOCK_H
#define CT_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic time in nanoseconds (CLOCK_MONOTONIC); never goes back. */
static inline int64_t
clock_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Monotonic time in milliseconds. */
static inline int64_t
clock_now_ms(void)
{
	return clock_now_ns() / 1000000LL;
}

/* Wall-clock time in milliseconds since the epoch (event timestamps). */
static inline int64_t
clock_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000LL;
}

#endif
