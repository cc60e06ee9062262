/* Client.h: one connection to a target's socket on a libuv loop: connects,
 * reads frames through the wire's frame reader and decoder, answers hello
 * with subscribe, sends requests, and reports why it closed in words a
 * user can act on. */
#ifndef ASYNCTOP_CLIENT_H
#define ASYNCTOP_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "at_wire.h"
#include "at_wire_frame.h"

typedef enum ClientState {
    CL_IDLE,
    CL_CONNECTING,
    CL_HELLO, /* connected, waiting for hello */
    CL_LIVE,  /* subscribed */
    CL_CLOSING,
    CL_CLOSED
} ClientState;

/* Why a connection ended (ClientState CL_CLOSED). */
typedef enum ClientEnd {
    END_NONE,
    END_EOF,        /* the process closed the connection (exit, bye) */
    END_NOSOCKET,   /* no socket at the path */
    END_REFUSED,    /* nobody listens: a stale socket */
    END_PERMISSION, /* EACCES, or the server refused our uid */
    END_VERSION,    /* a protocol version we do not speak */
    END_PROTOCOL,   /* garbage, limits, unexpected messages */
    END_TIMEOUT,    /* no hello in time */
    END_ERROR,      /* other I/O errors, or a fatal error frame */
} ClientEnd;

typedef struct Client Client;
typedef void (*Client_MsgCb)(Client *c, const at_wire_msg_t *msg);
typedef void (*Client_EndCb)(Client *c);

struct Client {
    uv_loop_t *loop;
    uv_pipe_t pipe;
    uv_timer_t timer;
    uv_connect_t connect_req;
    at_wire_reader_t reader;
    ClientState state;
    ClientEnd end;
    char error[320]; /* the message for `end` */
    char path[256];
    uint32_t interval_ms;
    uint32_t loop_id; /* the loop to subscribe to (0 = main); set before Client_connect */
    uint64_t next_id;
    bool subscribe; /* send subscribe after hello (false: probe only) */
    int open_handles;
    Client_MsgCb on_msg;
    Client_EndCb on_end;    /* called once when the connection is over */
    Client_EndCb on_closed; /* called once its handles are closed (may free) */
    void *data;
    uint64_t bytes_in, frames_in;
};

/* Starts connecting to path on loop; subscribes with interval_ms once the
 * hello arrives (if subscribe). Returns 0 or a negative errno (then nothing
 * was started and c->error says why). Loop thread only. */
int Client_connect(Client *c, uv_loop_t *loop, const char *path, uint32_t interval_ms,
                   bool subscribe);
/* Sends a request (its id is assigned here and returned; 0 when not live or
 * out of memory). */
uint64_t Client_request(Client *c, at_wire_request_t *req);
/* Sends bye and closes; on_end is called (END_NONE) if not yet, then
 * on_closed once the handles are closed. Idempotent. */
void Client_close(Client *c);

/* The message a user sees for an end reason with its details. */
const char *Client_endName(ClientEnd e);

#endif
