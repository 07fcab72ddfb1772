/*
 * mixedlife -- a single-threaded small-object program with mixed lifetimes,
 * the shape of classic C programs such as a bignum factoriser or a logic
 * minimiser.
 *
 * The work is arithmetic modulo the prime p = 2^255 - 19 on numbers kept in
 * malloc'd blocks of 32-bit limbs, a new block for every result, as a bignum
 * library without in-place operations does.  That gives four lifetimes:
 *
 *   temporaries -- each product, shifted-off high part, masked low part and
 *                  partial sum of a multiplication and its reduction modulo
 *                  p is a block of 17-113 bytes that dies an operation or
 *                  two later (about ten of them per multiplication);
 *   working set -- 4096 field elements; each step combines some of them
 *                  (product, multiply-add, squared difference, triple
 *                  product, small multiple, product with a kept value) and
 *                  the result replaces one at random;
 *   long-lived  -- about one result in 1024 is copied into a store kept to
 *                  the end: it grows slowly, and its blocks are allocated at
 *                  no particular moment, among the temporaries;
 *   vectors     -- every 16384 steps a batch of 256-4000 working-set values
 *                  is inverted together (Montgomery's trick: the running
 *                  products, one inversion by exponentiation, then two
 *                  multiplications back per value); the running products go
 *                  into an array grown by realloc, doubling from 8 entries
 *                  (32 bytes each), freed when the batch is done.
 *
 * Why it matters: almost every request is small and most die young, so the
 * time goes to the fast paths of malloc and free; but the survivors (the
 * working set, the long-lived store) are allocated among the temporaries
 * and so are scattered over the pages the temporaries used: how well an
 * allocator reuses that freed memory shows in its footprint and locality.
 * The batch vectors add realloc growth through sizes where an allocator
 * may move a block, extend it in place or switch to another size class.
 *
 * Each number's block is tagged (common.h) with a digest of its limbs, and
 * the header, tail byte and digest are checked before it is freed; every
 * inverse is multiplied back by its value and must give 1.  The checksum
 * mixes in every number freed.  3,000,000 steps at scale 1, never fewer
 * than 20,000 (so that at least one batch runs).
 */
#include "common.h"

#define LIMBS 8u           /* a reduced value is below 2^255: 8 limbs      */
#define MAXL 32u           /* scratch limbs; a triple product needs 24     */
#define NUM_MAX (16u + 4u * (MAXL + 1u) + 1u)
#define WSET 4096u         /* working set                                  */
#define KEEP_MASK 1023u    /* keep a result whose low 10 bits are zero     */
#define BATCH_EVERY 16384u /* steps between batch inversions               */

/*
 * A number is a tagged block: the tag (a digest of the limbs) and the block
 * size in its first 16 bytes, then the limbs, least significant first,
 * with no leading zero limb (zero has none), then the tag's low byte.
 * The number of limbs follows from the block size.
 */
typedef unsigned char num;

static uint64_t checksum, made;
static num *P; /* the modulus */

/* Two running sums (Fletcher's idea: the second weighs each limb by its
 * position), cheap next to the arithmetic, mixed at the end. */
static uint64_t digest(const uint32_t *l, size_t len)
{
    uint64_t s1 = len, s2 = 0;
    for (size_t i = 0; i < len; i++) {
        s1 += l[i];
        s2 += s1;
    }
    return mix64(s1, s2);
}

static size_t num_len(const num *x)
{
    uint64_t sz;
    memcpy(&sz, x + 8, 8);
    return (size_t)(sz - 17) / 4;
}

static const uint32_t *limbs(const num *x)
{
    return (const uint32_t *)(const void *)(x + 16);
}

/* A new number holding the len limbs at l (leading zeros dropped). */
static num *num_make(const uint32_t *l, size_t len)
{
    while (len && l[len - 1] == 0)
        len--;
    size_t n = 16 + 4 * len + 1;
    num *x = xmalloc(n);
    memcpy(x + 16, l, 4 * len);
    stamp_block(x, n, digest(l, len));
    made++;
    return x;
}

static num *num_copy(const num *x)
{
    return num_make(limbs(x), num_len(x));
}

static void num_free(num *x)
{
    uint64_t tag;
    check_block(x, NUM_MAX, "mixedlife"); /* the size is sane before we use it */
    memcpy(&tag, x, 8);
    if (digest(limbs(x), num_len(x)) != tag)
        DIE("mixedlife: a number's limbs were corrupted");
    checksum = free_block(x, NUM_MAX, "mixedlife", checksum);
}

static int is_one(const num *x)
{
    return num_len(x) == 1 && limbs(x)[0] == 1;
}

/* ---- unsigned arithmetic, each result a new block ------------------------ */

static int n_cmp(const num *a, const num *b)
{
    size_t la = num_len(a), lb = num_len(b);
    if (la != lb)
        return la < lb ? -1 : 1;
    const uint32_t *x = limbs(a), *y = limbs(b);
    for (size_t i = la; i-- > 0;)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    return 0;
}

static num *n_add(const num *a, const num *b)
{
    size_t la = num_len(a), lb = num_len(b);
    if (la < lb) {
        const num *t = a;
        a = b;
        b = t;
        size_t tl = la;
        la = lb;
        lb = tl;
    }
    const uint32_t *x = limbs(a), *y = limbs(b);
    uint32_t r[MAXL + 1];
    uint64_t c = 0;
    for (size_t i = 0; i < la; i++) {
        c += (uint64_t)x[i] + (i < lb ? y[i] : 0);
        r[i] = (uint32_t)c;
        c >>= 32;
    }
    r[la] = (uint32_t)c;
    return num_make(r, la + 1);
}

/* a - b, a >= b */
static num *n_sub(const num *a, const num *b)
{
    size_t la = num_len(a), lb = num_len(b);
    const uint32_t *x = limbs(a), *y = limbs(b);
    uint32_t r[MAXL];
    uint64_t borrow = 0;
    for (size_t i = 0; i < la; i++) {
        uint64_t d = (uint64_t)x[i] - (i < lb ? y[i] : 0) - borrow;
        r[i] = (uint32_t)d;
        borrow = (d >> 32) & 1;
    }
    if (borrow)
        DIE("mixedlife: subtraction went negative");
    return num_make(r, la);
}

static num *n_mul(const num *a, const num *b)
{
    size_t la = num_len(a), lb = num_len(b);
    const uint32_t *x = limbs(a), *y = limbs(b);
    uint32_t r[MAXL];
    if (la + lb > MAXL)
        DIE("mixedlife: product too wide");
    memset(r, 0, sizeof r);
    for (size_t i = 0; i < la; i++) {
        uint64_t c = 0;
        for (size_t j = 0; j < lb; j++) {
            c += (uint64_t)x[i] * y[j] + r[i + j];
            r[i + j] = (uint32_t)c;
            c >>= 32;
        }
        r[i + lb] = (uint32_t)c;
    }
    return num_make(r, la + lb);
}

static num *n_mul_small(const num *a, uint32_t k)
{
    size_t la = num_len(a);
    const uint32_t *x = limbs(a);
    uint32_t r[MAXL + 1];
    uint64_t c = 0;
    for (size_t i = 0; i < la; i++) {
        c += (uint64_t)x[i] * k;
        r[i] = (uint32_t)c;
        c >>= 32;
    }
    r[la] = (uint32_t)c;
    return num_make(r, la + 1);
}

/* a >> 255 and a mod 2^255: the split that reduction modulo 2^255 - 19 uses */
static num *n_high255(const num *a)
{
    size_t la = num_len(a);
    const uint32_t *x = limbs(a);
    uint32_t r[MAXL];
    size_t n = la > LIMBS - 1 ? la - (LIMBS - 1) : 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t lo = x[LIMBS - 1 + i] >> 31;
        uint32_t hi = LIMBS + i < la ? x[LIMBS + i] << 1 : 0;
        r[i] = lo | hi;
    }
    return num_make(r, n);
}

static num *n_low255(const num *a)
{
    size_t la = num_len(a);
    uint32_t r[LIMBS];
    size_t n = la < LIMBS ? la : LIMBS;
    memcpy(r, limbs(a), 4 * n);
    if (n == LIMBS)
        r[LIMBS - 1] &= 0x7fffffffu;
    return num_make(r, n);
}

static int over255(const num *a)
{
    size_t la = num_len(a);
    return la > LIMBS || (la == LIMBS && (limbs(a)[LIMBS - 1] >> 31));
}

/* ---- the field modulo p = 2^255 - 19 ---------------------------------- */

/* x mod p; consumes x.  2^255 = 19 (mod p), so fold the high part down
 * (times 19) until the value fits in 255 bits, then subtract p at most once. */
static num *reduce(num *x)
{
    while (over255(x)) {
        num *hi = n_high255(x), *lo = n_low255(x);
        num_free(x);
        num *t = n_mul_small(hi, 19);
        num_free(hi);
        x = n_add(lo, t);
        num_free(lo);
        num_free(t);
    }
    if (n_cmp(x, P) >= 0) {
        num *y = n_sub(x, P);
        num_free(x);
        x = y;
    }
    return x;
}

static num *f_mul(const num *a, const num *b)
{
    return reduce(n_mul(a, b));
}

static num *f_add(const num *a, const num *b)
{
    return reduce(n_add(a, b));
}

static num *f_sub(const num *a, const num *b)
{
    num *neg = n_sub(P, b);
    num *s = n_add(a, neg);
    num_free(neg);
    return reduce(s);
}

/* a^(p-2) = 1/a for a != 0 (Fermat), by square and multiply from the top
 * bit of p - 2 = 2^255 - 21, which is bit 254. */
static num *f_inv(const num *a)
{
    uint32_t e[LIMBS];
    for (unsigned i = 0; i < LIMBS; i++)
        e[i] = 0xffffffffu;
    e[0] = 0xffffffebu;
    e[LIMBS - 1] = 0x7fffffffu;

    num *r = num_copy(a);
    for (int bit = 253; bit >= 0; bit--) {
        num *t = f_mul(r, r);
        num_free(r);
        r = t;
        if ((e[bit / 32] >> (bit % 32)) & 1) {
            t = f_mul(r, a);
            num_free(r);
            r = t;
        }
    }
    return r;
}

/* ---- the program ------------------------------------------------------- */

struct store { /* the long-lived values, kept to the end */
    num **v;
    size_t n, cap;
};

static void keep(struct store *s, const num *x)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        num **v = realloc(s->v, cap * sizeof *v);
        if (!v)
            DIE("mixedlife: out of memory growing the store");
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = num_copy(x);
}

static num *random_value(rng_t *r)
{
    uint32_t l[LIMBS];
    for (unsigned i = 0; i < LIMBS; i++)
        l[i] = (uint32_t)rng_next(r);
    l[LIMBS - 1] &= 0x7fffffffu;
    return reduce(num_make(l, LIMBS));
}

/* One step: combine working-set values, the result replaces a random one. */
static void step(num **w, struct store *kept, rng_t *r)
{
    const num *a = w[rng_below(r, WSET)], *b = w[rng_below(r, WSET)];
    num *res, *t, *u;
    switch (rng_below(r, 8)) {
    case 0:
    case 1:
    case 2:
        res = f_mul(a, b);
        break;
    case 3: /* multiply-add */
        t = f_mul(a, b);
        res = f_add(t, w[rng_below(r, WSET)]);
        num_free(t);
        break;
    case 4: /* squared difference */
        t = f_sub(a, b);
        res = f_mul(t, t);
        num_free(t);
        break;
    case 5: /* triple product, reduced once: a 24-limb intermediate */
        t = n_mul(a, b);
        u = n_mul(t, w[rng_below(r, WSET)]);
        num_free(t);
        res = reduce(u);
        break;
    case 6: /* small multiple */
        res = reduce(n_mul_small(a, (uint32_t)rng_range(r, 2, 0xffffffffu)));
        break;
    default: /* times a kept value */
        res = kept->n ? f_mul(a, kept->v[rng_below(r, kept->n)]) : f_add(a, b);
        break;
    }
    if (num_len(res) == 0) {
        /* zero would spread through the products: take fresh input instead */
        num_free(res);
        res = random_value(r);
    }
    if ((limbs(res)[0] & KEEP_MASK) == 0)
        keep(kept, res);
    num **slot = &w[rng_below(r, WSET)];
    num_free(*slot);
    *slot = res;
}

struct fe { /* a reduced value stored inline, zero-padded */
    uint32_t l[LIMBS];
};

static uint64_t fe_digest(uint64_t h, const struct fe *v)
{
    return mix64(h, digest(v->l, LIMBS));
}

/* Invert a batch of working-set values at once; returns how many. */
static uint64_t batch(num **w, rng_t *r)
{
    size_t want = (size_t)rng_range(r, 256, 4000), n = 0;
    const num **a = xmalloc(want * sizeof *a);
    for (size_t i = 0; i < want; i++) {
        const num *x = w[rng_below(r, WSET)];
        if (num_len(x))
            a[n++] = x;
    }
    if (n == 0) {
        free(a);
        return 0;
    }

    /* running products pre[i] = a[0] * ... * a[i], in a doubling array */
    size_t cap = 8;
    struct fe *pre = xmalloc(cap * sizeof *pre);
    uint64_t seen = 0; /* digest of the entries written so far */
    num *acc = NULL;
    for (size_t i = 0; i < n; i++) {
        num *next = acc ? f_mul(acc, a[i]) : num_copy(a[i]);
        if (acc)
            num_free(acc);
        acc = next;
        if (i == cap) {
            struct fe *q = realloc(pre, 2 * cap * sizeof *pre);
            if (!q)
                DIE("mixedlife: out of memory growing a batch");
            pre = q;
            cap *= 2;
            uint64_t again = 0;
            for (size_t j = 0; j < i; j++)
                again = fe_digest(again, &pre[j]);
            if (again != seen)
                DIE("mixedlife: a batch array lost its contents in realloc");
        }
        memset(&pre[i], 0, sizeof pre[i]);
        memcpy(pre[i].l, limbs(acc), 4 * num_len(acc));
        seen = fe_digest(seen, &pre[i]);
    }

    /* inv = 1 / (a[0] * ... * a[i]), walking i down */
    num *inv = f_inv(acc);
    num_free(acc);
    for (size_t i = n; i-- > 0;) {
        num *ai; /* 1 / a[i] */
        if (i) {
            num *before = num_make(pre[i - 1].l, LIMBS);
            ai = f_mul(inv, before);
            num_free(before);
            num *t = f_mul(inv, a[i]);
            num_free(inv);
            inv = t;
        } else {
            ai = inv;
        }
        num *one = f_mul(ai, a[i]);
        if (!is_one(one))
            DIE("mixedlife: an inverse does not multiply back to 1");
        num_free(one);
        num_free(ai);
    }
    free(pre);
    free(a);
    return n;
}

int main(int argc, char **argv)
{
    double scale = parse_scale(argc, argv);
    uint64_t steps = scaled(scale, 3000000, 20000);
    rng_t r = rng_make(7);

    uint32_t pl[LIMBS];
    for (unsigned i = 0; i < LIMBS; i++)
        pl[i] = 0xffffffffu;
    pl[0] = 0xffffffedu;
    pl[LIMBS - 1] = 0x7fffffffu;
    P = num_make(pl, LIMBS);

    num **w = xmalloc(WSET * sizeof *w);
    for (unsigned i = 0; i < WSET; i++)
        w[i] = random_value(&r);
    struct store kept = { NULL, 0, 0 };

    uint64_t inverted = 0;
    for (uint64_t s = 1; s <= steps; s++) {
        step(w, &kept, &r);
        if (s % BATCH_EVERY == 0)
            inverted += batch(w, &r);
    }

    for (unsigned i = 0; i < WSET; i++)
        num_free(w[i]);
    free(w);
    for (size_t i = 0; i < kept.n; i++)
        num_free(kept.v[i]);
    free(kept.v);
    num_free(P);

    fprintf(stderr, "METRIC numbers_made=%" PRIu64 "\n", made);
    metric_mib("rss_peak_mib", status_kib("VmHWM"));
    printf("mixedlife steps=%" PRIu64 " kept=%zu inverted=%" PRIu64
           " checksum=%016" PRIx64 "\n",
           steps, kept.n, inverted, checksum);
    return 0;
}
