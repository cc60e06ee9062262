/* CRT.c: terminal ownership: curses lifecycle, colours, glyphs, stderr, signals. */
#include "CRT.h"

#include "Sanitise.h"

#include <curses.h>
#include <fcntl.h>
#include <langinfo.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <wchar.h>

int CRT_colors[C_COUNT];
bool CRT_ascii;
bool CRT_active;

static int stderr_saved = -1; /* the real stderr while curses runs */
static int stderr_hold = -1;  /* memfd catching what is written meanwhile */

static const char *const glyph_utf8[G_COUNT] = {
    "\u251c\u2500 ", "\u2514\u2500 ", "\u2502  ", "   ", "\u2026", "\u2500", "\u25b2", "\u25bc"};
static const char *const glyph_ascii[G_COUNT] = {"|- ", "`- ", "|  ", "   ", "~", "-", "^", "v"};
static const char *const spark_utf8[8] = {"\u2581", "\u2582", "\u2583", "\u2584",
                                          "\u2585", "\u2586", "\u2587", "\u2588"};
static const char *const spark_ascii[8] = {"_", ".", ",", "-", "=", "+", "*", "#"};

const char *CRT_glyph(Glyph g)
{
    return (CRT_ascii ? glyph_ascii : glyph_utf8)[g < G_COUNT ? g : 0];
}

const char *CRT_spark(unsigned level)
{
    return (CRT_ascii ? spark_ascii : spark_utf8)[level > 7 ? 7 : level];
}

bool CRT_wantsColor(const CRTOptions *opt)
{
    const char *nc = getenv("NO_COLOR");
    if (opt->no_color || (nc && nc[0]))
        return false;
    return true;
}

static void hold_stderr(void)
{
    int fd = memfd_create("asynctop-stderr", MFD_CLOEXEC);
    if (fd < 0)
        return;
    fflush(stderr);
    stderr_saved = fcntl(2, F_DUPFD_CLOEXEC, 3);
    if (stderr_saved < 0 || dup2(fd, 2) < 0) {
        close(fd);
        if (stderr_saved >= 0)
            close(stderr_saved);
        stderr_saved = -1;
        return;
    }
    stderr_hold = fd;
}

static void release_stderr(void)
{
    if (stderr_saved < 0)
        return;
    fflush(stderr);
    dup2(stderr_saved, 2);
    close(stderr_saved);
    stderr_saved = -1;
    char buf[4096];
    ssize_t n;
    if (lseek(stderr_hold, 0, SEEK_SET) == 0)
        while ((n = read(stderr_hold, buf, sizeof buf)) > 0)
            if (write(2, buf, (size_t)n) < 0)
                break;
    close(stderr_hold);
    stderr_hold = -1;
}

void CRT_done(void)
{
    if (!CRT_active)
        return;
    CRT_active = false;
    curs_set(1);
    endwin();
    release_stderr();
}

static void fatal_signal(int sig)
{
    CRT_done();
    static const char msg[] = "asynctop: fatal signal, terminal restored\n";
    if (write(2, msg, sizeof msg - 1) < 0) {
        /* nothing more we can do */
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void init_colors(bool color)
{
    /* attributes without colour: what NO_COLOR users get */
    int mono[C_COUNT] = {
        [C_NORMAL] = A_NORMAL,
        [C_HEADER] = A_BOLD,
        [C_LABEL] = A_NORMAL,
        [C_TAB] = A_NORMAL,
        [C_TAB_ON] = A_REVERSE,
        [C_COLHEAD] = A_REVERSE,
        [C_SORTHEAD] = A_REVERSE | A_BOLD,
        [C_SELECTED] = A_REVERSE,
        [C_DIM] = A_DIM,
        [C_WARN] = A_BOLD,
        [C_ERROR] = A_BOLD,
        [C_BANNER] = A_REVERSE | A_BOLD,
        [C_OK] = A_NORMAL,
        [C_PROMPT] = A_BOLD,
        [C_FKEY] = A_REVERSE,
    };
    memcpy(CRT_colors, mono, sizeof mono);
    if (!color || !has_colors())
        return;
    start_color();
    use_default_colors();
    init_pair(1, COLOR_CYAN, -1);
    init_pair(2, COLOR_BLACK, COLOR_GREEN);
    init_pair(3, COLOR_BLACK, COLOR_CYAN);
    init_pair(4, COLOR_YELLOW, -1);
    init_pair(5, COLOR_RED, -1);
    init_pair(6, COLOR_WHITE, COLOR_RED);
    init_pair(7, COLOR_GREEN, -1);
    init_pair(8, COLOR_BLACK, COLOR_CYAN);
    CRT_colors[C_HEADER] = COLOR_PAIR(1) | A_BOLD;
    CRT_colors[C_COLHEAD] = COLOR_PAIR(2);
    CRT_colors[C_SORTHEAD] = COLOR_PAIR(3) | A_BOLD;
    CRT_colors[C_SELECTED] = COLOR_PAIR(8);
    CRT_colors[C_TAB_ON] = COLOR_PAIR(3) | A_BOLD;
    CRT_colors[C_WARN] = COLOR_PAIR(4) | A_BOLD;
    CRT_colors[C_ERROR] = COLOR_PAIR(5) | A_BOLD;
    CRT_colors[C_BANNER] = COLOR_PAIR(6) | A_BOLD;
    CRT_colors[C_OK] = COLOR_PAIR(7);
    CRT_colors[C_FKEY] = COLOR_PAIR(3);
}

int CRT_init(const CRTOptions *opt)
{
    if (!isatty(0) || !isatty(1)) {
        fprintf(stderr, "asynctop: the interactive view needs a terminal on stdin and stdout "
                        "(try `asynctop ps PID` or `asynctop dump PID --json`)\n");
        return -1;
    }
    const char *cs = nl_langinfo(CODESET);
    CRT_ascii = opt->ascii || !cs || strcmp(cs, "UTF-8") != 0;
    hold_stderr();
    if (!newterm(NULL, stdout, stdin)) {
        release_stderr();
        fprintf(stderr, "asynctop: cannot initialise the terminal (TERM=%s)\n",
                getenv("TERM") ? getenv("TERM") : "");
        return -1;
    }
    CRT_active = true;
    atexit(CRT_done);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fatal_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    int fatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGQUIT};
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
        sigaction(fatal[i], &sa, NULL);
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    set_escdelay(25);
    curs_set(0);
    init_colors(CRT_wantsColor(opt));
    return 0;
}

void CRT_resize(void)
{
    struct winsize ws;
    if (ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0)
        resizeterm(ws.ws_row, ws.ws_col);
    clear();
}

int CRT_width(const char *s)
{
    return Sanitise_width(s, Sanitise_localeFlags());
}

int CRT_put(int y, int x, const char *s, int width, int attr, bool pad)
{
    if (width <= 0)
        return 0;
    attrset(attr);
    move(y, x);
    unsigned flags = Sanitise_localeFlags(); /* one line: \n and \t get markers */
    int w = 0;
    size_t len = s ? strlen(s) : 0;
    while (len && w < width) {
        SanChar c;
        char buf[8];
        int cw;
        size_t k = Sanitise_decode(s, len, &c);
        const char *show = Sanitise_show(&c, s, flags, buf, &cw);
        if (w + cw > width)
            break;
        addstr(show);
        w += cw;
        s += k;
        len -= k;
    }
    if (pad)
        for (; w < width; w++)
            addch(' ');
    attrset(A_NORMAL);
    return w;
}
