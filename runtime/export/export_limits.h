/* export_limits.h: every limit the exporter puts on a session — what one client, all clients
 * together, or a busy loop may cost the process — in one place. */
#ifndef ASYNCTOP_EXPORT_LIMITS_H
#define ASYNCTOP_EXPORT_LIMITS_H

/*
 * In the style of wire/include/at_wire_limits.h: each number is explained and can be
 * overridden at build time (-DAT_EXPORT_...=N). The wire's own limits on a frame (its length,
 * depth, items, strings) are at_wire_limits.h's; these are the exporter's on top: how many
 * clients, how much each may make it hold, how long it waits, how much it does per step.
 * docs/exporter.md and docs/security.md list the same numbers; keep them in step.
 */

/* ---- clients ------------------------------------------------------------------------------ */

/* Clients served at once (ASYNCTOP_MAX_CLIENTS, at_export_config_t.max_clients). An inspector
 * or two per process is the normal case; 16 leaves room for scripts (`asynctop ps` attaches
 * for a moment) while bounding what clients can cost together (16 x the output bound). */
#ifndef AT_EXPORT_DEFAULT_MAX_CLIENTS
#define AT_EXPORT_DEFAULT_MAX_CLIENTS 16u
#endif
/* The largest ASYNCTOP_MAX_CLIENTS accepted (a larger value is refused with a warning and the
 * default used): each client is one descriptor and one fork-child fd slot. */
#ifndef AT_EXPORT_MAX_CLIENTS_MAX
#define AT_EXPORT_MAX_CLIENTS_MAX 1024u
#endif
/* Connections beyond max_clients that are still accepted, told "too many clients" and closed;
 * beyond that the listener stops and newcomers wait in the backlog until someone leaves. */
#ifndef AT_EXPORT_ACCEPT_SLACK
#define AT_EXPORT_ACCEPT_SLACK 4u
#endif
/* Descriptors kept for the fork child to close: the listener, the clients and the slack. */
#define AT_EXPORT_FD_SLOTS(max_clients) ((max_clients) + 2u * AT_EXPORT_ACCEPT_SLACK)
/* Connections accepted per wake-up of the listener, so that a flood of connects cannot keep
 * the exporter thread from its tick. */
#ifndef AT_EXPORT_ACCEPT_BURST
#define AT_EXPORT_ACCEPT_BURST 64
#endif
/* The listen(2) backlog. */
#ifndef AT_EXPORT_LISTEN_BACKLOG
#define AT_EXPORT_LISTEN_BACKLOG 128
#endif
/* How long accepting pauses after EMFILE/ENFILE/ENOBUFS/ENOMEM (as tmux does: not spinning on
 * a listener that stays readable). */
#ifndef AT_EXPORT_ACCEPT_BACKOFF_MS
#define AT_EXPORT_ACCEPT_BACKOFF_MS 1000u
#endif

/* A connection that has not subscribed this long after connecting is closed ("no subscribe
 * within the handshake timeout"), so that idle connections cannot hold the client slots. */
#ifndef AT_EXPORT_DEFAULT_HANDSHAKE_MS
#define AT_EXPORT_DEFAULT_HANDSHAKE_MS 5000u
#endif
/* A closing connection (fatal error sent, bye received) whose queue does not drain within
 * this is closed anyway. */
#ifndef AT_EXPORT_CLOSING_GRACE_MS
#define AT_EXPORT_CLOSING_GRACE_MS 1000u
#endif

/* ---- one client's output and input ---------------------------------------------------------- */

/* Bytes of output queued per client (mappings, headers included) beyond the one message that
 * may always be queued (a snapshot can be bigger): a client over it is disconnected ("not
 * reading"). 32 MiB holds several snapshots of 100,000 tasks. */
#ifndef AT_EXPORT_DEFAULT_CLIENT_OUT_MAX
#define AT_EXPORT_DEFAULT_CLIENT_OUT_MAX (32u * 1024u * 1024u)
#endif
/* A client with output queued that reads nothing for this long is disconnected. */
#ifndef AT_EXPORT_DEFAULT_STALL_MS
#define AT_EXPORT_DEFAULT_STALL_MS 30000u
#endif
/* The smallest mapping of the output queue (small messages share one): queued output lives in
 * page-aligned mappings of its own, so a drained queue goes back to the system at once. */
#ifndef AT_EXPORT_OUTCHUNK
#define AT_EXPORT_OUTCHUNK (16u * 1024u)
#endif
/* The server reads no more requests from a client while this much of its output (as counted
 * against its bound) is queued; it reads again once the queue is below. Requests alone
 * therefore make a client hold at most this plus one response (docs/security.md). */
#ifndef AT_EXPORT_READ_PAUSE
#define AT_EXPORT_READ_PAUSE (64u * 1024u)
#endif
/* Bytes asked of recv() at a time, and reads per wake-up of one client (then the others get
 * their turn; what is left is read on the next wake-up). */
#ifndef AT_EXPORT_RECV_CHUNK
#define AT_EXPORT_RECV_CHUNK 16384u
#endif
#ifndef AT_EXPORT_READ_ROUNDS
#define AT_EXPORT_READ_ROUNDS 4
#endif
/* Undecodable frames a connection may send (each is answered with a non-fatal error: the
 * framing is intact) before it is closed ("too many undecodable frames"). */
#ifndef AT_EXPORT_BAD_FRAMES_MAX
#define AT_EXPORT_BAD_FRAMES_MAX 16
#endif

/* ---- updates -------------------------------------------------------------------------------- */

/* Update interval when the subscribe names none, and the shortest one granted (a client asking
 * for less gets this): the exporter's work is per update, not per event. */
#ifndef AT_EXPORT_DEFAULT_INTERVAL_MS
#define AT_EXPORT_DEFAULT_INTERVAL_MS 1000u
#endif
#ifndef AT_EXPORT_MIN_INTERVAL_MS
#define AT_EXPORT_MIN_INTERVAL_MS 100u
#endif
/* The exporter's tick: rings are drained, the watchdog looks and due updates go out this often.
 * A ring of AT_EXPORT_TASK_RING events lasts 50 ms at 80k task events a second. */
#ifndef AT_EXPORT_TICK_MS
#define AT_EXPORT_TICK_MS 50u
#endif
/* How long a client's first snapshot waits at most for a task provider's first resync (a
 * program that just started), rather than going out without the tasks. */
#ifndef AT_EXPORT_FIRST_SNAPSHOT_WAIT_MS
#define AT_EXPORT_FIRST_SNAPSHOT_WAIT_MS 500u
#endif
/* Loops listed in a hello and in each update's loop list. */
#ifndef AT_EXPORT_LOOPS_LISTED
#define AT_EXPORT_LOOPS_LISTED 64
#endif
/* Slow/exception events kept per loop for new clients (and for clients that fall behind: the
 * ones evicted before a client got them are counted to it as "lagged"). */
#ifndef AT_EXPORT_EVLOG
#define AT_EXPORT_EVLOG 1024u
#endif
/* Distinct stacks counted in the profile of one stall (export_profile.c): a stall's time is
 * almost always in a handful of stacks; samples in more fold into the profile's `other` count.
 * It bounds the profile at 32 x 16 bytes in the loop's mirror and 32 x 8 bytes per slow event. */
#ifndef AT_EXPORT_PROFILE_STACKS
#define AT_EXPORT_PROFILE_STACKS 32
#endif
/* loopmon events taken off one loop's ring per tick (the ring holds far fewer: a bound on one
 * tick's work, not a drop). */
#ifndef AT_EXPORT_DRAIN_MAX
#define AT_EXPORT_DRAIN_MAX 65536
#endif

/* ---- tasks from providers ------------------------------------------------------------------- */

/* Task events per attachment ring (a power of two); a full ring drops, counts and leads to a
 * resync, never to a wait on the loop thread. */
#ifndef AT_EXPORT_TASK_RING
#define AT_EXPORT_TASK_RING 4096u
#endif
/* Rows one resync may bring (2M: twenty times the 100,000 tasks the runtime is designed to
 * hold); more are left out, and the truncation is said in the log. */
#ifndef AT_EXPORT_RESYNC_MAX
#define AT_EXPORT_RESYNC_MAX (1u << 21)
#endif
/* A resync is asked for at most this often per attachment (drops keep coming while a ring is
 * overrun: one resync a second says it all). */
#ifndef AT_EXPORT_RESYNC_EVERY_MS
#define AT_EXPORT_RESYNC_EVERY_MS 1000u
#endif
/* How long a resync may take on its loop thread before the exporter stops waiting for it. */
#ifndef AT_EXPORT_RESYNC_DEADLINE_MS
#define AT_EXPORT_RESYNC_DEADLINE_MS 30000u
#endif
/* Task entries (task, wait, stack hash) one stacks request may bring; the provider keeps the
 * rest for the next one. */
#ifndef AT_EXPORT_STK_BATCH
#define AT_EXPORT_STK_BATCH (1u << 18)
#endif

/* ---- requests that run on a loop thread ------------------------------------------------------ */

/* A loop request (task detail, cancel) not taken by its loop thread within this is answered
 * "loop busy" and withdrawn (never run). */
#ifndef AT_EXPORT_DEFAULT_LOOP_REQUEST_MS
#define AT_EXPORT_DEFAULT_LOOP_REQUEST_MS 1000u
#endif
/* Client requests queued for one loop at once, from all clients: more are refused
 * "rate_limited" at once, so a blocked loop cannot make the queue grow. */
#ifndef AT_EXPORT_LOOP_QUEUE_MAX
#define AT_EXPORT_LOOP_QUEUE_MAX 32u
#endif
/* Client requests outstanding per connection, answered "loop busy" or not: a request counts
 * until the loop thread has given it back or it was taken out of the mailbox. */
#ifndef AT_EXPORT_CLIENT_INFLIGHT_MAX
#define AT_EXPORT_CLIENT_INFLIGHT_MAX 8
#endif
/* How long a stack sample (loop_stack, the blocked loop's stack) waits for the loop thread to
 * answer the signal before it is given up. */
#ifndef AT_EXPORT_SAMPLE_TIMEOUT_MS
#define AT_EXPORT_SAMPLE_TIMEOUT_MS 500u
#endif

/* ---- settings a client may change ------------------------------------------------------------ */

/* set_config's slow_ns must lie in loopmon's range for the threshold, the one ASYNCTOP_SLOW_MS
 * is held to (AT__SLOW_NS_MIN .. AT__SLOW_NS_MAX in loopmon.h: 1 ms .. 1 day): one range
 * however the threshold is set. */
#define AT_EXPORT_SLOW_NS_MIN AT__SLOW_NS_MIN
#define AT_EXPORT_SLOW_NS_MAX AT__SLOW_NS_MAX

#endif
