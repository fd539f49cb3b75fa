/* SIGINT, SIGTERM and SIGHUP while srrun writes an output file, which it
 * does as the run computes the rows. One thread at a time writes (the
 * one that runs the network); the dispositions are the process's. */
#ifndef SR_TOOLS_INTERRUPT_H
#define SR_TOOLS_INTERRUPT_H

/* From here until allow_interrupts, those signals (unless ignored, as
 * nohup ignores SIGHUP) are held while the write to `path` stops: where
 * the file system has no O_TMPFILE the library writes through a named
 * temporary, which a process killed meanwhile would leave behind. The run
 * sees interrupt_pending and cancels at its next band, and the library
 * removes what it wrote. A second signal ends the process at once. A FIFO or device at path is written into, with no
 * temporary, so nothing waits there: opening a FIFO blocks until a reader
 * comes, and the first Ctrl-C must end that wait. */
void defer_interrupts(const char *path);

/* Whether one of those signals came since defer_interrupts. */
int interrupt_pending(void);

/* Ends the wait: a signal that came meanwhile now ends the process as it
 * would have (the shell sees exit status 128 + its number: 130 for
 * SIGINT, 143 for SIGTERM). */
void allow_interrupts(void);

#endif
