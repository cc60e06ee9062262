/* wire_table.c: the layout of every v1 message as data — keys, types, struct offsets, required
 * keys — walked by the one encoder (wire_encode.c) and the one decoder (wire_decode.c). */
#include "at_wire.h"
#include "wire_internal.h"

#include <stddef.h>

/*
 * How to add a field (docs/protocol.md and docs/protocol.cddl first, then at_wire.h's struct):
 *  - A map key: one row in the map's table where the encoder should write it (table order; read
 *    in any order). W(key, type, flags, member) for a scalar or a text; WA(...) for an array with
 *    its uint32_t count; WX(...) for the rest (a presence bool `has`, a sub-table). WF_REQ:
 * decoding fails without it; WF_OMIT0: not encoded while 0/NULL/empty; a `has` bool is set when
 * decoded and decides whether it is encoded. A new key is optional unless the version is bumped.
 *  - A trailing row element: a row at the end of the row's table with WF_GEND (a group of one;
 *    a group of several ends at its last element), so older rows still decode.
 *  - A value no type fits (e.g. a nested structure of its own): WT_CUSTOM with a new WC_ value
 *    in wire_internal.h, and one function for it in enc_custom[] (wire_encode.c, writes the
 *    value) and one in dec_custom[] (wire_decode.c, reads the value); the walkers do the key,
 *    the presence rules and the required check.
 * The round-trip and golden tests (tests/wire) then cover the field once wire_samples.c sets it.
 */

/* clang-format off */
#define N(a)                             (uint8_t)(sizeof(a) / sizeof((a)[0]))
#define OFF(m)                           offsetof(S, m)
#define HAS(m)                           (1 + offsetof(S, m))
#define WX(k, t, fl, m, n_off, has, sub) {k, t, fl, 0, OFF(m), n_off, has, sub}
#define W(k, t, fl, m)                   WX(k, t, fl, m, 0, 0, NULL)
#define WA(k, t, fl, m, n, sub)          WX(k, t, fl, m, OFF(n), 0, sub)
#define R(t, m)                          W(NULL, t, 0, m)
#define TABLE(f, min)                    {sizeof(S), N(f), min, f}
/* clang-format on */

/* ---- rows ---- */
#define S at_wire_loc_t
static const at__wfield_t loc_f[] = {R(WT_U64, addr), R(WT_TEXTN, func), R(WT_TEXTN, file),
                                     R(WT_U32, line), W(NULL, WT_TEXTN, WF_GEND, build_id)};
static const at__wtable_t loc_row = TABLE(loc_f, 4);
#undef S
#define S at_wire_site_t
static const at__wfield_t site_f[] = {
    R(WT_U32, id),         R(WT_U64, loc.addr), R(WT_TEXTN, loc.func),
    R(WT_TEXTN, loc.file), R(WT_U32, loc.line), W(NULL, WT_TEXTN, WF_GEND, loc.build_id)};
static const at__wtable_t site_row = TABLE(site_f, 5);
#undef S
#define S at_wire_stack_t
static const at__wfield_t stack_f[] = {R(WT_U32, id), WA(NULL, WT_U32S, 0, sites, n_sites, NULL)};
static const at__wtable_t stack_row = TABLE(stack_f, 2);
#undef S
#define S at_wire_count_t
static const at__wfield_t count_f[] = {R(WT_TEXT, name), R(WT_U64, n)};
static const at__wtable_t count_row = TABLE(count_f, 2);
#undef S
#define S at_wire_task_t /* elements 4..9 uint64_t, 10..12 uint32_t: the codecs' task-row paths */
static const at__wfield_t task_f[] = {
    R(WT_U64, id),          R(WT_TEXTN, name),
    R(WT_U8, state),        R(WT_U8, wait_kind),
    R(WT_U64, wait_obj),    R(WT_U64, wait_since_us),
    R(WT_U64, busy_ns),     R(WT_U64, steps),
    R(WT_U64, parent),      R(WT_U64, created_us),
    R(WT_U32, create_site), R(WT_U32, entry_site),
    R(WT_U32, stack),       W(NULL, WT_TEXTN, WF_GEND, wait_desc)};
const at__wtable_t at__wire_task_row = TABLE(task_f, 13);
#undef S
#define S at_wire_site_stats_t
static const at__wfield_t site_stats_f[] = {
    R(WT_U32, site),   R(WT_U8, kind),
    R(WT_U64, count),  R(WT_U64, total_ns),
    R(WT_U64, max_ns), R(WT_U64, slow),
    R(WT_HIST, hist),  WX(NULL, WT_U64, WF_GEND, min_ns, 0, HAS(has_min), NULL)};
static const at__wtable_t site_stats_row = TABLE(site_stats_f, 7);
#undef S
#define S at_wire_inflight_t
static const at__wfield_t inflight_f[] = {R(WT_U64, id),   R(WT_TEXT, kind),    R(WT_TEXTN, name),
                                          R(WT_U64, task), R(WT_U64, start_us), R(WT_U32, stack)};
static const at__wtable_t inflight_row = TABLE(inflight_f, 6);
#undef S
/* [id, name, tid], then [thread, kind, addr], then the counters (has_stats), then running_ns */
#define S           at_wire_loop_info_t
#define STAT(m, fl) WX(NULL, WT_U64, fl, m, 0, HAS(has_stats), NULL)
static const at__wfield_t loop_f[] = {
    R(WT_U32, id),       R(WT_TEXTN, name),      R(WT_U64, tid),
    R(WT_TEXTN, thread), R(WT_TEXTN, kind),      W(NULL, WT_U64, WF_GEND, addr),
    STAT(busy_ns, 0),    STAT(idle_ns, 0),       STAT(callbacks, 0),
    STAT(slow, 0),       STAT(pending, WF_GEND), STAT(running_ns, WF_GEND)};
static const at__wtable_t loop_row = TABLE(loop_f, 3);
#undef STAT
#undef S
#define S at_wire_profile_stack_t
static const at__wfield_t pstack_f[] = {R(WT_U32, stack), R(WT_U32, count)};
static const at__wtable_t pstack_row = TABLE(pstack_f, 2);
#undef S
/* ---- maps inside messages ---- */
/* key `profile` of running and of a slow event; sent while samples != 0 */
#define S at_wire_profile_t
static const at__wfield_t profile_f[] = {
    W("samples", WT_U32, WF_REQ, samples), W("interval_ns", WT_U64, WF_REQ, interval_ns),
    W("other", WT_U32, WF_OMIT0, other), WA("stacks", WT_ROWS, 0, stacks, n_stacks, &pstack_row)};
static const at__wtable_t profile_map = TABLE(profile_f, 0);
#define PROFILE WX("profile", WT_MAP, WF_IF1ST, profile, 0, 0, &profile_map)
#undef S
#define S at_wire_config_t
static const at__wfield_t config_all_f[] = {
    WX("slow_ns", WT_U64, WF_REQ, slow_ns, 0, HAS(has_slow_ns), NULL),
    WX("debug", WT_BOOL, WF_REQ, debug, 0, HAS(has_debug), NULL)};
static const at__wtable_t config_all = TABLE(config_all_f, 0); /* hello, update: both keys */
static const at__wfield_t config_some_f[] = {
    WX("slow_ns", WT_U64, 0, slow_ns, 0, HAS(has_slow_ns), NULL),
    WX("debug", WT_BOOL, 0, debug, 0, HAS(has_debug), NULL)};
static const at__wtable_t config_some = TABLE(config_some_f, 0); /* requests, responses */
#undef S
#define S at_wire_loop_stats_t
/* tasks by state: a row of AT_WIRE_TASK_NSTATES counters */
static const at__wfield_t states_f[] = {R(WT_U64, tasks_by_state[0]), R(WT_U64, tasks_by_state[1]),
                                        R(WT_U64, tasks_by_state[2]), R(WT_U64, tasks_by_state[3]),
                                        R(WT_U64, tasks_by_state[4]), R(WT_U64, tasks_by_state[5])};
_Static_assert(AT_WIRE_TASK_NSTATES == 6, "one row element per task state");
static const at__wtable_t states_row = TABLE(states_f, AT_WIRE_TASK_NSTATES);
static const at__wfield_t exec_f[] = {
    W("queued", WT_U64, WF_REQ, exec_queued), W("running", WT_U64, WF_REQ, exec_running),
    W("threads", WT_U64, WF_REQ, exec_threads), W("done", WT_U64, WF_REQ, exec_done),
    W("wait_ns", WT_U64, WF_REQ, exec_wait_ns)};
static const at__wtable_t exec_map = TABLE(exec_f, 0);
static const at__wfield_t stats_f[] = {
    W("busy_ns", WT_U64, WF_REQ, busy_ns),
    W("idle_ns", WT_U64, WF_REQ, idle_ns),
    W("iterations", WT_U64, WF_REQ, iterations),
    W("callbacks", WT_U64, WF_REQ, callbacks),
    W("slow", WT_U64, WF_REQ, slow),
    W("errors", WT_U64, WF_REQ, errors),
    W("lag", WT_HIST, WF_REQ, lag),
    W("lag_max_ns", WT_U64, WF_OMIT0, lag_max_ns),
    {"tasks", WT_ROW, WF_REQ, 0, 0, 0, 0, &states_row}, /* tasks_by_state of this struct */
    WA("handles", WT_ROWS, WF_REQ, handles, n_handles, &count_row),
    {"exec", WT_MAP, WF_REQ, 0, 0, 0, 0, &exec_map}, /* exec_* of this same struct */
};
static const at__wtable_t stats_map = TABLE(stats_f, 0);
#undef S
#define S at_wire_running_t
static const at__wfield_t running_f[] = {W("since_ns", WT_U64, WF_REQ, since_ns),
                                         W("kind", WT_U8, WF_REQ, kind),
                                         W("site", WT_U32, WF_OMIT0, site),
                                         W("name", WT_TEXTN, WF_OMIT0, name),
                                         W("task", WT_U64, WF_OMIT0, task),
                                         W("stack", WT_U32, WF_OMIT0, stack),
                                         W("task_name", WT_TEXTN, WF_OMIT0, task_name),
                                         PROFILE};
static const at__wtable_t running_map = TABLE(running_f, 0);
#undef S
#define S at_wire_slow_t
static const at__wfield_t slow_f[] = {W("seq", WT_U64, WF_REQ, seq),
                                      W("start_ns", WT_U64, WF_REQ, start_ns),
                                      W("dur_ns", WT_U64, WF_REQ, dur_ns),
                                      W("kind", WT_U8, WF_REQ, kind),
                                      W("site", WT_U32, WF_OMIT0, site),
                                      W("name", WT_TEXTN, WF_OMIT0, name),
                                      W("task", WT_U64, WF_OMIT0, task),
                                      W("stack", WT_U32, WF_OMIT0, stack),
                                      W("sched_stack", WT_U32, WF_OMIT0, sched_stack),
                                      PROFILE};
static const at__wtable_t slow_map = TABLE(slow_f, 0);
#undef S
#define S at_wire_exc_t
static const at__wfield_t exc_f[] = {W("seq", WT_U64, WF_REQ, seq),
                                     W("time_ns", WT_U64, WF_REQ, time_ns),
                                     W("kind", WT_U8, WF_REQ, kind),
                                     W("message", WT_TEXT, WF_REQ, message),
                                     W("code", WT_I64, WF_OMIT0, code),
                                     W("domain", WT_TEXTN, WF_OMIT0, domain),
                                     W("object", WT_U64, WF_OMIT0, object),
                                     W("obj_type", WT_TEXTN, WF_OMIT0, obj_type),
                                     W("task", WT_U64, WF_OMIT0, task),
                                     W("raise_stack", WT_U32, WF_OMIT0, raise_stack),
                                     W("create_stack", WT_U32, WF_OMIT0, create_stack),
                                     W("severity", WT_TEXTN, WF_OMIT0, severity)};
static const at__wtable_t exc_map = TABLE(exc_f, 0);
#undef S
#define S at_wire_task_detail_t
static const at__wfield_t detail_f[] = {WX("task", WT_ROW, WF_REQ, task, 0, 0, &at__wire_task_row),
                                        W("wait_desc", WT_TEXTN, WF_OMIT0, wait_desc),
                                        WA("create", WT_ROWS, 0, create, n_create, &loc_row),
                                        WA("suspend", WT_ROWS, 0, suspend, n_suspend, &loc_row),
                                        WA("children", WT_U64S, 0, children, n_children, NULL),
                                        W("step_hist", WT_HIST, 0, step_hist),
                                        W("error", WT_TEXTN, WF_OMIT0, error)};
static const at__wtable_t detail_map = TABLE(detail_f, 0);
#undef S

/* ---- messages ---- */
#define S at_wire_hello_t
static const at__wfield_t hello_f[] = {W("pid", WT_U64, WF_REQ, pid),
                                       W("program", WT_TEXT, WF_REQ, program),
                                       WA("argv", WT_TEXTS, WF_REQ, argv, n_argv, NULL),
                                       W("runtime", WT_TEXT, WF_REQ, runtime_version),
                                       W("start_time_ns", WT_U64, WF_REQ, start_time_ns),
                                       W("now_ns", WT_U64, WF_REQ, now_ns),
                                       WX("config", WT_MAP, WF_REQ, config, 0, 0, &config_all),
                                       W("caps", WT_CAPS, WF_REQ, caps),
                                       WA("loops", WT_ROWS, WF_OMIT0, loops, n_loops, &loop_row)};
static const at__wtable_t hello_msg = TABLE(hello_f, 0);
#undef S
#define S at_wire_subscribe_t
static const at__wfield_t subscribe_f[] = {W("interval_ms", WT_U32, WF_REQ, interval_ms),
                                           W("what", WT_CAPS, WF_OMIT0, what),
                                           W("loop", WT_U32, WF_OMIT0, loop)};
static const at__wtable_t subscribe_msg = TABLE(subscribe_f, 0);
#undef S
#define S at_wire_update_t
static const at__wfield_t update_f[] = {
    W("seq", WT_U64, WF_REQ, seq),
    W("ts_ns", WT_U64, WF_REQ, ts_ns),
    W("full", WT_BOOL, WF_REQ, full),
    WX("config", WT_MAP, WF_REQ, config, 0, 0, &config_all),
    W("loop", WT_U32, WF_OMIT0, loop),
    WX("stats", WT_MAP, 0, stats, 0, HAS(has_stats), &stats_map),
    WX("running", WT_MAP, WF_NULL, running, 0, HAS(running.present), &running_map),
    WA("dropped", WT_ROWS, WF_OMIT0, dropped, n_dropped, &count_row),
    WA("sites", WT_ROWS, WF_OMIT0, sites, n_sites, &site_row),
    WA("stacks", WT_ROWS, WF_OMIT0, stacks, n_stacks, &stack_row),
    WA("tasks_new", WT_ROWS, WF_OMIT0, tasks_new, n_tasks_new, &at__wire_task_row),
    WA("tasks_changed", WT_ROWS, WF_OMIT0, tasks_changed, n_tasks_changed, &at__wire_task_row),
    WA("tasks_gone", WT_U64S, WF_OMIT0, tasks_gone, n_tasks_gone, NULL),
    WA("site_stats", WT_ROWS, WF_OMIT0, site_stats, n_site_stats, &site_stats_row),
    WA("slow", WT_MAPS, WF_OMIT0, slow, n_slow, &slow_map),
    WA("exc", WT_MAPS, WF_OMIT0, exc, n_exc, &exc_map),
    WA("inflight", WT_ROWS, WF_OMIT0, inflight, n_inflight, &inflight_row),
    WA("inflight_gone", WT_U64S, WF_OMIT0, inflight_gone, n_inflight_gone, NULL),
    WA("loops", WT_ROWS, WF_OMIT0, loops, n_loops, &loop_row),
    W("loop_gone", WT_BOOL, WF_OMIT0, loop_gone),
    WA("tasks_gone_state", WT_U64S, WF_OMIT0, tasks_gone_state, n_tasks_gone_state, NULL)};
static const at__wtable_t update_msg = TABLE(update_f, 0);
#undef S
#define OP                                                                                         \
    {                                                                                              \
        "op", WT_CUSTOM, WF_REQ, WC_OP, OFF(op), OFF(op_name), 0, NULL                             \
    }
#define S at_wire_request_t
static const at__wfield_t request_f[] = {
    W("id", WT_U64, WF_REQ, id), OP, W("task", WT_U64, WF_OMIT0, task),
    WX("config", WT_MAP, WF_OMIT0, config, 0, 0, &config_some), W("loop", WT_U32, WF_OMIT0, loop)};
static const at__wtable_t request_msg = TABLE(request_f, 0);
#undef S
#define S at_wire_response_t
static const at__wfield_t response_f[] = {
    W("id", WT_U64, WF_REQ, id),
    OP,
    W("status", WT_U32, WF_REQ, status),
    W("reason", WT_TEXTN, WF_OMIT0, reason),
    WX("detail", WT_MAP, 0, detail, 0, HAS(has_detail), &detail_map),
    WX("config", WT_MAP, 0, config, 0, HAS(has_config), &config_some),
    WX("stack", WT_ROWS, 0, stack, OFF(n_stack), HAS(has_stack), &loc_row),
    WX("running", WT_MAP, WF_NULL, running, 0, HAS(running.present), &running_map)};
static const at__wtable_t response_msg = TABLE(response_f, 0);
#undef S
#define S at_wire_error_t
static const at__wfield_t error_f[] = {W("code", WT_U32, WF_REQ, code),
                                       W("reason", WT_TEXT, WF_REQ, reason),
                                       W("fatal", WT_BOOL, WF_REQ, fatal)};
static const at__wtable_t error_msg = TABLE(error_f, 0);
#undef S
#define S at_wire_bye_t
static const at__wfield_t bye_f[] = {W("reason", WT_TEXTN, WF_OMIT0, reason)};
static const at__wtable_t bye_msg = TABLE(bye_f, 0);
#undef S

const at__wtable_t *const at__wire_msg_tables[8] = {
    NULL,         &hello_msg,    &subscribe_msg, &update_msg,
    &request_msg, &response_msg, &error_msg,     &bye_msg,
};

uint32_t at__wire_group_end(const at__wtable_t *t, uint32_t i)
{
    while (i < t->n && !(t->f[i].flags & WF_GEND))
        i++;
    return i < t->n ? i + 1 : t->n;
}

_Static_assert(offsetof(at_wire_hello_t, version) + offsetof(at_wire_subscribe_t, version) +
                       offsetof(at_wire_update_t, version) + offsetof(at_wire_request_t, version) +
                       offsetof(at_wire_response_t, version) + offsetof(at_wire_error_t, version) +
                       offsetof(at_wire_bye_t, version) ==
                   0,
               "the decoder sets every message's version at offset 0");
