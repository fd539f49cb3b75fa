#define _POSIX_C_SOURCE 200809L
#include "reexec.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "srrun.h"

void sr_tool_reexec_for_blas(char **argv)
{
    const char *setting = sr_cpu_blas_setting();
    if (!setting)
        return;
    char name[64];
    const size_t n = strcspn(setting, "=");
    if (n >= sizeof name)
        return;
    memcpy(name, setting, n);
    name[n] = '\0';
    if (setenv(name, setting + n + 1, 1) == 0)
        execv("/proc/self/exe", argv);
}
