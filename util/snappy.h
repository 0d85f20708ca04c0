/* Snappy block format (github.com/google/snappy format_description.txt), checked without
 * decompressing: the varint length header, every literal and copy tag, copy offsets within the
 * output so far, and the total length, exactly as Go's snappy.Decode (the decoder influxd 1.x
 * runs on a Prometheus remote-write body) accepts or refuses a block. Pure; any thread. */
#ifndef IR_UTIL_SNAPPY_H
#define IR_UTIL_SNAPPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What Go's snappy package says of a block it refuses (influxd passes it on in its 400). */
#define SNAPPY_CORRUPT_TEXT "snappy: corrupt input"

/* True when src[0..len) decodes as one snappy block; *decoded_len (may be NULL) then gets the
 * length of the decoded data (at most 0xffffffff). Reads src only, allocates nothing, and runs
 * in time linear in len. */
bool snappy_block_is_valid(const unsigned char *src, size_t len, uint64_t *decoded_len);

#endif
