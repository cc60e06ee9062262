/* DetailScreen.c: the detail pages: a task, a slow callback, an exception. */
#include "Applier.h"
#include "CRT.h"
#include "Duration.h"
#include "FlameView.h"
#include "Screens.h"
#include "TaskColumn.h"

#include <curses.h>
#include <stdio.h>
#include <string.h>

const char *ExceptionsScreen_kindTitle(unsigned k);

/* A stack that only debug mode records (creation, scheduling): when there is none, says
 * what is true now: debug mode is off, or it is on but records this only for `what` after it
 * was turned on. */
static void debug_stack(TextLines *t, const Model *m, const Stack *st, const char *what)
{
    char none[160];
    if (m->debug)
        snprintf(none, sizeof none,
                 "(none recorded: debug mode records this only for %s after it was turned on)",
                 what);
    else
        snprintf(none, sizeof none, "(unknown: turn debug mode on with d)");
    TextLines_stack(t, st, none);
}

static void task_lines(App *app, TextLines *t, int w)
{
    Model *m = &app->model;
    Task *task = Model_findTask(m, m->detail_id);
    char d1[32], d2[32], d3[32];
    if (!task) {
        TextLines_add(t, CRT_colors[C_DIM], "task %llu is gone", (unsigned long long)m->detail_id);
        return;
    }
    TextLines_add(t, CRT_colors[C_HEADER], "Task %llu  %s  [%s]%s", (unsigned long long)task->id,
                  task->name, TaskState_name(task->state), task->gone_ms ? "  (finished)" : "");
    /* The line is the latest update's. The detail's description (an older answer, refreshed
     * less often) is added only when the update carries no words of the runtime's own (just
     * "kind #obj") and the task still waits: a description such as "sleep 0.603 s" changes
     * with every update, and an older copy beside it would contradict it. */
    bool add_detail = !task->waits_described && task->waits_on[0] && m->detail_wait &&
                      m->detail_wait[0] && strcmp(m->detail_wait, task->waits_on) != 0;
    TextLines_add(t, CRT_colors[C_NORMAL], "  waits on   %s%s%s%s",
                  task->waits_on[0] ? task->waits_on : "-", add_detail ? "  (" : "",
                  add_detail ? m->detail_wait : "", add_detail ? ")" : "");
    TextLines_add(t, CRT_colors[C_NORMAL], "  waiting    %-10s age %-10s busy %-10s steps %llu",
                  Duration_format(Task_waitingNs(task, m), d1, sizeof d1),
                  Duration_format(Task_ageNs(task, m), d2, sizeof d2),
                  Duration_format(task->busy_ns, d3, sizeof d3), (unsigned long long)task->steps);
    Task *parent = Model_findTask(m, task->parent);
    if (task->parent)
        TextLines_add(t, CRT_colors[C_NORMAL], "  parent     %llu %s",
                      (unsigned long long)task->parent, parent ? parent->name : "(gone)");
    else
        TextLines_add(t, CRT_colors[C_NORMAL], "  parent     -");
    /* children: from the detail response, else from the mirror */
    char kids[400];
    size_t o = 0;
    uint32_t nk = 0;
    kids[0] = '\0';
    if (m->detail_ready && m->detail_nchildren) {
        for (uint32_t i = 0; i < m->detail_nchildren; i++, nk++) {
            Task *c = Model_findTask(m, m->detail_children[i]);
            if (o < sizeof kids - 40)
                o += (size_t)snprintf(kids + o, sizeof kids - o, "%s%llu %s", nk ? ", " : "",
                                      (unsigned long long)m->detail_children[i], c ? c->name : "");
        }
    } else {
        for (uint32_t i = 0; i < m->ntasks; i++) {
            Task *c = m->tasks[i];
            if (c->parent != task->id)
                continue;
            if (o < sizeof kids - 40)
                o += (size_t)snprintf(kids + o, sizeof kids - o, "%s%llu %s", nk ? ", " : "",
                                      (unsigned long long)c->id, c->name);
            nk++;
        }
    }
    TextLines_add(t, CRT_colors[C_NORMAL], "  children   %u%s%s", nk, nk ? ": " : "", kids);
    TextLines_add(t, CRT_colors[C_NORMAL], "  created at %s", task->created_at);
    if (m->detail_error && m->detail_error[0])
        TextLines_add(t, CRT_colors[C_ERROR], "  error      %s", m->detail_error);
    if (!m->detail_ready) {
        TextLines_add(t, CRT_colors[C_DIM], "  (asking the process for stacks...)");
        return;
    }
    if (m->detail_status) {
        TextLines_add(t, CRT_colors[C_ERROR], "  the process could not give the detail: %s",
                      m->detail_status);
        return;
    }
    TextLines_add(t, CRT_colors[C_HEADER], "Suspended at (innermost first)");
    TextLines_stack(t, &m->detail_suspend, "(not suspended, or no stack available)");
    TextLines_add(t, CRT_colors[C_HEADER], "Created from");
    debug_stack(t, m, &m->detail_create, "tasks created");
    TextLines_add(t, CRT_colors[C_HEADER], "Step durations");
    TextLines_hist(t, m->detail_hist, MODEL_HIST_BUCKETS, w);
    TextLines_add(t, CRT_colors[C_DIM], "c: cancel this task   Esc: back");
}

static void detail_draw(Screen *s, App *app, int y, int h, int w)
{
    TextLines_page(s, app, y, h, w, task_lines);
}

const ScreenClass DetailScreen_class = {SCR_DETAIL, "Task detail", detail_draw, NULL};

/* An event's two stacks under their titles: where it happened (`none` when empty), and where
 * it was made (debug mode's; `what` says what debug mode records it for). */
static void event_stacks(TextLines *t, const Model *m, const char *title, const Stack *st,
                         const char *none, const char *from_title, const Stack *from,
                         const char *what)
{
    TextLines_add(t, CRT_colors[C_HEADER], "%s", title);
    TextLines_stack(t, st, none);
    TextLines_add(t, CRT_colors[C_HEADER], "%s", from_title);
    debug_stack(t, m, from, what);
}

/* Event number index (counted from the first ever, as Model.nslow/nexc) of a ring of cap
 * events holding the newest n: its slot, or -1 when it is no longer held (then t says so). */
static int64_t held_slot(TextLines *t, uint64_t index, uint64_t n, uint64_t cap)
{
    if (index < n && n - index <= cap)
        return (int64_t)(index % cap);
    TextLines_add(t, CRT_colors[C_DIM], "this event is no longer held");
    return -1;
}

static void slow_lines(App *app, TextLines *t, int w)
{
    Model *m = &app->model;
    char when[32], d[32];
    int64_t k = held_slot(t, app->slow_index, m->nslow, MODEL_MAX_SLOW);
    if (k < 0)
        return;
    const SlowEvent *e = &m->slow[k];
    Screens_clock(m, e->when_ns, when, sizeof when);
    TextLines_add(t, CRT_colors[C_HEADER], "Slow callback %s  ran %s", e->callback,
                  Duration_format(e->duration_ns, d, sizeof d));
    TextLines_add(t, CRT_colors[C_NORMAL], "  at         %s", when);
    TextLines_add(t, CRT_colors[C_NORMAL], "  task       %s", e->task_name[0] ? e->task_name : "-");
    TextLines_add(t, CRT_colors[C_NORMAL], "  call site  %s", e->site);
    TextLines_add(t, CRT_colors[C_HEADER], "Where the time went (profile while it blocked)");
    FlameView_lines(t, e->profile, w, "(no profile: it finished before the watchdog looked)");
    event_stacks(t, m, "Stack sampled while it was blocking", &e->stack,
                 "(no sample: it finished before the watchdog looked)", "Scheduled from",
                 &e->scheduled_from, "callbacks scheduled");
}

static void slow_draw(Screen *s, App *app, int y, int h, int w)
{
    TextLines_page(s, app, y, h, w, slow_lines);
}

const ScreenClass SlowDetailScreen_class = {SCR_SLOW_DETAIL, "Slow callback", slow_draw, NULL};

static void exc_lines(App *app, TextLines *t, int w)
{
    Model *m = &app->model;
    int64_t k = held_slot(t, app->exc_index, m->nexc, MODEL_MAX_EXC);
    if (k < 0)
        return;
    const ExcEvent *e = &m->exc[k];
    char when[32];
    Screens_clock(m, e->when_ns, when, sizeof when);
    char err[MODEL_MAX_STR + 96];
    ExceptionsScreen_errorText(e, err, sizeof err);
    TextLines_add(t, CRT_colors[C_ERROR], "%s%s%s  [%s]", ExceptionsScreen_kindTitle(e->kind),
                  err[0] ? ": " : "", err, e->severity);
    /* every line of the message, wrapped to the screen */
    TextLines_wrap(t, CRT_colors[C_NORMAL], "  message    ", e->message, w);
    TextLines_add(t, CRT_colors[C_NORMAL], "  at         %s", when);
    TextLines_add(t, CRT_colors[C_NORMAL], "  object     %s", e->object[0] ? e->object : "-");
    if (e->task_id) {
        Task *task = Model_findTask(m, e->task_id);
        TextLines_add(t, CRT_colors[C_NORMAL], "  task       %llu %s",
                      (unsigned long long)e->task_id, task ? task->name : "");
    }
    event_stacks(t, m, "Raised at", &e->raised, "(no stack)", "Created from", &e->stack,
                 "objects created");
}

static void exc_draw(Screen *s, App *app, int y, int h, int w)
{
    TextLines_page(s, app, y, h, w, exc_lines);
}

const ScreenClass ExcDetailScreen_class = {SCR_EXC_DETAIL, "Exception", exc_draw, NULL};
