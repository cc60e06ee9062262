/* Header.c: the header lines and the BLOCKED banner (see Header.h). */
#include "Header.h"

#include "CRT.h"
#include "Duration.h"

#include <curses.h>
#include <stdio.h>
#include <string.h>

void Header_rate(double v, char *buf, size_t len)
{
    if (v < 1000)
        snprintf(buf, len, "%.0f", v);
    else if (v < 1e6)
        snprintf(buf, len, "%.1fk", v / 1e3);
    else
        snprintf(buf, len, "%.1fM", v / 1e6);
}

void Header_seconds(uint64_t ns, char *buf, size_t len)
{
    snprintf(buf, len, "%llu.%llu s", (unsigned long long)(ns / 1000000000ull),
             (unsigned long long)(ns / 100000000ull % 10));
}

uint64_t Header_blockedNs(App *app)
{
    const Model *m = &app->model;
    return m->blocked ? m->blocked_for_ns : 0;
}

uint64_t Header_blockedAgeMs(App *app)
{
    const Model *m = &app->model;
    uint64_t now = App_now(app);
    return m->blocked && now > m->blocked_local_ms ? now - m->blocked_local_ms : 0;
}

bool Header_showsLoop(App *app)
{
    const Model *m = &app->model;
    return m->loops_seen >= 2 || m->loop_id != 0;
}

int Header_height(App *app)
{
    return 3 + Header_showsLoop(app); /* the banner's line is always there: rows never move */
}

/* "loop 2/3 (thread 4251 'worker', uv loop 0x7f..)   [ ] other loops  L list": which loop
 * the screens show, when the process has more than one. */
static void loop_line(App *app, int y, int w)
{
    const Model *m = &app->model;
    char buf[256], what[160];
    const LoopInfo *l = Model_loop(m, m->loop_id);
    if (l)
        LoopInfo_describe(l, what, sizeof what);
    else
        snprintf(what, sizeof what, "%s", m->loop_id == 0 ? "main" : "?");
    uint32_t pos = Model_loopPosition(m, m->loop_id), n = Model_liveLoops(m);
    int x = 0;
    if (m->loop_gone || (l && l->gone))
        snprintf(buf, sizeof buf, "loop %u CLOSED (%s); %u left", m->loop_id, what, n);
    else if (pos)
        snprintf(buf, sizeof buf, "loop %u/%u (%s)", pos, n, what);
    else
        snprintf(buf, sizeof buf, "loop %u (%s)", m->loop_id, what);
    x += CRT_put(y, x, buf, w - x, CRT_colors[m->loop_gone ? C_WARN : C_HEADER], false);
    /* another loop stuck in one callback: worth knowing whichever loop is shown */
    for (uint32_t i = 0; i < m->nloops && x < w; i++) {
        const LoopInfo *o = &m->loops[i];
        if (o->id == m->loop_id || !LoopInfo_blocked(o, m))
            continue;
        char secs[32];
        Header_seconds(o->running_ns, secs, sizeof secs);
        snprintf(buf, sizeof buf, "  loop %u BLOCKED %s", o->id, secs);
        x += CRT_put(y, x, buf, w - x, CRT_colors[C_WARN], false);
    }
    if (x < w) {
        snprintf(buf, sizeof buf, "  id %u   [ ] other loops  L list", m->loop_id);
        CRT_put(y, x, buf, w - x, CRT_colors[C_DIM], false);
    }
}

/* Writes label then value, advancing *x; stops at w. */
static void field(int y, int *x, int w, const char *label, const char *value, int vattr)
{
    if (*x >= w)
        return;
    if (label && label[0])
        *x += CRT_put(y, *x, label, w - *x, CRT_colors[C_LABEL], false);
    if (*x < w)
        *x += CRT_put(y, *x, value, w - *x, vattr, false);
    if (*x < w)
        *x += CRT_put(y, *x, "  ", w - *x, CRT_colors[C_NORMAL], false);
}

static const char *conn_text(App *app, int *attr)
{
    *attr = CRT_colors[C_OK];
    switch (app->model.conn) {
    case CONN_LIVE:
        return "live";
    case CONN_PAUSED:
        *attr = CRT_colors[C_WARN];
        return "PAUSED";
    case CONN_CONNECTING:
        return "connecting";
    case CONN_EXITED:
        *attr = CRT_colors[C_ERROR];
        return "EXITED";
    case CONN_LOST:
        *attr = CRT_colors[C_ERROR];
        return "DISCONNECTED";
    case CONN_NONE:
        break;
    }
    return "-";
}

/* The header while picking a process: no process is attached, so nothing of the model (it
 * holds only placeholders); what is known of the highlighted process instead. */
static void pick_header(App *app, int w)
{
    char buf[200], up[32];
    int x = 0;
    for (int y = 0; y < Header_height(app); y++) {
        move(y, 0);
        clrtoeol();
    }
    snprintf(buf, sizeof buf, "asynctop  %zu process%s to attach to", app->picker.n,
             app->picker.n == 1 ? "" : "es");
    CRT_put(0, 0, buf, w, CRT_colors[C_HEADER], false);
    const Panel *p = &app->sm.screens[SCR_PICK].panel;
    if (p->selected >= app->picker.n)
        return;
    const PickEntry *e = &app->picker.entries[p->selected];
    if (!e->answered) {
        snprintf(buf, sizeof buf, "pid %llu (%s): %s", (unsigned long long)e->target.pid,
                 e->target.comm[0] ? e->target.comm : "?",
                 e->probing   ? "asking..."
                 : e->note[0] ? e->note
                              : "no answer");
        CRT_put(1, 0, buf, w, CRT_colors[C_DIM], false);
        return;
    }
    snprintf(buf, sizeof buf, "%s[%llu]", e->program[0] ? e->program : e->target.comm,
             (unsigned long long)e->target.pid);
    x += CRT_put(1, x, buf, w - x, CRT_colors[C_HEADER], false);
    field(1, &x, w, "  up ", Duration_format(e->uptime_ns, up, sizeof up), CRT_colors[C_HEADER]);
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)e->tasks);
    field(1, &x, w, "tasks ", buf, CRT_colors[C_HEADER]);
}

void Header_draw(App *app, int w)
{
    Model *m = &app->model;
    char buf[160], d1[32], d2[32];
    int x = 0, attr;
    if (ScreenManager_currentId(&app->sm) == SCR_PICK) {
        pick_header(app, w);
        return;
    }
    move(0, 0);
    clrtoeol();
    move(1, 0);
    clrtoeol();
    snprintf(buf, sizeof buf, "%s[%llu]", m->program, (unsigned long long)m->pid);
    x += CRT_put(0, x, buf, w - x, CRT_colors[C_HEADER], false);
    x += CRT_put(0, x, "  ", w - x, CRT_colors[C_NORMAL], false);
    const char *ct = conn_text(app, &attr);
    field(0, &x, w, "", ct, attr);
    uint64_t up = m->now_ns;
    if (m->conn == CONN_LIVE && App_now(app) > m->now_local_ms && m->now_local_ms)
        up += (App_now(app) - m->now_local_ms) * 1000000ull;
    snprintf(buf, sizeof buf, "%s",
             Duration_format(up < 60000000000ull ? up : up / 1000000000ull * 1000000000ull, d1,
                             sizeof d1));
    field(0, &x, w, "up ", buf, CRT_colors[C_HEADER]);
    snprintf(buf, sizeof buf, "%.0f%%", m->loop.utilisation * 100);
    field(0, &x, w, "loop ", buf, CRT_colors[m->loop.utilisation > 0.9 ? C_WARN : C_HEADER]);
    Header_rate(m->loop.callbacks_per_s, d1, sizeof d1);
    snprintf(buf, sizeof buf, "%s cb/s", d1);
    field(0, &x, w, "", buf, CRT_colors[C_HEADER]);
    snprintf(buf, sizeof buf, "%s/%s", Duration_format(m->loop.lag_p50_ns, d1, sizeof d1),
             Duration_format(m->loop.lag_p99_ns, d2, sizeof d2));
    field(0, &x, w, "lag p50/99 ", buf, CRT_colors[C_HEADER]);

    /* line 2: tasks, slow, threshold, debug, dropped */
    x = 0;
    uint64_t total = 0, st[TS_COUNT];
    for (int i = 0; i < TS_COUNT; i++) {
        st[i] = m->loop.has_tasks_by_state ? m->loop.tasks_by_state[i] : m->by_state[i];
        if (i < TS_DONE || i == TS_OTHER)
            total += st[i];
    }
    if (Model_showsRequests(m)) {
        /* a libuv loop under the shim: its pending rows are requests, all waiting */
        snprintf(buf, sizeof buf, "%llu in flight", (unsigned long long)total);
        field(1, &x, w, "requests ", buf, CRT_colors[C_HEADER]);
    } else {
        snprintf(buf, sizeof buf, "%llu: %llu run %llu ready %llu wait", (unsigned long long)total,
                 (unsigned long long)st[TS_RUNNING], (unsigned long long)st[TS_READY],
                 (unsigned long long)st[TS_WAITING]);
        field(1, &x, w, "tasks ", buf, CRT_colors[C_HEADER]);
    }
    uint64_t slow = m->loop.slow_total > m->nslow ? m->loop.slow_total : m->nslow;
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)slow);
    field(1, &x, w, "slow ", buf, CRT_colors[slow ? C_WARN : C_HEADER]);
    field(1, &x, w, "threshold ", Duration_format(m->slow_threshold_ns, d1, sizeof d1),
          CRT_colors[C_HEADER]);
    uint64_t dropped = Model_droppedTotal(m);
    if (dropped || m->missed) {
        size_t o = 0;
        buf[0] = '\0';
        for (uint32_t i = 0; i < m->ndropped && o < sizeof buf - 1; i++) {
            if (!m->dropped[i].value)
                continue;
            int k = snprintf(buf + o, sizeof buf - o, "%s%s %llu", o ? ", " : "",
                             m->dropped[i].name, (unsigned long long)m->dropped[i].value);
            if (k < 0)
                break;
            o += (size_t)k;
        }
        if (m->missed && o < sizeof buf - 1)
            snprintf(buf + o, sizeof buf - o, "%smissed %llu", o ? ", " : "",
                     (unsigned long long)m->missed);
        field(1, &x, w, "DROPPED ", buf, CRT_colors[C_WARN]);
    }
    if (m->rejected) {
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)m->rejected);
        field(1, &x, w, "rejected ", buf, CRT_colors[C_WARN]);
    }
    field(1, &x, w, "debug ", m->debug ? "on" : "off", CRT_colors[C_HEADER]);
    int by = 2;
    if (Header_showsLoop(app)) {
        move(2, 0);
        clrtoeol();
        loop_line(app, 2, w);
        by = 3;
    }
    move(by, 0);
    clrtoeol();
    if (m->blocked) {
        /* what the process reported, cut (not rounded) to 0.1 s so it never reads more than
         * was true then, and how old that report is */
        uint64_t ns = Header_blockedNs(app), age = Header_blockedAgeMs(app);
        char secs[32], as_of[48];
        Header_seconds(ns, secs, sizeof secs);
        if (m->blocked_task && m->blocked_task[0])
            snprintf(buf, sizeof buf, " BLOCKED %s in %s (task %s) ", secs, m->blocked_callback,
                     m->blocked_task);
        else
            snprintf(buf, sizeof buf, " BLOCKED %s in %s ", secs, m->blocked_callback);
        x = CRT_put(by, 0, buf, w, CRT_colors[C_BANNER], false);
        snprintf(as_of, sizeof as_of, " as of %llu.%llu s ago", (unsigned long long)(age / 1000),
                 (unsigned long long)(age / 100 % 10));
        if (x < w)
            CRT_put(by, x, as_of, w - x, CRT_colors[C_DIM], false);
    }
}
