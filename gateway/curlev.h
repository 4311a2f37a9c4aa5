/*
 * curlev: one libcurl multi handle driven by one libevent event_base
 * (CURLMOPT_SOCKETFUNCTION + CURLMOPT_TIMERFUNCTION +
 * curl_multi_socket_action).
 * Owns the multi handle, the socket events and the timer; it does not own the
 * easy handles added to it. Everything here runs on the loop thread.
 */
#ifndef CT_CURLEV_H
#define CT_CURLEV_H

#include <stdbool.h>

#include <curl/curl.h>
#include <event2/event.h>

typedef struct curlev curlev;

/*
 * Called on the loop thread, outside any libcurl callback, when a transfer
 * added with curlev_add() ends (success or failure). The easy handle has been
 * removed from the multi already: the callee owns it again and may clean it
 * up, re-add it, or add other transfers.
 */
typedef void (*curlev_done_fn)(CURL *easy, CURLcode res, void *arg);

/*
 * Creates the driver for `base` (initialising libcurl globally once per
 * process). Returns 0 or -ENOMEM/-EIO. Loop thread (or before the loop runs).
 */
int curlev_create(curlev **out, struct event_base *base);

/*
 * Removes every transfer still added (their done callbacks are NOT called; the
 * owners must have removed theirs first, see curlev_remove), frees the multi
 * handle and events. NULL-safe, sets *p = NULL. Loop thread; not from inside a
 * curl or curlev callback.
 */
void curlev_destroy(curlev **p);

/*
 * Starts `easy` on the multi. `done` is called once when it ends. Safe to call
 * from inside libcurl callbacks of other transfers (the add is deferred to the
 * loop then). Returns 0, -ENOMEM, or -EIO when libcurl refuses the handle.
 */
int curlev_add(curlev *cv, CURL *easy, curlev_done_fn done, void *arg);

/*
 * Stops `easy` without calling its done callback; a no-op when it is not
 * added. Must not be called from inside a libcurl callback of `easy` itself
 * (abort from there by returning an error from the callback instead).
 */
void curlev_remove(curlev *cv, CURL *easy);

/* True while curlev is inside curl_multi_socket_action (libcurl callbacks). */
bool curlev_in_callback(const curlev *cv);

/* The event_base given at creation. */
struct event_base *curlev_base(const curlev *cv);

/* Number of transfers currently added (tests, metrics). */
int curlev_active(const curlev *cv);

#endif
