/* FlameView.h: a stall's profile as text — the small flame view of the slow-event detail and
 * the BLOCKED view (`62% parse_request ← handle_command ← on_read`, heaviest stack first), its
 * JSON for `asynctop dump --json`, and its conversion from the wire. */
#ifndef ASYNCTOP_FLAMEVIEW_H
#define ASYNCTOP_FLAMEVIEW_H

#include "Applier.h"
#include "Json.h"
#include "Model.h"
#include "Screens.h"

#include "at_wire.h"

/* The wire's profile with its stacks resolved through the applier's tables (at most
 * MODEL_MAX_PROFILE stacks; samples of the rest count as other); NULL when it has no samples
 * or memory runs out. The caller owns it (Profile_free). */
Profile *FlameView_fromWire(const Applier *a, const at_wire_profile_t *w);
/* One line of the flame view into out (outlen > 0): "62% f ← g ← h" for stack i of p,
 * innermost first, its share of p's samples, frame names sanitised (Sanitise.h), cut at a
 * frame boundary to `width` screen columns ("…" or "..." marks the cut); the ASCII arrow "<-"
 * when `ascii`. Returns out. */
char *FlameView_line(const Profile *p, uint32_t i, int width, bool ascii, char *out, size_t outlen);
/* Adds the view to t: a heading with the sample count and interval, one line per stack
 * (heaviest first) and the folded `other` count; `none` (NULL: nothing) when p is NULL. */
void FlameView_lines(TextLines *t, const Profile *p, int width, const char *none);
/* Writes `"key": {samples, interval_ns, other, stacks: [{count, share, frames}]}` (null when
 * p is NULL) into an open JSON object. */
void FlameView_json(Json *j, const char *key, const Profile *p);

#endif
