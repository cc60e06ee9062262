/* App.h: the interactive inspector's state: one target's model, the connection and its
 * requests, the screens (ScreenManager), the prompt (Prompt), the process picker (Picker), and
 * the libuv handles that drive them. Screens and actions read and change it; only
 * ScreenManager draws. */
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
#include "Picker.h"
#include "Prompt.h"
#include "ScreenManager.h"
#include "TaskTree.h"
#include "TaskView.h"

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
    bool loop_gone_seen;  /* the watched loop's close was acted upon */
    ScreenManager sm;     /* the screens and their stack */
    TaskView tasks;       /* Tasks screen */
    TaskView group_tasks; /* a group's tasks */
    TaskTree tree;
    TaskGroups groups;
    uint64_t slow_index;                /* slow event shown in detail (0 newest) */
    char slow_filter[PROMPT_INPUT_MAX]; /* Slow screen: only events whose callback, task or call
                                         * site contain this (case-insensitive); "" all */
    uint64_t exc_index;
    /* prompt and status line */
    Prompt prompt;
    char status[200];
    uint64_t status_ms;
    /* requests in flight (their ids, 0 none; see App_request) */
    uint64_t req_config, req_cancel, req_detail, req_pause;
    uint64_t req_cancel_task; /* the task req_cancel cancels */
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
    Picker picker; /* no process attached yet: the processes to pick from */
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

/* Shows a message in the status line for a few seconds. */
void App_status(App *app, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Local monotonic clock in ms. */
uint64_t App_now(App *app);
/* Sends req on the connection to the loop watched, keeps its id to match the answer (one
 * request in flight per op; a newer one's answer wins) and says in the status line what was
 * asked (set_config, cancel) or done (pause/resume: the screen freezes or thaws at once).
 * Returns the id, 0 when not connected (nothing sent; set_config and cancel say so). Every
 * request of the TUI goes through here. */
uint64_t App_request(App *app, const at_wire_request_t *req);
/* A set_config request with the has_ fields of cfg (App_request). */
void App_setConfig(App *app, const at_wire_config_t *cfg);
/* Whether the connection is live (subscribed): what keys that ask the process need. */
bool App_live(const App *app);
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
