/* at_preload.h: the test-only query API that libasynctop-preload.so exports, so that a libuv
 * program run under the shim (tests/preload) can check what the shim saw. Resolve the
 * functions with dlsym(RTLD_DEFAULT, ...): they exist only when the shim is preloaded. All are
 * safe from any thread and read relaxed counters (values may be a callback behind). */
#ifndef ASYNCTOP_AT_PRELOAD_H
#define ASYNCTOP_AT_PRELOAD_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* 1 if `loop` is watched (its first uv_run happened and it was not closed since), else 0. */
int at_preload_debug_watched(uv_loop_t *loop);
/* Statistics of callback `fn` on `loop` (exclusive times): 0 and the values, or -ENOENT
 * (unwatched loop, or no callback `fn` ran on it). */
int at_preload_debug_site(uv_loop_t *loop, const void *fn, uint64_t *count, uint64_t *total_ns,
                          uint64_t *max_ns);
/* Slow callbacks counted on `loop` (0 if unwatched). */
uint64_t at_preload_debug_slow(uv_loop_t *loop);
/* Side-table entries alive: handles with a callback plus requests in flight (0 once a program
 * closed everything: nothing leaks on address reuse). */
size_t at_preload_debug_entries(void);
/* Requests in flight on `loop` (the rows the pending view shows). */
size_t at_preload_debug_inflight(uv_loop_t *loop);
/* Loop metrics of `loop` as the exporter reads them: iterations (completed polls), poll_ns
 * (time from the end of the last callback before each poll to the poll's return) and idle_ns
 * (the same under the shim). 0 and the values, or -ENOENT (unwatched loop). */
int at_preload_debug_loop(uv_loop_t *loop, uint64_t *iterations, uint64_t *poll_ns,
                          uint64_t *idle_ns);
/* uv_queue_work work functions timed on pool threads: how many ran, and the longest. */
void at_preload_debug_work(uint64_t *count, uint64_t *max_ns);

#endif
