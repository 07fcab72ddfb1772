/*
 * prodcons -- cross-thread frees through a producer/consumer queue.
 *
 * A producer thread allocates blocks (mostly small, some up to 4 KiB),
 * writes them, and passes them through a bounded single-producer /
 * single-consumer ring to a consumer thread, which checks and frees them.
 * Every free is therefore a remote free: the pattern of a pipeline stage or
 * of a worker pool handing results back.  The ring itself is lock-free;
 * a side that finds it full or empty sleeps until it is half full.
 */
#include "common.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>

#define RING 4096u         /* slots, a power of two                    */
#define WAKE (RING / 2)    /* a sleeping side is woken at half full     */

/*
 * Head and tail are only ever advanced by their own side.  A side that
 * finds the ring full (producer) or empty (consumer) sleeps on a condition
 * variable until the other side has moved it to half full, so the threads
 * hand over blocks in bursts instead of waking each other per item, and a
 * waiting thread burns no CPU.  The sleep flag and the index are written
 * and then the other one read, both sequentially consistent, so a waker
 * and a sleeper cannot both miss each other.
 */
struct ring {
    alignas(64) _Atomic size_t head; /* next slot to write (producer)  */
    alignas(64) _Atomic size_t tail; /* next slot to read  (consumer)  */
    alignas(64) _Atomic bool producer_asleep;
    _Atomic bool consumer_asleep;
    _Atomic bool producer_done;
    pthread_mutex_t lock;
    pthread_cond_t wake_producer, wake_consumer;
    alignas(64) unsigned char *slot[RING];
};

static struct ring q = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake_producer = PTHREAD_COND_INITIALIZER,
    .wake_consumer = PTHREAD_COND_INITIALIZER,
};
static uint64_t items;
static uint64_t produced_sum, consumed_sum;

static size_t filled(void)
{
    return atomic_load(&q.head) - atomic_load(&q.tail);
}

/* Sleep until ready() holds, flagging `asleep` so the other side wakes us. */
static void sleep_until(bool (*ready)(void), _Atomic bool *asleep,
                        pthread_cond_t *cv)
{
    pthread_mutex_lock(&q.lock);
    for (;;) {
        atomic_store(asleep, true);
        if (ready())
            break;
        pthread_cond_wait(cv, &q.lock);
    }
    atomic_store(asleep, false);
    pthread_mutex_unlock(&q.lock);
}

static void wake(_Atomic bool *asleep, pthread_cond_t *cv)
{
    pthread_mutex_lock(&q.lock);
    if (atomic_load(asleep)) {
        atomic_store(asleep, false);
        pthread_cond_signal(cv);
    }
    pthread_mutex_unlock(&q.lock);
}

static bool producer_may_go(void)
{
    return filled() <= WAKE;
}

static bool consumer_may_go(void)
{
    return filled() >= WAKE || atomic_load(&q.producer_done);
}

static size_t item_size(rng_t *r)
{
    return banded_size(r, 60, 64, 95, 512, 4096);
}

static void *producer(void *arg)
{
    (void)arg;
    rng_t r = rng_make(4);
    uint64_t h = 0;
    for (uint64_t i = 0; i < items; i++) {
        size_t n = item_size(&r);
        uint64_t tag = rng_next(&r);
        unsigned char *p = new_block(n, tag, n);
        h = mix64(h, tag ^ (uint64_t)n);

        size_t head = atomic_load_explicit(&q.head, memory_order_relaxed);
        if (head - atomic_load_explicit(&q.tail, memory_order_acquire) == RING)
            sleep_until(producer_may_go, &q.producer_asleep, &q.wake_producer);
        q.slot[head & (RING - 1)] = p;
        atomic_store(&q.head, head + 1);
        if (atomic_load(&q.consumer_asleep) && filled() >= WAKE)
            wake(&q.consumer_asleep, &q.wake_consumer);
    }
    atomic_store(&q.producer_done, true);
    wake(&q.consumer_asleep, &q.wake_consumer);
    produced_sum = h;
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    uint64_t h = 0;
    for (uint64_t i = 0; i < items; i++) {
        size_t tail = atomic_load_explicit(&q.tail, memory_order_relaxed);
        if (atomic_load_explicit(&q.head, memory_order_acquire) == tail)
            sleep_until(consumer_may_go, &q.consumer_asleep, &q.wake_consumer);
        unsigned char *p = q.slot[tail & (RING - 1)];
        atomic_store(&q.tail, tail + 1);
        if (atomic_load(&q.producer_asleep) && filled() <= WAKE)
            wake(&q.producer_asleep, &q.wake_producer);

        h = free_block(p, 4096, "prodcons", h);
    }
    consumed_sum = h;
    return NULL;
}

int main(int argc, char **argv)
{
    double scale = parse_scale(argc, argv);
    items = scaled(scale, 10000000, 1000);

    pthread_t pt, ct;
    if (pthread_create(&ct, NULL, consumer, NULL) ||
        pthread_create(&pt, NULL, producer, NULL))
        DIE("prodcons: cannot create threads");
    pthread_join(pt, NULL);
    pthread_join(ct, NULL);

    if (produced_sum != consumed_sum)
        DIE("prodcons: producer and consumer checksums differ");
    printf("prodcons items=%" PRIu64 " checksum=%016" PRIx64 "\n", items,
           consumed_sum);
    return 0;
}
