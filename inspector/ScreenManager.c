/* ScreenManager.c: the screen stack and the frame drawn around the current screen. */
#include "ScreenManager.h"

#include "CRT.h"
#include "Header.h"
#include "Prompt.h"
#include "Screens.h"

#include <assert.h>
#include <curses.h>
#include <stdio.h>
#include <string.h>

/* In ScreenId order (each class names its id; ScreenManager_init checks). */
const ScreenClass *const ScreenManager_classes[SCR_COUNT] = {
    &TasksScreen_class,      &TreeScreen_class,      &GroupsScreen_class, &SlowScreen_class,
    &ExceptionsScreen_class, &LoopScreen_class,      &DetailScreen_class, &GroupTasksScreen_class,
    &SlowDetailScreen_class, &ExcDetailScreen_class, &HelpScreen_class,   &PickScreen_class,
    &LoopsScreen_class,
};

void ScreenManager_init(ScreenManager *this)
{
    for (int i = 0; i < SCR_COUNT; i++) {
        assert(ScreenManager_classes[i]->id == (ScreenId)i);
        this->screens[i].cls = ScreenManager_classes[i];
        Panel_init(&this->screens[i].panel);
        this->screens[i].sel_id = 0;
    }
    this->tab = SCR_TASKS;
    this->depth = 0;
}

ScreenId ScreenManager_currentId(const ScreenManager *this)
{
    return this->depth ? this->stack[this->depth - 1] : (ScreenId)this->tab;
}

Screen *ScreenManager_current(ScreenManager *this)
{
    return &this->screens[ScreenManager_currentId(this)];
}

Screen *ScreenManager_screen(ScreenManager *this, ScreenId id)
{
    assert(id < SCR_COUNT);
    return &this->screens[id];
}

void ScreenManager_push(ScreenManager *this, ScreenId id)
{
    assert(id >= SCR_NTABS && id < SCR_COUNT);
    if (this->depth && this->stack[this->depth - 1] == id)
        return;
    if (this->depth < SCREENMANAGER_DEPTH)
        this->stack[this->depth++] = id;
    Panel_home(&this->screens[id].panel);
}

void ScreenManager_pop(ScreenManager *this)
{
    if (this->depth > 0)
        this->depth--;
}

void ScreenManager_setTab(ScreenManager *this, int tab)
{
    if (tab < 0 || tab >= SCR_NTABS)
        return;
    this->tab = tab;
    this->depth = 0;
}

void ScreenManager_popAll(ScreenManager *this)
{
    this->depth = 0;
}

static void draw_tabs(App *app, int y, int w)
{
    int x = 0;
    move(y, 0);
    clrtoeol();
    for (int i = 0; i < SCR_NTABS && x < w; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, " %d %s ", i + 1, ScreenManager_classes[i]->name);
        x += CRT_put(y, x, buf, w - x, CRT_colors[i == app->sm.tab ? C_TAB_ON : C_TAB], false);
    }
    ScreenId cur = ScreenManager_currentId(&app->sm);
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
    if (Prompt_draw(app, y, w))
        return;
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
    Screen *s = ScreenManager_current(&app->sm);
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
