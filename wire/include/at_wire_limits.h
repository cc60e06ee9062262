/* at_wire_limits.h: every limit the wire decoder puts on untrusted input, in one place. */
#ifndef AT_WIRE_LIMITS_H
#define AT_WIRE_LIMITS_H

/*
 * Modelled on SQLite's sqliteLimit.h: each number is explained, and each can
 * be overridden at build time (-DAT_WIRE_MAX_...=N). Two directions, two
 * sets: what a server accepts from a client ("C2S": requests are tiny, so
 * everything is small and a hostile client costs next to nothing), and what
 * a client accepts from a server ("S2C": a snapshot of a big process).
 * docs/protocol.md lists the same numbers; keep them in step.
 *
 * Order of checks on a frame: the 4-byte length against MAX_FRAME before a
 * byte of the body is buffered; then, during a streaming decode, every
 * declared array/map count against MAX_ITEMS and against the bytes that
 * remain (each element takes at least one byte) before anything is
 * allocated; string lengths against MAX_STRING; nesting against MAX_DEPTH;
 * the running item count against MAX_TOTAL; the decoder's allocations
 * against MAX_MEMORY.
 */

/* Largest client->server frame. The biggest legitimate client message is a
 * request of under 200 bytes; 64 KiB leaves room for future requests while
 * keeping what a hostile client can make the exporter buffer trivial
 * (16 clients x 64 KiB = 1 MiB worst case). */
#ifndef AT_WIRE_MAX_FRAME_C2S
#define AT_WIRE_MAX_FRAME_C2S (64u * 1024u)
#endif

/* Largest server->client frame. A full snapshot of 100,000 tasks is about
 * 5 MB (under 64 bytes per row plus the site and stack tables); 64 MiB
 * allows ten times that many tasks plus long stacks. */
#ifndef AT_WIRE_MAX_FRAME_S2C
#define AT_WIRE_MAX_FRAME_S2C (64u * 1024u * 1024u)
#endif

/* Nesting of arrays and maps. The deepest v1 message is 5 levels
 * (response > detail > create > frame > value); 16 leaves room for
 * extensions and bounds the skip of unknown values (recursion). */
#ifndef AT_WIRE_MAX_DEPTH
#define AT_WIRE_MAX_DEPTH 16u
#endif

/* Elements of one array (or pairs of one map). Client messages have maps
 * of under 10 keys and arrays of under 16 names. */
#ifndef AT_WIRE_MAX_ITEMS_C2S
#define AT_WIRE_MAX_ITEMS_C2S 256u
#endif
/* Server side: one array holds one row per task; 2^20 rows is ten times
 * the 100,000 tasks the runtime is designed to hold. */
#ifndef AT_WIRE_MAX_ITEMS_S2C
#define AT_WIRE_MAX_ITEMS_S2C (1024u * 1024u)
#endif

/* Bytes of one text or byte string. Client strings are op names and
 * capability names (under 32 bytes); 4 KiB is generous. */
#ifndef AT_WIRE_MAX_STRING_C2S
#define AT_WIRE_MAX_STRING_C2S 4096u
#endif
/* Server strings: argv elements, demangled C++ symbols and file paths
 * (PATH_MAX is 4096), error messages. 64 KiB bounds a pathological argv. */
#ifndef AT_WIRE_MAX_STRING_S2C
#define AT_WIRE_MAX_STRING_S2C (64u * 1024u)
#endif

/* Data items in one frame (every integer, string, array... counts one).
 * A client message has under 100. A task row is 14 items, so 2^20 rows
 * are about 15M items; 2^24 caps the decoder's work per frame. */
#ifndef AT_WIRE_MAX_TOTAL_C2S
#define AT_WIRE_MAX_TOTAL_C2S 4096u
#endif
#ifndef AT_WIRE_MAX_TOTAL_S2C
#define AT_WIRE_MAX_TOTAL_S2C (16u * 1024u * 1024u)
#endif

/* Bytes the decoder may allocate for one decoded message (arena total).
 * Decoded structs are larger than their wire form (a 14-byte minimal task
 * row becomes a 96-byte struct), so this bounds the expansion: 1 MiB for a
 * client message (16 clients: 16 MiB worst case), 256 MiB for a
 * server message (a full 64 MiB frame of minimal rows needs about 450 MiB
 * and is refused; a real 100,000-task snapshot needs about 12 MiB). */
#ifndef AT_WIRE_MAX_MEMORY_C2S
#define AT_WIRE_MAX_MEMORY_C2S (1024u * 1024u)
#endif
#ifndef AT_WIRE_MAX_MEMORY_S2C
#define AT_WIRE_MAX_MEMORY_S2C (256u * 1024u * 1024u)
#endif

/* Histogram arrays longer than this are refused (the scheme has 252
 * buckets; at_wire.h AT_WIRE_HIST_BUCKETS). */
#define AT_WIRE_MAX_HIST 252u

#endif
