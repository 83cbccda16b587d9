// DEFLATE decompression (RFC 1951), for gzip'd IDX files and NPZ archives. A canonical-Huffman
// decoder in the manner of zlib's "puff": small, bounds-checked at every read, no dependencies.
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include "nabla_kernels.h"

typedef struct {
    const unsigned char *in; size_t inlen, inpos;
    unsigned long bitbuf; int bitcnt;
    unsigned char *out; size_t outlen, outcap;
    int err;
} nb_inflate_state;

typedef struct { short count[16]; short symbol[288]; } nb_huffman;

static int nb_bits(nb_inflate_state *s, int need) {
    unsigned long val = s->bitbuf;
    while (s->bitcnt < need) {
        if (s->inpos >= s->inlen) { s->err = -2; return 0; }   // ran out of input
        val |= (unsigned long)s->in[s->inpos++] << s->bitcnt;
        s->bitcnt += 8;
    }
    s->bitbuf = val >> need;
    s->bitcnt -= need;
    return (int)(val & ((1UL << need) - 1));
}

static int nb_put(nb_inflate_state *s, unsigned char c) {
    if (s->outlen == s->outcap) {
        size_t cap = s->outcap ? s->outcap * 2 : 65536;
        unsigned char *p = realloc(s->out, cap);
        if (!p) { s->err = -4; return -1; }
        s->out = p; s->outcap = cap;
    }
    s->out[s->outlen++] = c;
    return 0;
}

static int nb_stored(nb_inflate_state *s) {
    s->bitbuf = 0; s->bitcnt = 0;
    if (s->inpos + 4 > s->inlen) return -2;
    unsigned len = s->in[s->inpos] | (s->in[s->inpos + 1] << 8);
    unsigned nlen = s->in[s->inpos + 2] | (s->in[s->inpos + 3] << 8);
    s->inpos += 4;
    if (len != (~nlen & 0xffff)) return -5;                      // corrupt stored block
    if (s->inpos + len > s->inlen) return -2;
    for (unsigned i = 0; i < len; i++) if (nb_put(s, s->in[s->inpos + i])) return s->err;
    s->inpos += len;
    return 0;
}

static int nb_decode(nb_inflate_state *s, const nb_huffman *h) {
    int code = 0, first = 0, index = 0;
    for (int len = 1; len < 16; len++) {
        code |= nb_bits(s, 1);
        if (s->err) return s->err;
        int count = h->count[len];
        if (code - count < first) return h->symbol[index + (code - first)];
        index += count; first += count;
        first <<= 1; code <<= 1;
    }
    return -6;                                                   // no such code
}

// Builds the decoding tables; returns 0 for a complete code, > 0 incomplete, < 0 over-subscribed.
static int nb_construct(nb_huffman *h, const short *length, int n) {
    short offs[16];
    for (int len = 0; len < 16; len++) h->count[len] = 0;
    for (int symbol = 0; symbol < n; symbol++) h->count[length[symbol]]++;
    if (h->count[0] == n) return 0;
    int left = 1;
    for (int len = 1; len < 16; len++) { left <<= 1; left -= h->count[len]; if (left < 0) return left; }
    offs[1] = 0;
    for (int len = 1; len < 15; len++) offs[len + 1] = offs[len] + h->count[len];
    for (int symbol = 0; symbol < n; symbol++) if (length[symbol] != 0) h->symbol[offs[length[symbol]]++] = (short)symbol;
    return left;
}

static const short nb_lbase[29] = {3,4,5,6,7,8,9,10,11,13,15,17,19,23,27,31,35,43,51,59,67,83,99,115,131,163,195,227,258};
static const short nb_lext[29] = {0,0,0,0,0,0,0,0,1,1,1,1,2,2,2,2,3,3,3,3,4,4,4,4,5,5,5,5,0};
static const short nb_dbase[30] = {1,2,3,4,5,7,9,13,17,25,33,49,65,97,129,193,257,385,513,769,1025,1537,2049,3073,4097,6145,8193,12289,16385,24577};
static const short nb_dext[30] = {0,0,0,0,1,1,2,2,3,3,4,4,5,5,6,6,7,7,8,8,9,9,10,10,11,11,12,12,13,13};

static int nb_codes(nb_inflate_state *s, const nb_huffman *lencode, const nb_huffman *distcode) {
    for (;;) {
        int symbol = nb_decode(s, lencode);
        if (symbol < 0) return symbol;
        if (symbol < 256) { if (nb_put(s, (unsigned char)symbol)) return s->err; continue; }
        if (symbol == 256) return 0;
        symbol -= 257;
        if (symbol >= 29) return -7;
        int len = nb_lbase[symbol] + nb_bits(s, nb_lext[symbol]);
        int dsym = nb_decode(s, distcode);
        if (dsym < 0) return dsym;
        if (dsym >= 30) return -7;
        size_t dist = (size_t)nb_dbase[dsym] + (size_t)nb_bits(s, nb_dext[dsym]);
        if (s->err) return s->err;
        if (dist > s->outlen) return -8;                           // distance before the start
        for (int i = 0; i < len; i++) if (nb_put(s, s->out[s->outlen - dist])) return s->err;
    }
}

static int nb_fixed(nb_inflate_state *s) {
    nb_huffman lencode, distcode;
    short lengths[288];
    int symbol = 0;
    for (; symbol < 144; symbol++) lengths[symbol] = 8;
    for (; symbol < 256; symbol++) lengths[symbol] = 9;
    for (; symbol < 280; symbol++) lengths[symbol] = 7;
    for (; symbol < 288; symbol++) lengths[symbol] = 8;
    nb_construct(&lencode, lengths, 288);
    for (symbol = 0; symbol < 30; symbol++) lengths[symbol] = 5;
    nb_construct(&distcode, lengths, 30);
    return nb_codes(s, &lencode, &distcode);
}

static int nb_dynamic(nb_inflate_state *s) {
    static const short order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    short lengths[320];
    nb_huffman lencode, distcode;
    int nlen = nb_bits(s, 5) + 257, ndist = nb_bits(s, 5) + 1, ncode = nb_bits(s, 4) + 4;
    if (s->err) return s->err;
    if (nlen > 286 || ndist > 30) return -9;
    int index = 0;
    for (; index < ncode; index++) lengths[order[index]] = (short)nb_bits(s, 3);
    for (; index < 19; index++) lengths[order[index]] = 0;
    if (s->err) return s->err;
    if (nb_construct(&lencode, lengths, 19) != 0) return -10;
    index = 0;
    while (index < nlen + ndist) {
        int symbol = nb_decode(s, &lencode);
        if (symbol < 0) return symbol;
        if (symbol < 16) { lengths[index++] = (short)symbol; continue; }
        int len = 0;
        if (symbol == 16) { if (index == 0) return -11; len = lengths[index - 1]; symbol = 3 + nb_bits(s, 2); }
        else if (symbol == 17) symbol = 3 + nb_bits(s, 3);
        else symbol = 11 + nb_bits(s, 7);
        if (s->err) return s->err;
        if (index + symbol > nlen + ndist) return -12;
        while (symbol--) lengths[index++] = (short)len;
    }
    if (lengths[256] == 0) return -13;
    int err = nb_construct(&lencode, lengths, nlen);
    if (err < 0 || (err > 0 && nlen - lencode.count[0] != 1)) return -14;
    err = nb_construct(&distcode, lengths + nlen, ndist);
    if (err < 0 || (err > 0 && ndist - distcode.count[0] != 1)) return -15;
    return nb_codes(s, &lencode, &distcode);
}

long nb_inflate(const unsigned char *in, size_t inlen, unsigned char **out, size_t *outlen, size_t *consumed) {
    nb_inflate_state s = {in, inlen, 0, 0, 0, NULL, 0, 0, 0};
    int last, err = 0;
    do {
        last = nb_bits(&s, 1);
        int type = nb_bits(&s, 2);
        if (s.err) { err = s.err; break; }
        if (type == 0) err = nb_stored(&s);
        else if (type == 1) err = nb_fixed(&s);
        else if (type == 2) err = nb_dynamic(&s);
        else err = -3;                                              // invalid block type
        if (!err && s.err) err = s.err;
    } while (!last && !err);
    if (err) { free(s.out); *out = NULL; *outlen = 0; return err; }
    *out = s.out; *outlen = s.outlen; *consumed = s.inpos;
    return 0;
}

void nb_free(void *p) { free(p); }

static unsigned int nb_crc_table[256];
static pthread_once_t nb_crc_once = PTHREAD_ONCE_INIT;
static void nb_crc_init(void) {
    for (unsigned int i = 0; i < 256; i++) {
        unsigned int c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        nb_crc_table[i] = c;
    }
}

unsigned int nb_crc32(unsigned int crc, const unsigned char *p, size_t n) {
    pthread_once(&nb_crc_once, nb_crc_init);
    const unsigned int *table = nb_crc_table;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}
