/* HelpScreen.c: the key bindings, generated from Action's table, and the columns. */
#include "Action.h"
#include "CRT.h"
#include "Screens.h"
#include "TaskColumn.h"

#include <string.h>

static void help_draw(Screen *s, App *app, int y, int h, int w)
{
    static char lines[128][96];
    unsigned n = Action_helpLines(lines, 128);
    TextLines t;
    memset(&t, 0, sizeof t);
    TextLines_add(&t, CRT_colors[C_HEADER], "asynctop keys (Esc or ? to close)");
    for (unsigned i = 0; i < n; i++)
        TextLines_add(&t, CRT_colors[C_NORMAL], "  %s", lines[i]);
    TextLines_add(&t, CRT_colors[C_HEADER], "Task columns");
    for (int i = 0; i < TC_COUNT; i++)
        TextLines_add(&t, CRT_colors[C_NORMAL], "  %-11s %s", TaskColumn_info[i].title,
                      TaskColumn_info[i].description);
    TextLines_add(&t, CRT_colors[C_HEADER], "Header");
    TextLines_add(&t, CRT_colors[C_NORMAL],
                  "  loop: share of time in callbacks; lag p50/99: delay of the loop's timers");
    TextLines_add(&t, CRT_colors[C_NORMAL],
                  "  threshold: the slow-callback threshold the process reports in force");
    TextLines_add(&t, CRT_colors[C_NORMAL],
                  "  DROPPED: events the process had to drop (its rings were full)");
    TextLines_draw(&t, s, y, h, w);
    TextLines_free(&t);
}

const ScreenClass HelpScreen_class = {SCR_HELP, "Help", help_draw, NULL};
