/* App.h: the interactive inspector's state: one target's model, the
 * connection, the screens, the prompt, and the libuv handles that drive
 * them. Screens and actions read and change it; only ScreenManager draws. */
#ifndef ASYNCTOP_APP_H
#define ASYNCTOP_APP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "Applier.h"
#include "Client.h"
#include "Discovery.h"
#include "Model.h"
#include "Panel.h"
#include "TaskTree.h"
#include "TaskView.h"

/* What a key handler asks for (htop's HandlerResult). */
typedef enum Reaction {
    R_IGNORED = 0,
    R_HANDLED = 1 << 0,
    R_REDRAW = 1 << 1, /* something visible changed */
    R_QUIT = 1 << 2,
} Reaction;

typedef enum ScreenId {
    SCR_TASKS, /* tab screens first, in tab order */
    SCR_TREE,
    SCR_GROUPS,
    SCR_SLOW,
    SCR_EXC,
    SCR_LOOP,
    SCR_NTABS,
    SCR_DETAIL = SCR_NTABS, /* pushed screens */
    SCR_GROUP_TASKS,
    SCR_SLOW_DETAIL,
    SCR_EXC_DETAIL,
    SCR_HELP,
    SCR_PICK,
    SCR_LOOPS, /* the loop picker */
    SCR_COUNT
} ScreenId;

typedef struct App App;
typedef struct Screen Screen;

typedef struct ScreenClass {
    ScreenId id;
    const char *name; /* tab label / title */
    /* Refreshes the panel's row count from the model and draws into lines
     * [y, y+h) of width w. */
    void (*draw)(Screen *s, App *app, int y, int h, int w);
    /* Enter on the selected row; NULL: nothing to open. */
    Reaction (*enter)(Screen *s, App *app);
} ScreenClass;

struct Screen {
    const ScreenClass *cls;
    Panel panel;
    uint64_t sel_id; /* id under the cursor, to keep it across re-sorts */
};

typedef enum PromptMode {
    PROMPT_NONE,
    PROMPT_FILTER,
    PROMPT_THRESHOLD,
    PROMPT_CONFIRM_CANCEL,
} PromptMode;

/* One row of the process picker. */
typedef struct PickEntry {
    App *app;
    Target target;
    Client client;
    bool probing, answered, used;
    char program[64];
    uint64_t uptime_ns;
    uint64_t tasks;
    char note[96]; /* "stale socket", "permission refused", ... */
} PickEntry;

#define APP_INPUT_MAX 128
#define APP_STATUS_MS 5000

struct App {
    uv_loop_t *loop;
    Model model;
    Applier applier;
    Client client;
    bool client_open; /* client handles exist (closing or not) */
    uint64_t pid;
    char path[256];
    uint32_t interval_ms;
    /* loops: the one watched (asked for; the model's loop_id is what the process says), and a
     * switch in progress (the connection closes, then reopens on switch_to) */
    uint32_t loop_id;
    bool switching, switch_ready;
    uint32_t switch_to;
    bool loop_gone_seen; /* the watched loop's close was acted upon */
    /* screens */
    Screen screens[SCR_COUNT];
    int tab;           /* current tab screen */
    ScreenId stack[8]; /* pushed screens over the tab */
    int depth;
    TaskView tasks;       /* Tasks screen */
    TaskView group_tasks; /* a group's tasks */
    TaskTree tree;
    TaskGroups groups;
    uint64_t slow_index;             /* slow event shown in detail (0 newest) */
    char slow_filter[APP_INPUT_MAX]; /* Slow screen: only events whose callback, task or call
                                      * site contain this (case-insensitive); "" all */
    uint64_t exc_index;
    /* prompt and status line */
    PromptMode prompt;
    char input[APP_INPUT_MAX];
    size_t input_len;
    char prompt_error[128];
    uint64_t cancel_id;
    char status[200];
    uint64_t status_ms;
    /* requests in flight */
    uint64_t req_config, req_cancel, req_detail, req_pause;
    /* slow threshold asked for by the latest set_config still unanswered, 0 none:
     * + and - step from it, so quick presses are not lost (the header keeps
     * showing the value the process reports) */
    uint64_t pending_slow_ns;
    bool paused;
    /* process exit and reattach */
    bool exited;
    char end_message[320];
    uint64_t reattach_pid;
    bool reattaching; /* r was pressed: the next hello says "reattached" */
    uint64_t last_scan_ms;
    uint64_t last_detail_ms;
    /* picker */
    PickEntry *pick;
    size_t npick;
    bool picking;
    /* drawing */
    bool dirty;
    bool quit;
    int exit_code;
    uint64_t redraws;
    /* handles */
    uv_timer_t tick;
    uv_check_t check;
    uv_poll_t stdin_poll;
    uv_signal_t sig_winch, sig_int, sig_term, sig_hup;
    bool handles_started;
};

/* Exit codes of the asynctop program (documented in asynctop(1)). */
enum {
    EXIT_OK = 0,
    EXIT_FAIL = 1,      /* a runtime error not listed below */
    EXIT_USAGE = 2,     /* bad command line */
    EXIT_NOPROC = 3,    /* no such process */
    EXIT_NORUNTIME = 4, /* the process does not run the asynctop runtime (no/stale socket) */
    EXIT_PERM = 5,      /* permission refused */
    EXIT_PROTO = 6,     /* protocol version not spoken, or protocol error */
    EXIT_NOANSWER = 7,  /* the process did not answer in time */
    EXIT_REFUSED = 8,   /* the process refused a request (set, cancel) */
};

typedef struct AppOptions {
    uint64_t pid;     /* 0: none */
    const char *path; /* -s PATH, or NULL */
    bool ascii, no_color;
    uint32_t interval_ms;
    uint32_t loop; /* --loop N: the loop to watch first (0 = main) */
} AppOptions;

/* Runs the interactive inspector until the user quits. Errors before the
 * TUI starts (no such process, no runtime, permission, version) are printed
 * on stderr and returned as EXIT_* codes. Main thread only. */
int App_run(const AppOptions *opt);
/* "process P has no loop N; its loops: ..." on f (--loop with an unknown id). */
void App_printLoops(FILE *f, const Model *m, uint32_t wanted);
/* The EXIT_* code for how a connection ended. */
int App_exitCode(ClientEnd end);
/* Resolves pid/path to a socket path and checks what can be checked before
 * connecting (process exists, socket exists). Returns EXIT_OK or an EXIT_*
 * code with a message on stderr. */
int App_resolve(uint64_t pid, const char *path, char *out, size_t len);

/* The screen the user sees now. */
Screen *App_current(App *app);
ScreenId App_currentId(App *app);
void App_push(App *app, ScreenId id);
void App_pop(App *app);
void App_setTab(App *app, int tab);
/* Shows a message in the status line for a few seconds. */
void App_status(App *app, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Local monotonic clock in ms. */
uint64_t App_now(App *app);
/* Sends a set_config request (has_ fields of cfg) and remembers its id. */
void App_setConfig(App *app, const at_wire_config_t *cfg);
/* Opens the detail of task id (requests it). */
void App_openTask(App *app, uint64_t id);
/* Starts attaching to the socket at path (pid for messages, 0 unknown), watching loop
 * app->loop_id. */
void App_attach(App *app, uint64_t pid, const char *path);
/* Watches loop id of the same process instead: closes the connection and opens one on that
 * loop (the loop table and config are kept, the rest is the new loop's). Says why not in the
 * status line when it cannot (not connected, no such loop, already watched). */
void App_switchLoop(App *app, uint32_t id);

#endif
