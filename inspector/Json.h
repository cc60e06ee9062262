/* Json.h: a minimal streaming JSON writer (strings escaped: printable UTF-8
 * passed through, everything the sanitiser would not print as \u escapes, see
 * Sanitise.h; numbers as integers or finite doubles). */
#ifndef ASYNCTOP_JSON_H
#define ASYNCTOP_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 16

typedef struct Json {
    FILE *f;
    int depth;
    bool need_comma[JSON_MAX_DEPTH];
    bool after_key;
} Json;

void Json_init(Json *j, FILE *f);
void Json_object(Json *j);
void Json_array(Json *j);
/* Closes the innermost object or array. */
void Json_end(Json *j, char close);
void Json_key(Json *j, const char *key);
void Json_str(Json *j, const char *s); /* NULL writes null */
void Json_u64(Json *j, uint64_t v);
void Json_i64(Json *j, int64_t v);
void Json_num(Json *j, double v); /* non-finite writes null */
void Json_bool(Json *j, bool v);
void Json_null(Json *j);
/* A member of the object being written: key, then its value (Json_key + Json_str etc.). */
void Json_fieldStr(Json *j, const char *key, const char *s);
void Json_fieldU64(Json *j, const char *key, uint64_t v);
void Json_fieldNum(Json *j, const char *key, double v);
void Json_fieldBool(Json *j, const char *key, bool v);

#endif
