/* The srrun command's subcommands, `srrun convert`, `srrun info` and
 * `srrun serve` (serve.h): each a thin client of include/srrun.h, like the
 * upscaling command itself. */
#ifndef SR_TOOLS_COMMANDS_H
#define SR_TOOLS_COMMANDS_H

/* True when argv[1] names a subcommand (a file called "info" is still an
 * image when given as ./info). */
int command_is(const char *arg);

/* Runs the subcommand argv[0] (argc counts it); returns the exit code:
 * 0 done, 1 failure (one line on stderr), 2 bad usage. */
int command_run(int argc, char **argv);

#endif
