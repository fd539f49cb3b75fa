/* The tools' start: run again under the setting that gives OpenBLAS's
 * fastest kernels on this CPU (see sr_cpu_blas_setting). */
#ifndef SR_TOOLS_REEXEC_H
#define SR_TOOLS_REEXEC_H

/* Executes the program again with the setting, once (the variable is set
 * then); returns when there is nothing to do or that fails. */
void sr_tool_reexec_for_blas(char **argv);

#endif
