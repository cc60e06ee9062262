/* CRT.h: owns the terminal (htop's CRT): curses setup and teardown, colours
 * or their absence (NO_COLOR, --no-color), --ascii glyphs, stderr held while
 * curses is active, and the terminal restored on every way out. */
#ifndef ASYNCTOP_CRT_H
#define ASYNCTOP_CRT_H

#include <stdbool.h>
#include <stddef.h>

typedef enum ColorElem {
    C_NORMAL,
    C_HEADER,   /* header values */
    C_LABEL,    /* header labels */
    C_TAB,      /* inactive screen tab */
    C_TAB_ON,   /* active screen tab */
    C_COLHEAD,  /* column titles */
    C_SORTHEAD, /* the sorted column's title */
    C_SELECTED, /* cursor row */
    C_DIM,      /* finished tasks, hints */
    C_WARN,     /* dropped counters, slow values */
    C_ERROR,    /* exceptions, errors */
    C_BANNER,   /* BLOCKED banner */
    C_OK,       /* live connection */
    C_PROMPT,   /* bottom prompt line */
    C_FKEY,     /* key in the function bar */
    C_COUNT
} ColorElem;

typedef enum Glyph {
    G_TREE_MID,  /* "├─ " */
    G_TREE_LAST, /* "└─ " */
    G_TREE_BAR,  /* "│  " */
    G_TREE_NONE, /* "   " */
    G_ELLIPSIS,  /* "…" */
    G_HBAR,      /* "─" */
    G_UP,        /* "▲" */
    G_DOWN,      /* "▼" */
    G_COUNT
} Glyph;

typedef struct CRTOptions {
    bool ascii;    /* --ascii: no line-drawing or block characters */
    bool no_color; /* --no-color or NO_COLOR */
} CRTOptions;

/* Curses attributes of each element, valid after CRT_init. */
extern int CRT_colors[C_COUNT];
extern bool CRT_ascii;
extern bool CRT_active;

/* Decides colour/ascii from options, the environment (NO_COLOR non-empty,
 * a non-UTF-8 locale forces ascii) and terminfo, redirects stderr to a
 * temporary file (replayed by CRT_done), installs fatal-signal handlers
 * that restore the terminal, and starts curses. Call setlocale first and
 * install any SIGWINCH handler (uv_signal) before this. Returns 0, or -1
 * with a message on stderr when there is no usable terminal. Main thread. */
int CRT_init(const CRTOptions *opt);
/* Ends curses, restores the terminal and stderr (replaying what was written
 * to it meanwhile). Idempotent; safe from atexit and fatal-signal paths. */
void CRT_done(void);
/* After SIGWINCH: reads the new size from the terminal and resizes curses. */
void CRT_resize(void);
/* Decides colour use without a terminal (for tests): NO_COLOR set and
 * non-empty, or no_color. */
bool CRT_wantsColor(const CRTOptions *opt);

const char *CRT_glyph(Glyph g);
/* Sparkline glyph for level 0..7. */
const char *CRT_spark(unsigned level);

/* Writes at most `width` screen columns of UTF-8 text s at (y, x) with attr;
 * pads with blanks to width when pad. Returns columns written. The TUI's one
 * way to the screen: s passes the sanitiser as one line (Sanitise.h), so a
 * process's text can be drawn as it came (controls, line breaks, bidi
 * characters and invalid bytes show as visible markers). */
int CRT_put(int y, int x, const char *s, int width, int attr, bool pad);
/* Display width of UTF-8 text as CRT_put draws it (markers included). */
int CRT_width(const char *s);

#endif
