/* ScreenManager.c: screen stack and the frame around every screen. */
#include "ScreenManager.h"

#include "CRT.h"
#include "Duration.h"
#include "Header.h"
#include "Screens.h"

#include <curses.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const ScreenClass *const ScreenManager_classes[SCR_COUNT] = {
    [SCR_TASKS] = &TasksScreen_class,
    [SCR_TREE] = &TreeScreen_class,
    [SCR_GROUPS] = &GroupsScreen_class,
    [SCR_SLOW] = &SlowScreen_class,
    [SCR_EXC] = &ExceptionsScreen_class,
    [SCR_LOOP] = &LoopScreen_class,
    [SCR_DETAIL] = &DetailScreen_class,
    [SCR_GROUP_TASKS] = &GroupTasksScreen_class,
    [SCR_SLOW_DETAIL] = &SlowDetailScreen_class,
    [SCR_EXC_DETAIL] = &ExcDetailScreen_class,
    [SCR_HELP] = &HelpScreen_class,
    [SCR_PICK] = &PickScreen_class,
    [SCR_LOOPS] = &LoopsScreen_class,
};

void ScreenManager_init(App *app)
{
    for (int i = 0; i < SCR_COUNT; i++) {
        app->screens[i].cls = ScreenManager_classes[i];
        Panel_init(&app->screens[i].panel);
        app->screens[i].sel_id = 0;
    }
}

ScreenId App_currentId(App *app)
{
    return app->depth ? app->stack[app->depth - 1] : (ScreenId)app->tab;
}

Screen *App_current(App *app)
{
    return &app->screens[App_currentId(app)];
}

void App_push(App *app, ScreenId id)
{
    if (app->depth && app->stack[app->depth - 1] == id)
        return;
    if (app->depth < (int)(sizeof app->stack / sizeof app->stack[0]))
        app->stack[app->depth++] = id;
    Panel_home(&app->screens[id].panel);
    app->dirty = true;
}

void App_pop(App *app)
{
    if (app->depth > 0)
        app->depth--;
    app->dirty = true;
}

void App_setTab(App *app, int tab)
{
    if (tab < 0 || tab >= SCR_NTABS)
        return;
    app->tab = tab;
    app->depth = 0;
    app->dirty = true;
}

void App_status(App *app, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(app->status, sizeof app->status, fmt, ap);
    va_end(ap);
    app->status_ms = App_now(app);
    app->dirty = true;
}

static void draw_tabs(App *app, int y, int w)
{
    int x = 0;
    move(y, 0);
    clrtoeol();
    for (int i = 0; i < SCR_NTABS && x < w; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, " %d %s ", i + 1, ScreenManager_classes[i]->name);
        x += CRT_put(y, x, buf, w - x, CRT_colors[i == app->tab ? C_TAB_ON : C_TAB], false);
    }
    ScreenId cur = App_currentId(app);
    if (cur >= SCR_NTABS && x + 3 < w) {
        char buf[64];
        snprintf(buf, sizeof buf, " > %s ", ScreenManager_classes[cur]->name);
        CRT_put(y, x, buf, w - x, CRT_colors[C_TAB_ON], false);
    }
}

static void draw_footer(App *app, int y, int w)
{
    char buf[300];
    move(y, 0);
    clrtoeol();
    switch (app->prompt) {
    case PROMPT_FILTER:
        snprintf(buf, sizeof buf, "Filter: %s", app->input);
        CRT_put(y, 0, buf, w, CRT_colors[C_PROMPT], true);
        curs_set(1);
        move(y, CRT_width(buf) < w ? CRT_width(buf) : w - 1);
        return;
    case PROMPT_THRESHOLD: {
        char d[32];
        snprintf(buf, sizeof buf, "Slow threshold (now %s; e.g. 50ms, 0.2s, 250): %s%s%s",
                 Duration_format(app->model.slow_threshold_ns, d, sizeof d), app->input,
                 app->prompt_error[0] ? "   <- " : "", app->prompt_error);
        CRT_put(y, 0, buf, w, CRT_colors[app->prompt_error[0] ? C_ERROR : C_PROMPT], true);
        return;
    }
    case PROMPT_CONFIRM_CANCEL: {
        Task *t = Model_findTask(&app->model, app->cancel_id);
        snprintf(buf, sizeof buf, "Cancel task %llu (%s)? y/N", (unsigned long long)app->cancel_id,
                 t ? t->name : "?");
        CRT_put(y, 0, buf, w, CRT_colors[C_WARN], true);
        return;
    }
    case PROMPT_NONE:
        break;
    }
    curs_set(0);
    if (app->status[0] && App_now(app) - app->status_ms < APP_STATUS_MS) {
        CRT_put(y, 0, app->status, w, CRT_colors[C_PROMPT], true);
        return;
    }
    static const char *const keys[][2] = {{"?", "Help"},      {"Tab", "Screens"},   {"/", "Filter"},
                                          {"<>", "Sort"},     {"+-t", "Threshold"}, {"d", "Debug"},
                                          {"Space", "Pause"}, {"Esc", "Back"},      {"q", "Quit"}};
    int x = 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0] && x < w; i++) {
        x += CRT_put(y, x, keys[i][0], w - x, CRT_colors[C_FKEY], false);
        snprintf(buf, sizeof buf, " %s ", keys[i][1]);
        x += CRT_put(y, x, buf, w - x, CRT_colors[C_NORMAL], false);
    }
}

void ScreenManager_render(App *app, int rows, int cols)
{
    int hh = Header_height(app);
    Header_draw(app, cols);
    int tabs_y = hh;
    draw_tabs(app, tabs_y, cols);
    int y = tabs_y + 1;
    int h = rows - y - 1;
    Screen *s = App_current(app);
    for (int i = y; i < rows - 1; i++) {
        move(i, 0);
        clrtoeol();
    }
    if (h > 0)
        s->cls->draw(s, app, y, h, cols);
    draw_footer(app, rows - 1, cols);
    app->redraws++;
}

void ScreenManager_draw(App *app)
{
    int rows, cols;
    getmaxyx(stdscr, rows, cols);
    if (rows < 6 || cols < 20) {
        erase();
        CRT_put(0, 0, "terminal too small", cols, A_BOLD, false);
        refresh();
        return;
    }
    ScreenManager_render(app, rows, cols);
    refresh();
}
