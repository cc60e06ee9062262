/* bench_wire.c: encode/decode speed and size of an update carrying 100,000 task rows (issue 2
 * targets: <= 50 ms each way, <= 64 bytes/row). */
#include "at_wire.h"
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>

#define ROWS   100000u
#define SITES  64u
#define STACKS 300u

/* A realistic full snapshot, built once: a server with connection tasks
 * ("conn-12345"), workers and timers, in every state, created over the last
 * ten minutes of a process that has run for an hour. */
static at_wire_update_t snapshot;
static at_wire_buf_t encoded;

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void build_snapshot(void)
{
    if (snapshot.n_tasks_new)
        return;
    static at_wire_task_t rows[ROWS];
    static char names[ROWS][16];
    static at_wire_site_t sites[SITES];
    static char site_funcs[SITES][32];
    static at_wire_stack_t stacks[STACKS];
    static uint32_t stack_sites[STACKS][8];
    const uint64_t now_us = 3600u * 1000000u; /* one hour into the process */
    for (uint32_t i = 0; i < SITES; i++) {
        snprintf(site_funcs[i], sizeof site_funcs[i], "handler_%u", i);
        sites[i] = (at_wire_site_t){
            i + 1, {0x55d0c0de0000u + i * 0x40u, site_funcs[i], "src/server.c", 100 + i * 7}};
    }
    for (uint32_t i = 0; i < STACKS; i++) {
        uint32_t depth = 3 + i % 6;
        for (uint32_t j = 0; j < depth; j++)
            stack_sites[i][j] = 1 + (uint32_t)((i * 7 + j * 13) % SITES);
        stacks[i] = (at_wire_stack_t){i + 1, depth, stack_sites[i]};
    }
    static const char *const prefix[] = {"conn", "conn", "conn", "worker", "timer"};
    for (uint32_t i = 0; i < ROWS; i++) {
        uint64_t r = next_rand();
        snprintf(names[i], sizeof names[i], "%s-%u", prefix[r % 5], 10000 + i);
        uint8_t state = (uint8_t)((r >> 8) % 10 < 8 ? 2 : (r >> 8) % 3); /* mostly waiting */
        uint64_t created = now_us - (r >> 16) % (600u * 1000000u);
        rows[i] = (at_wire_task_t){
            .id = 1000 + i,
            .name = names[i],
            .state = state,
            .wait_kind = state == 2 ? (uint8_t)(1 + (r >> 24) % 14) : 0,
            .wait_obj = state == 2 ? 200000 + (r >> 28) % 100000 : 0,
            .wait_since_us = state == 2 ? created + (r >> 32) % 1000000 : 0,
            .busy_ns = 5000 + (r >> 20) % 5000000,
            .steps = 1 + (r >> 40) % 2000,
            .parent = i < 10 ? 0 : 1000 + (r >> 44) % 10,
            .created_us = created,
            .create_site = 1 + (uint32_t)((r >> 50) % SITES),
            .entry_site = 1 + (uint32_t)((r >> 54) % SITES),
            .stack = 1 + (uint32_t)((r >> 3) % STACKS),
        };
    }
    snapshot = (at_wire_update_t){
        .seq = 0,
        .ts_ns = now_us * 1000u,
        .full = true,
        .config = {true, 100000000, true, false},
        .n_sites = SITES,
        .sites = sites,
        .n_stacks = STACKS,
        .stacks = stacks,
        .n_tasks_new = ROWS,
        .tasks_new = rows,
    };
    at_wire_buf_init(&encoded);
    if (at_wire_encode_update(&encoded, &snapshot) != 0)
        abort();
}

BENCH(wire_encode_update_100k_ms, "ms",
      "encode an update of 100,000 task rows (+ site/stack tables)")
{
    build_snapshot();
    at_wire_buf_t b;
    at_wire_buf_init(&b);
    /* steady state: the exporter reuses its buffer */
    if (at_wire_encode_update(&b, &snapshot) != 0)
        return -1;
    at_wire_buf_reset(&b);
    uint64_t t0 = bench_now_ns();
    int rc = at_wire_encode_update(&b, &snapshot);
    uint64_t t1 = bench_now_ns();
    at_wire_buf_free(&b);
    return rc ? -1 : (double)(t1 - t0) / 1e6;
}

BENCH(wire_decode_update_100k_ms, "ms", "decode (with limits) an update of 100,000 task rows")
{
    build_snapshot();
    at_wire_msg_t m;
    at_wire_err_t e;
    uint64_t t0 = bench_now_ns();
    int rc = at_wire_decode(encoded.data + 4, encoded.len - 4, &at_wire_limits_s2c, &m, &e);
    uint64_t t1 = bench_now_ns();
    if (rc) {
        fprintf(stderr, "bench_wire: decode failed: %s\n", e.msg);
        return -1;
    }
    if (m.u.update.n_tasks_new != ROWS)
        return -1;
    at_wire_msg_free(&m);
    return (double)(t1 - t0) / 1e6;
}

BENCH(wire_update_bytes_per_row, "bytes/row", "frame bytes of that update divided by 100,000")
{
    build_snapshot();
    return (double)encoded.len / ROWS;
}

/* Baseline in the same run: libcbor's own cbor_load() on the same bytes
 * (a generic DOM, no limits: fine here, the bytes are our own encoding; it
 * must never see bytes from a socket). */
#include <cbor.h>

BENCH(wire_cbor_load_update_100k_ms, "ms",
      "baseline: libcbor cbor_load of the same update (no limits, DOM)")
{
    build_snapshot();
    struct cbor_load_result res;
    uint64_t t0 = bench_now_ns();
    cbor_item_t *item = cbor_load(encoded.data + 4, encoded.len - 4, &res);
    uint64_t t1 = bench_now_ns();
    if (!item || res.error.code != CBOR_ERR_NONE)
        return -1;
    cbor_decref(&item);
    return (double)(t1 - t0) / 1e6;
}
