/* Picker.h: the process picker's data: every socket in the socket directory, each probed with
 * a connection of its own (hello, one update) for its program, uptime and task count. The Pick
 * screen draws it; App scans it while no process is attached. */
#ifndef ASYNCTOP_PICKER_H
#define ASYNCTOP_PICKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "Client.h"
#include "Discovery.h"

typedef struct Picker Picker;

/* One row of the process picker. */
typedef struct PickEntry {
    Picker *picker;
    Target target;
    Client client;
    bool probing, answered, used;
    char program[64];
    uint64_t uptime_ns;
    uint64_t tasks;
    char note[96]; /* "stale socket", "permission refused", ... */
} PickEntry;

struct Picker {
    uv_loop_t *loop;
    bool *dirty; /* set when an entry changed */
    PickEntry *entries;
    size_t n;
    bool active; /* no process attached: the picker is shown and rescanned */
};

/* An empty picker probing on loop; *dirty is set whenever what it shows changes. */
void Picker_init(Picker *this, uv_loop_t *loop, bool *dirty);
/* Lists the sockets again and probes each live one (what the last probe learnt stays shown
 * meanwhile). Does nothing while probes of the last scan are still closing (the next call
 * rescans). */
void Picker_scan(Picker *this);
/* Closes the probes still open (their handles close on the loop). */
void Picker_close(Picker *this);
/* Frees the entries; after Picker_close and a run of the loop. */
void Picker_done(Picker *this);

#endif
