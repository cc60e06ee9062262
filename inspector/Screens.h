/* Screens.h: the class of every screen (one module each) and the helpers they share: text
 * pages (TextLines.c), tables and list screens (ListScreen.c). */
#ifndef ASYNCTOP_SCREENS_H
#define ASYNCTOP_SCREENS_H

#include "App.h"

extern const ScreenClass TasksScreen_class;
extern const ScreenClass GroupTasksScreen_class;
extern const ScreenClass TreeScreen_class;
extern const ScreenClass GroupsScreen_class;
extern const ScreenClass SlowScreen_class;
extern const ScreenClass ExceptionsScreen_class;
extern const ScreenClass LoopScreen_class;
extern const ScreenClass DetailScreen_class;
extern const ScreenClass SlowDetailScreen_class;
extern const ScreenClass ExcDetailScreen_class;
extern const ScreenClass HelpScreen_class;
extern const ScreenClass PickScreen_class;
extern const ScreenClass LoopsScreen_class;

/* The current task list's view brought up to date with the model now (rebuilt if the model,
 * filter or sort changed since the last draw, the cursor kept on its task), so a key handler
 * never reads rows of an older build (they may point at purged tasks). NULL when the current
 * screen is not a task list. */
TaskView *TasksScreen_view(App *app);
/* The task view that sort and filter keys change: the group's on the Group-tasks screen, else
 * the Tasks screen's (as it is: the next draw rebuilds it). */
TaskView *TasksScreen_keyView(App *app);

/* A scrollable page of text lines (detail and help screens). */
typedef struct TextLines {
    char **text;
    int *attr;
    uint32_t n, cap;
} TextLines;

void TextLines_add(TextLines *t, int attr, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Adds text (the process's, possibly several lines) as lines of at most width columns: the
 * first after label, the next indented as far; each of its lines on lines of its own, a line
 * too long broken at its last blank that fits (else anywhere). Never cuts text off. */
void TextLines_wrap(TextLines *t, int attr, const char *label, const char *text, int width);
/* Adds "  #i func file:line" lines ("  #i func 0xaddr build-id HEX" for a frame without a
 * file whose module's build-id is known), or `none` when the stack is empty. */
void TextLines_stack(TextLines *t, const Stack *s, const char *none);
/* Adds a horizontal log2 histogram (one line per non-empty bucket). */
void TextLines_hist(TextLines *t, const uint64_t *buckets, unsigned n, int width);
void TextLines_free(TextLines *t);
/* Draws the lines through the screen's panel (cursor row highlighted). */
void TextLines_draw(TextLines *t, Screen *s, int y, int h, int w);
/* Draws a page of text built for this draw by fill (for width w), then frees it. */
void TextLines_page(Screen *s, App *app, int y, int h, int w,
                    void (*fill)(App *app, TextLines *t, int w));

/* One column of a table: its title, its width in columns (0: the rest of the line), and
 * whether its cells are right-aligned. A table is an array of these. */
typedef struct TableColumn {
    const char *title;
    int width;
    bool right;
} TableColumn;

#define TABLE_MAX_COLUMNS 16

/* Draws the column-title line of the n (at most TABLE_MAX_COLUMNS) columns cols, highlighting
 * column `hl` (-1: none) with an arrow (down when descending). */
void Table_head(int y, int w, int n, const TableColumn *cols, int hl, bool descending);
/* Draws one row of n cells in the widths and alignment of cols, in attr. */
void Table_row(int y, int w, int n, const char *const *cells, const TableColumn *cols, int attr);

/* A list screen: rows of a table under an optional info line and the column titles, drawn
 * through the screen's panel (only the visible rows). The screen fills one on the stack at
 * each draw; its row function fills a row's cells and draws them with ListScreen_row. */
typedef struct ListScreen ListScreen;
struct ListScreen {
    App *app;
    int w;                   /* the screen's width */
    const TableColumn *cols; /* the column table */
    int ncols;
    /* Draws row i at line y, highlighted when sel. */
    void (*row)(const ListScreen *ls, uint32_t i, int y, bool sel);
};

/* Draws the list in lines [y, y+h) with s's panel: info dimmed on the first line (NULL: no
 * such line), the column titles, then the count rows through this->row, or the text `empty`
 * dimmed when count is 0. */
void ListScreen_draw(const ListScreen *this, Screen *s, int y, int h, const char *info,
                     uint32_t count, const char *empty);
/* Draws one row's cells (one per column) on line y in attr. */
void ListScreen_row(const ListScreen *this, int y, const char *const *cells, int attr);

/* The Exceptions list's MESSAGE cell of a message (which may hold several lines): the error's
 * own words first (the text after "error: " on the line that starts with it), then the other
 * non-empty lines in order, the first without a "... was never retrieved: " title that restates
 * the KIND column, joined by " \n " (the sanitiser shows a visible separator). Always
 * NUL-terminated in buf (len > 0), cut when longer. */
void ExceptionsScreen_summary(const char *message, char *buf, size_t len);

/* The name of an exception event's error code ("ECONNREFUSED"), when its domain is one whose
 * codes are libuv's (negated errno) values — asynctop (error.h keeps libuv's values), uv,
 * errno — and libuv knows the code; else "" (another domain's codes are its own). Always
 * NUL-terminated in buf (len > 0). */
void ExceptionsScreen_codeName(const ExcEvent *e, char *buf, size_t len);

/* The error an exception event is about, from the wire's domain and code: "asynctop
 * ECONNREFUSED (-111)" (with the code's name when ExceptionsScreen_codeName knows it), "myapp
 * -4242", "myapp", "code -4242", or "" when the process sent neither. Always NUL-terminated in
 * buf (len > 0). */
void ExceptionsScreen_errorText(const ExcEvent *e, char *buf, size_t len);

/* Wall-clock "HH:MM:SS" of process time ns, from the model's start time. */
void Screens_clock(const Model *m, uint64_t ns, char *buf, size_t len);

#endif
