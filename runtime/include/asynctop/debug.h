/* asynctop/debug.h: debug mode, the slow-callback threshold, logging, and reading captured stacks.
 */
#ifndef ASYNCTOP_DEBUG_H
#define ASYNCTOP_DEBUG_H

#include "asynctop/common.h"

#include <stdarg.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Debug mode: on from start-up with ASYNCTOP_DEBUG=1, or at any time with
 * at_set_debug. It adds creation stacks (raw return addresses, symbolised
 * only when someone looks) to callbacks, futures and errors. Timing of every
 * callback, slow-callback reports and the wrong-thread check are always on.
 * Process-wide; any thread; takes effect for objects created afterwards. */
AT_EXTERN void at_set_debug(bool on);
AT_EXTERN bool at_get_debug(void);

/* Slow-callback threshold in milliseconds (default 100, or ASYNCTOP_SLOW_MS):
 * a callback that runs at least this long is logged at warning level as
 * "Executing <name> took 0.123 seconds" and posted as a slow-callback event.
 * A change applies from the next callback on. 0 disables the report.
 * Process-wide; any thread. */
AT_EXTERN void at_set_slow_threshold_ms(uint64_t ms);
AT_EXTERN uint64_t at_get_slow_threshold_ms(void);

typedef enum at_log_level {
    AT_LOG_DEBUG = 0,
    AT_LOG_INFO,
    AT_LOG_WARNING,
    AT_LOG_ERROR,
} at_log_level_t;

/* A log sink: receives one complete message (no trailing newline) per call,
 * with its level (an at_log_level_t). Messages are formatted on the thread
 * that logs, into a bounded lock-free queue, and handed to the sink in order
 * by a logger thread: logging never blocks the loop (a full queue drops the
 * message and counts it). The default sink writes
 * "asynctop: LEVEL: message" lines to stderr. A fork() in any thread waits
 * until a running sink returns (docs/exporter.md, "fork()"), so a sink must
 * not fork, create or close a loop: the locks those take come before the
 * sink's in the runtime's lock order. */
typedef void (*at_log_sink_fn)(int level, const char *msg, void *arg);

/* Replaces the sink (NULL restores the default stderr sink). Any thread. */
AT_EXTERN void at_set_log_sink(at_log_sink_fn sink, void *arg);
/* Messages below `level` are dropped. Default: AT_LOG_INFO, or AT_LOG_DEBUG while debug mode
 * is on; once the application sets a level, it holds in debug mode too. Any thread. */
AT_EXTERN void at_set_log_level(at_log_level_t level);
AT_EXTERN at_log_level_t at_get_log_level(void);
/* Logs a message through the sink ("asynctop" logger). Any thread. */
AT_EXTERN void at_log(at_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Waits until every message logged before the call reached the sink, or
 * `timeout_ms` passed. Returns 0 or AT_ETIMEDOUT. Blocks: not for the loop
 * thread's hot path (tests, shutdown). Any thread. */
AT_EXTERN int at_log_flush(uint64_t timeout_ms);

/* Symbolises one return address into `buf` as "function (file:line)" (what
 * is known of it: "lib+0xoff", else "0x..."). Slow (libdw; cached per
 * address): never call it on a hot path. Returns the length it wanted, as
 * snprintf does. Any thread. */
AT_EXTERN size_t at_symbolize(const void *addr, char *buf, size_t len);

/* Counters of problems the runtime refused or reported, process-wide.
 * Any thread. */
typedef struct at_debug_counters {
    uint64_t wrong_thread;      /* calls refused with AT_EWRONGTHREAD */
    uint64_t never_retrieved;   /* "Future exception was never retrieved" reports */
    uint64_t unclosed;          /* handles reported open at loop close */
    uint64_t dropped_callbacks; /* callbacks still scheduled at loop close */
} at_debug_counters_t;
AT_EXTERN void at_debug_counters(at_debug_counters_t *out);

#ifdef __cplusplus
}
#endif
#endif
