/* ExceptionsScreen.c: never-retrieved errors, never-awaited coroutines, tasks
 * destroyed pending, unclosed resources, wrong-thread calls. */
#include "CRT.h"
#include "Duration.h"
#include "Screens.h"

#include <stdio.h>
#include <string.h>

static const char *const kind_titles[EXC_COUNT] = {
    "warning",  "never retrieved", "never awaited", "destroyed pending",
    "unclosed", "wrong thread",    "unhandled"};

const char *ExceptionsScreen_kindTitle(unsigned k);
const char *ExceptionsScreen_kindTitle(unsigned k)
{
    return k < EXC_COUNT ? kind_titles[k] : "?";
}

typedef struct Ctx {
    App *app;
    int w;
} Ctx;

static void draw_row(void *arg, uint32_t i, int y, bool sel)
{
    Ctx *c = arg;
    const Model *m = &c->app->model;
    const ExcEvent *e = Model_excAt(m, i);
    if (!e)
        return;
    char age[32];
    Duration_format(m->now_ns > e->when_ns ? m->now_ns - e->when_ns : 0, age, sizeof age);
    const char *cells[] = {age, kind_titles[e->kind], e->error, e->message, e->site};
    int widths[] = {7, 17, 10, 34, 0};
    bool right[] = {true, false, false, false, false};
    Table_row(y, c->w, 5, cells, widths, right,
              sel ? CRT_colors[C_SELECTED]
                  : (e->kind == EXC_WARNING ? CRT_colors[C_WARN] : CRT_colors[C_ERROR]));
}

static void exc_draw(Screen *s, App *app, int y, int h, int w)
{
    Model *m = &app->model;
    uint64_t n = Model_excCount(m);
    Panel_setCount(&s->panel, (uint32_t)n);
    char info[300];
    size_t o = (size_t)snprintf(info, sizeof info, "%llu events:", (unsigned long long)m->nexc);
    for (unsigned k = 0; k < EXC_COUNT && o < sizeof info; k++)
        if (m->exc_by_kind[k])
            o += (size_t)snprintf(info + o, sizeof info - o, "  %s %llu", kind_titles[k],
                                  (unsigned long long)m->exc_by_kind[k]);
    CRT_put(y, 0, info, w, CRT_colors[C_DIM], true);
    const char *titles[] = {"AGE", "KIND", "ERROR", "MESSAGE", "RAISED AT"};
    int widths[] = {7, 17, 10, 34, 0};
    bool right[] = {true, false, false, false, false};
    Table_head(y + 1, w, 5, titles, widths, right, -1, false);
    if (!n) {
        CRT_put(y + 2, 1, "no exceptions or warnings", w - 1, CRT_colors[C_DIM], false);
        return;
    }
    Ctx c = {app, w};
    Panel_draw(&s->panel, y + 2, h - 2, draw_row, &c);
}

static Reaction exc_enter(Screen *s, App *app)
{
    if (s->panel.selected >= Model_excCount(&app->model))
        return R_HANDLED;
    app->exc_index = app->model.nexc - 1 - s->panel.selected;
    App_push(app, SCR_EXC_DETAIL);
    return R_HANDLED | R_REDRAW;
}

const ScreenClass ExceptionsScreen_class = {SCR_EXC, "Exceptions", exc_draw, exc_enter};
