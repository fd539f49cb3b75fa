/* SIGINT, SIGTERM and SIGHUP while srrun writes an output file. One
 * thread at a time writes (in a batch, the helper thread while the main
 * one runs the network); the dispositions are the process's. */
#ifndef SR_TOOLS_INTERRUPT_H
#define SR_TOOLS_INTERRUPT_H

/* From here until allow_interrupts, those signals (unless ignored, as
 * nohup ignores SIGHUP) wait for the write to `path` to end: where the file
 * system has no O_TMPFILE the library writes through a named temporary,
 * which a process killed meanwhile would leave behind. A second signal ends
 * the process at once. A FIFO or device at path is written into, with no
 * temporary, so nothing waits there: opening a FIFO blocks until a reader
 * comes, and the first Ctrl-C must end that wait. */
void defer_interrupts(const char *path);

/* Ends the wait: a signal that came meanwhile now ends the process as it
 * would have (the shell sees exit status 128 + its number: 130 for
 * SIGINT, 143 for SIGTERM). */
void allow_interrupts(void);

#endif
