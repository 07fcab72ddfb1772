/*
 * callback_lib.c -- a shared library for test_unwind.c: one function with a
 * frame of FRAME bytes that calls back into the program, so that a stack
 * passes through a library.  Built twice (make: libcallback_a.so with
 * FRAME=256, libcallback_b.so with FRAME=4096): the same code at the same
 * offsets with different frame sizes, so a rule cached for one and used
 * for the other after a dlclose and dlopen at the same address would give
 * a wrong stack.
 */
#ifndef FRAME
#define FRAME 256
#endif

typedef void (*callback_fn)(int);

__attribute__((noinline, visibility("default"))) void callback_through(callback_fn cb, int arg)
{
    volatile char frame[FRAME];
    frame[0] = (char)arg;
    cb(arg + frame[0] - frame[0]);
    frame[1] = 0;
}
