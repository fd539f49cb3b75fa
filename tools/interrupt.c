/* The deferral of SIGINT, SIGTERM and SIGHUP around an output's write (the
 * library installs no handlers; the command does, for that moment only). */
#define _POSIX_C_SOURCE 200809L
#include "interrupt.h"

#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

static const int signals[] = {SIGINT, SIGTERM, SIGHUP};
#define N_SIGNALS (int)(sizeof signals / sizeof *signals)
static struct sigaction saved[N_SIGNALS];
/* Atomic, not volatile sig_atomic_t: the signal may land on one of the
 * network's threads while the main thread polls it (lock-free atomics are
 * safe in a handler). */
static atomic_int pending;

static void on_signal(int sig)
{
    if (pending) { /* the second: now, with the default action */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    pending = sig;
    static const char note[] =
        "\nsrrun: stopping, leaving no partial output; interrupt again to stop at once\n";
    const ssize_t n = write(STDERR_FILENO, note, sizeof note - 1);
    (void)n; /* a failure has nowhere to be told */
}

void defer_interrupts(const char *path)
{
    struct stat st;
    pending = 0;
    for (int i = 0; i < N_SIGNALS; i++)
        sigaction(signals[i], NULL, &saved[i]);
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < N_SIGNALS; i++)
        sigaddset(&sa.sa_mask, signals[i]);
    for (int i = 0; i < N_SIGNALS; i++) {
        if (saved[i].sa_handler != SIG_IGN)
            sigaction(signals[i], &sa, NULL);
    }
}

int interrupt_pending(void) { return pending != 0; }

void allow_interrupts(void)
{
    for (int i = 0; i < N_SIGNALS; i++)
        sigaction(signals[i], &saved[i], NULL);
    if (pending)
        raise(pending);
}
