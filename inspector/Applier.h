/* Applier.h: the update applier: turns decoded wire messages (hello, update,
 * response) into changes of the Model. It resolves the interned site and
 * stack ids of the wire into strings, derives rates from cumulative
 * counters, and trusts nothing: unknown ids, absurd values and oversized
 * tables are bounded or ignored, never fatal. */
#ifndef ASYNCTOP_APPLIER_H
#define ASYNCTOP_APPLIER_H

#include "Model.h"

#include "at_wire.h"

#define APPLIER_MAX_SITES  262144u /* interned sites held per connection */
#define APPLIER_MAX_STACKS 131072u /* interned stacks held per connection */

typedef struct SiteDef {
    uint32_t id;
    char *func; /* never NULL ("?") */
    char *file; /* may be NULL */
    uint32_t line;
    uint64_t addr;
    char *build_id; /* hex (BuildId_dup), NULL when not sent */
} SiteDef;

typedef struct StackDef {
    uint32_t id;
    uint32_t n;
    uint32_t *sites; /* at most MODEL_MAX_FRAMES */
} StackDef;

typedef struct Applier {
    Model *model;
    SiteDef *sites; /* open addressing on id, size site_cap (power of two) */
    uint32_t nsites, site_cap;
    StackDef *stacks;
    uint32_t nstacks, stack_cap;
    /* previous cumulative counters, for rates */
    bool have_prev;
    uint64_t prev_ts, prev_busy, prev_idle, prev_callbacks;
    uint64_t prev_lag[AT_WIRE_HIST_BUCKETS];
    uint64_t updates;  /* updates applied */
    uint64_t last_seq; /* newest slow/exception event seq seen (one sequence for both) */
    bool have_seq;     /* last_seq is set (an event arrived on this connection) */
    uint64_t gaps;     /* slow/exception events missing by seq (also in Model.missed) */
} Applier;

void Applier_init(Applier *this, Model *model);
void Applier_done(Applier *this);

/* Applies one decoded message. now_ms is the local monotonic clock (for
 * lingering and the BLOCKED banner). Returns 0, or -1 if the message was
 * not one the inspector applies (it is then ignored). Never fails on bad
 * contents: those are bounded, and counted in model->rejected. */
int Applier_apply(Applier *this, const at_wire_msg_t *msg, uint64_t now_ms);

/* The text shown for a site id ("func file:line", or "?" / "site #N"). */
void Applier_siteText(const Applier *this, uint32_t site, char *buf, size_t len);
/* Frames of interned stack `stack` (0 when unknown), and the site id of frame i (innermost
 * first; 0 when out of range). */
uint32_t Applier_stackDepth(const Applier *this, uint32_t stack);
uint32_t Applier_stackSite(const Applier *this, uint32_t stack, uint32_t i);
/* Fills a model stack from an interned stack id (no-op when unknown). */
void Applier_stack(const Applier *this, uint32_t stack, Stack *out);

/* Wire wait kinds and callback kinds as the wire names them (at_wire_wait_kind_name,
 * at_wire_cb_kind_name: "sleep", "timer"); "wait?" / "callback" for a kind this build does not
 * know. */
const char *Applier_waitKindName(unsigned kind);
const char *Applier_cbKindName(unsigned kind);

#endif
