/* wire_common.c: names, error strings, histogram scheme, limit sets and the socket path rule,
 * shared by encoder, decoder, runtime and inspector. */
#include "at_wire.h"
#include "at_wire_limits.h"
#include "wire_internal.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

const char *const at__wire_type_names[8] = {
    NULL, "hello", "subscribe", "update", "request", "response", "error", "bye",
};

const char *const at__wire_cap_names[] = {
    "tasks",    "slow",       "exceptions", "loop",       "stacks", "sites",
    "inflight", "set_config", "cancel",     "loop_stack", "pause",  "debug",
};
_Static_assert(sizeof(at__wire_cap_names) / sizeof(at__wire_cap_names[0]) == AT_WIRE_CAP_COUNT,
               "one name per capability bit");

const char *const at__wire_op_names[7] = {
    NULL, "task_detail", "set_config", "cancel", "loop_stack", "pause", "resume",
};

#define LIMITS(DIR)                                                                                \
    {                                                                                              \
        AT_WIRE_MAX_FRAME_##DIR, AT_WIRE_MAX_DEPTH, AT_WIRE_MAX_ITEMS_##DIR,                       \
            AT_WIRE_MAX_STRING_##DIR, AT_WIRE_MAX_TOTAL_##DIR, AT_WIRE_MAX_MEMORY_##DIR            \
    }
const at_wire_limits_t at_wire_limits_c2s = LIMITS(C2S);
const at_wire_limits_t at_wire_limits_s2c = LIMITS(S2C);

const char *at_wire_strerror(int code)
{
    switch (code) {
    case AT_WIRE_OK:
        return "success";
    case AT_WIRE_ETRUNCATED:
        return "truncated message: the CBOR item ends before its declared content";
    case AT_WIRE_EMALFORMED:
        return "malformed CBOR (or a CBOR kind the protocol does not use)";
    case AT_WIRE_ENOTMAP:
        return "the frame does not hold a definite-length CBOR map";
    case AT_WIRE_EMISSING:
        return "a required key is missing";
    case AT_WIRE_ETYPE:
        return "a key has a value of the wrong type";
    case AT_WIRE_EUNKNOWNTYPE:
        return "unknown message type";
    case AT_WIRE_EVERSION:
        return "unsupported protocol version";
    case AT_WIRE_ELIMIT:
        return "a protocol limit was exceeded";
    case AT_WIRE_ETRAILING:
        return "extra bytes after the message inside the frame";
    case AT_WIRE_EVALUE:
        return "a value is out of range";
    case AT_WIRE_EFRAME:
        return "bad framing (zero-length frame)";
    case AT_WIRE_ENOMEM:
        return "out of memory";
    case AT_WIRE_EUNEXPECTED:
        return "a message of an unexpected type";
    default:
        return "unknown wire error";
    }
}

const char *at_wire_type_name(int type)
{
    if (type < AT_WIRE_HELLO || type > AT_WIRE_BYE)
        return NULL;
    return at__wire_type_names[type];
}

const char *at_wire_cap_name(unsigned bit)
{
    return bit < AT_WIRE_CAP_COUNT ? at__wire_cap_names[bit] : NULL;
}

const char *at_wire_op_name(int op)
{
    if (op < AT_WIRE_OP_TASK_DETAIL || op > AT_WIRE_OP_RESUME)
        return NULL;
    return at__wire_op_names[op];
}

uint64_t at_wire_hist_lower(unsigned i)
{
    assert(i < AT_WIRE_HIST_BUCKETS);
    if (i < 4)
        return i;
    return (uint64_t)(4u + (i & 3u)) << (i / 4u - 1u);
}

uint64_t at_wire_hist_upper(unsigned i)
{
    assert(i < AT_WIRE_HIST_BUCKETS);
    return i + 1 < AT_WIRE_HIST_BUCKETS ? at_wire_hist_lower(i + 1) : UINT64_MAX;
}

uint64_t at_wire_hist_quantile(const at_wire_hist_t *h, double q, uint64_t min_ns, uint64_t max_ns)
{
    uint32_t n = h->n < AT_WIRE_HIST_BUCKETS ? h->n : AT_WIRE_HIST_BUCKETS;
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++)
        total += h->counts[i];
    if (total == 0)
        return 0;
    if (!(q > 0)) /* also NaN */
        q = 0;
    if (q > 1)
        q = 1;
    /* the rank (1-based, continuous) of the wanted sample; at least the first one */
    double rank = q * (double)total;
    if (rank < 1)
        rank = 1;
    uint64_t before = 0;
    uint32_t i = 0;
    for (; i < n; i++) {
        if (h->counts[i] > 0 && (double)(before + h->counts[i]) >= rank)
            break;
        before += h->counts[i];
    }
    if (i == n) /* rounding at q = 1: the last non-empty bucket */
        for (i = n; i-- > 0 && h->counts[i] == 0;)
            ;
    uint64_t lo = at_wire_hist_lower(i), hi = at_wire_hist_upper(i);
    if (hi == UINT64_MAX) /* the open-ended last bucket: no width to spread over */
        hi = lo;
    double frac = (rank - (double)before) / (double)h->counts[i];
    if (frac > 1)
        frac = 1;
    double v = (double)lo + frac * (double)(hi - lo);
    uint64_t out = v >= (double)hi ? hi : (uint64_t)v;
    if (out > lo && out == hi) /* stay inside the bucket: [lo, hi) */
        out = hi - 1;
    if (min_ns > max_ns)
        min_ns = max_ns;
    if (out < min_ns)
        out = min_ns;
    if (out > max_ns)
        out = max_ns;
    return out;
}

int at__wire_utf8_ok(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c == 0)
                return 0;
            i++;
            continue;
        }
        size_t k;
        uint32_t cp;
        if ((c & 0xe0) == 0xc0) {
            k = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        /* overlong forms, surrogates, beyond U+10FFFF */
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

_Static_assert(AT_WIRE_MAX_HIST == AT_WIRE_HIST_BUCKETS, "histogram limit = bucket count");

#define NAME_OF(table, v)                                                                          \
    ((v) >= 0 && (size_t)(v) < sizeof(table) / sizeof((table)[0]) ? (table)[v] : NULL)

const char *at_wire_task_state_name(int state)
{
    static const char *const names[] = {"ready", "running",   "waiting",
                                        "done",  "cancelled", "failed"};
    return NAME_OF(names, state);
}

const char *at_wire_wait_kind_name(int kind)
{
    static const char *const names[] = {
        "none", "future", "task",      "sleep",     "read",  "write",    "connect", "accept",
        "lock", "event",  "semaphore", "condition", "queue", "executor", "gather",  "other",
    };
    return NAME_OF(names, kind);
}

const char *at_wire_cb_kind_name(int kind)
{
    static const char *const names[] = {
        "other",  "timer",   "io", "idle", "prepare", "check",     "async",
        "signal", "process", "fs", "work", "close",   "task_step", "call_soon",
    };
    return NAME_OF(names, kind);
}

const char *at_wire_exc_kind_name(int kind)
{
    static const char *const names[] = {
        "warning",  "never_retrieved", "never_awaited", "destroyed_pending",
        "unclosed", "wrong_thread",    "unhandled",
    };
    return NAME_OF(names, kind);
}

const char *at_wire_status_name(int status)
{
    static const char *const names[] = {
        "ok",           "bad_frame",        "too_large",    "version",
        "permission",   "too_many_clients", "timeout",      "unknown_type",
        "shutdown",     "slow_consumer",    "internal",     "bad_request",
        "no_such_task", "unsupported",      "rate_limited",
    };
    return NAME_OF(names, status);
}

int at_wire_socket_dir(char *buf, size_t len)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (xdg != NULL && xdg[0] == '/')
        return snprintf(buf, len, "%s/asynctop", xdg);
    return snprintf(buf, len, "/tmp/asynctop-%lu", (unsigned long)geteuid());
}

int at_wire_socket_path(char *buf, size_t len, uint64_t pid)
{
    int n = at_wire_socket_dir(buf, len);
    if (n < 0 || (size_t)n >= len)
        return n;
    int m = snprintf(buf + n, len - (size_t)n, "/%llu.sock", (unsigned long long)pid);
    return m < 0 ? m : n + m;
}
