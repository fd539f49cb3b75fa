/* What the srrun command shows of a run: the progress bar, the --plan
 * table, the --stats JSON and the model's notices. Presentation only; the numbers come from the
 * library (sr_plan_info) and from the command's own clocks. */
#ifndef SR_TOOLS_REPORT_H
#define SR_TOOLS_REPORT_H

#include <stdio.h>

#include "srrun.h"

/* A progress bar on a terminal, redrawn at most ten times a second. */
typedef struct progress_bar {
    FILE *out;
    double start, last_draw;
    const char *label; /* shown before the bar (a batch's "3/8 "), or NULL */
} progress_bar;

void progress_bar_start(progress_bar *bar, FILE *out);
int progress_bar_update(void *bar, double fraction); /* an sr_progress_fn */
void progress_bar_finish(progress_bar *bar);

/* "2.0G", "380M", "512K": sizes as --max-memory takes them. */
void format_size(char *buf, size_t size, int64_t bytes);

/* The plan as `srrun --plan` prints it; backend: the one the session runs on
 * (CUDA's memory is the device's). */
void print_plan(FILE *out, const sr_model_info *model, const sr_plan_info *plan,
                int64_t max_memory, sr_backend backend);

/* Wall-clock seconds of the command's steps. */
typedef struct run_times {
    double load, decode, plan, run, encode, total;
} run_times;

void write_stats_json(FILE *out, const sr_model_info *model, const sr_plan_info *plan,
                      const sr_session_options *options, const char *input,
                      const char *output, const run_times *times, int64_t peak_rss);

double seconds_now(void);

/* text as a terminal may be shown it: control characters (C0, DEL, and C1
 * as UTF-8 encodes them) written as \xNN, other bytes (UTF-8 included)
 * as they are, cut to fit size. For names that come from outside, a walked
 * folder's or a request's: one must not move the cursor or retitle the
 * terminal. The library escapes its own messages. Returns out. */
const char *printable(char *out, size_t size, const char *text);
#define SHOWN_MAX 8192 /* room for a PATH_MAX name with some escapes */

/* A model's notices (sr_model_notices: lines, or NULL), one
 * "srrun: note: MODEL: ..." line each on stderr. */
void print_notices(const char *model_path, const char *notices);

#endif
