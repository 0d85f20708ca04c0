/* Little-endian integers in byte buffers (the spool's record and write headers): the one
 * encoder and decoder. Pure, any thread. */
#ifndef IR_UTIL_LE_H
#define IR_UTIL_LE_H

#include <stdint.h>

/* Writes the low n bytes of v at p, least significant first. */
static inline void
le_put(unsigned char *p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

/* Reads n bytes at p, least significant first. */
static inline uint64_t
le_get(const unsigned char *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

#endif
