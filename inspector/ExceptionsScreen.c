/* ExceptionsScreen.c: never-retrieved errors, never-awaited coroutines, tasks
 * destroyed pending, unclosed resources, wrong-thread calls. */
#include "CRT.h"
#include "Duration.h"
#include "Screens.h"

#include <assert.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

static const char *const kind_titles[EXC_COUNT] = {
    "warning",  "never retrieved", "never awaited", "destroyed pending",
    "unclosed", "wrong thread",    "unhandled"};

const char *ExceptionsScreen_kindTitle(unsigned k);
const char *ExceptionsScreen_kindTitle(unsigned k)
{
    return k < EXC_COUNT ? kind_titles[k] : "?";
}

/* The start of the line after the one at s, or NULL. */
static const char *next_line(const char *s)
{
    const char *nl = strchr(s, '\n');
    return nl ? nl + 1 : NULL;
}

void ExceptionsScreen_summary(const char *message, char *buf, size_t len)
{
    assert(len > 0);
    /* the error's own line: "error: ECONNREFUSED (...): ..." in the runtime's task reports */
    const char *own = NULL;
    for (const char *l = message; l && *l; l = next_line(l))
        if (!strncmp(l, "error: ", 7)) {
            own = l;
            break;
        }
    size_t o = 0;
    buf[0] = '\0';
    if (own) {
        size_t n = strcspn(own + 7, "\n");
        o = (size_t)snprintf(buf, len, "%.*s", (int)n, own + 7);
    }
    /* then every other non-empty line, in order; a title that restates the KIND column
     * ("Future exception was never retrieved: ") is left out of the first */
    for (const char *l = message; l && *l && o < len; l = next_line(l)) {
        size_t n = strcspn(l, "\n");
        if (l == own || n == 0)
            continue;
        const char *t = l == message ? strstr(l, " was never retrieved: ") : NULL;
        if (t && (size_t)(t - l) < n) {
            size_t skip = (size_t)(t - l) + strlen(" was never retrieved: ");
            l += skip;
            n -= skip;
        }
        /* a line break, shown by the sanitiser as a visible separator */
        o += (size_t)snprintf(buf + o, len - o, "%s%.*s", o ? " \n " : "", (int)n, l);
    }
}

void ExceptionsScreen_codeName(const ExcEvent *e, char *buf, size_t len)
{
    assert(len > 0);
    const char *d = e->domain;
    buf[0] = '\0';
    if (e->code < 0 && e->code > INT_MIN &&
        (!strcmp(d, "asynctop") || !strcmp(d, "uv") || !strcmp(d, "errno"))) {
        uv_err_name_r((int)e->code, buf, len);
        if (!strncmp(buf, "Unknown", 7)) /* "Unknown system error -5001" */
            buf[0] = '\0';
    }
}

void ExceptionsScreen_errorText(const ExcEvent *e, char *buf, size_t len)
{
    assert(len > 0);
    const char *d = e->domain;
    char name[64];
    ExceptionsScreen_codeName(e, name, sizeof name);
    if (d[0] && e->code && name[0])
        snprintf(buf, len, "%s %s (%" PRId64 ")", d, name, e->code);
    else if (d[0] && e->code)
        snprintf(buf, len, "%s %" PRId64, d, e->code);
    else if (d[0])
        snprintf(buf, len, "%s", d);
    else if (e->code)
        snprintf(buf, len, "code %" PRId64, e->code);
    else
        buf[0] = '\0';
}

#define NCOLS       5
#define COL_MESSAGE 3
static const TableColumn columns[NCOLS] = {{"AGE", 7, true},
                                           {"KIND", 17, false},
                                           {"SEVERITY", 8, false},
                                           {"MESSAGE", 0, false}, /* message_width */
                                           {"RAISED AT", 0, false}};

/* MESSAGE takes what AGE, KIND and SEVERITY leave, but a third of it (at most 40 columns) for
 * RAISED AT. */
static int message_width(int w)
{
    int rest = w - (7 + 1 + 17 + 1 + 8 + 1);
    int raised = rest / 3 < 40 ? rest / 3 : 40;
    return rest - raised - 1 > 20 ? rest - raised - 1 : 20;
}

static void draw_row(const ListScreen *ls, uint32_t i, int y, bool sel)
{
    const Model *m = &ls->app->model;
    const ExcEvent *e = Model_excAt(m, i);
    if (!e)
        return;
    char age[32];
    Duration_format(m->now_ns > e->when_ns ? m->now_ns - e->when_ns : 0, age, sizeof age);
    char msg[MODEL_MAX_STR + 64], err[MODEL_MAX_STR + 96], name[64];
    ExceptionsScreen_summary(e->message, msg, sizeof msg);
    ExceptionsScreen_errorText(e, err, sizeof err);
    ExceptionsScreen_codeName(e, name, sizeof name);
    /* the error's domain and code lead its message, unless the message's first words already
     * name it (the runtime's "ECONNREFUSED (asynctop): ...") */
    size_t nl = strlen(name);
    if (err[0] && !(nl && !strncmp(msg, name, nl) && (msg[nl] == ' ' || msg[nl] == '\0'))) {
        char with[sizeof msg + sizeof err];
        snprintf(with, sizeof with, "%s: %s", err, msg);
        snprintf(msg, sizeof msg, "%s", with);
    }
    const char *cells[] = {age, kind_titles[e->kind], e->severity, msg, e->site};
    ListScreen_row(ls, y, cells,
                   sel ? CRT_colors[C_SELECTED]
                       : (e->kind == EXC_WARNING ? CRT_colors[C_WARN] : CRT_colors[C_ERROR]));
}

static void exc_draw(Screen *s, App *app, int y, int h, int w)
{
    Model *m = &app->model;
    uint64_t n = Model_excCount(m);
    char info[300];
    size_t o = (size_t)snprintf(info, sizeof info, "%llu events:", (unsigned long long)m->nexc);
    for (unsigned k = 0; k < EXC_COUNT && o < sizeof info; k++)
        if (m->exc_by_kind[k])
            o += (size_t)snprintf(info + o, sizeof info - o, "  %s %llu", kind_titles[k],
                                  (unsigned long long)m->exc_by_kind[k]);
    TableColumn cols[NCOLS];
    memcpy(cols, columns, sizeof cols);
    cols[COL_MESSAGE].width = message_width(w);
    ListScreen ls = {app, w, cols, NCOLS, draw_row};
    ListScreen_draw(&ls, s, y, h, info, (uint32_t)n, "no exceptions or warnings");
}

static Reaction exc_enter(Screen *s, App *app)
{
    if (s->panel.selected >= Model_excCount(&app->model))
        return R_HANDLED;
    app->exc_index = app->model.nexc - 1 - s->panel.selected;
    ScreenManager_push(&app->sm, SCR_EXC_DETAIL);
    return R_HANDLED | R_REDRAW;
}

const ScreenClass ExceptionsScreen_class = {SCR_EXC, "Exceptions", exc_draw, exc_enter};
