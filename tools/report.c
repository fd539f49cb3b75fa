/* The srrun command's reports: progress bar, plan table, stats JSON,
 * notices. */
#define _POSIX_C_SOURCE 200809L
#include "report.h"

#include <math.h>
#include <string.h>
#include <time.h>

double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_bar_start(progress_bar *bar, FILE *out)
{
    bar->out = out;
    bar->start = seconds_now();
    bar->last_draw = 0.0;
    bar->label = NULL;
}

int progress_bar_update(void *user, double fraction)
{
    progress_bar *bar = user;
    const double now = seconds_now(), elapsed = now - bar->start;
    if (now - bar->last_draw < 0.1 && fraction < 1.0)
        return 0;
    bar->last_draw = now;
    const int width = 30, filled = (int)(fraction * width + 0.5);
    char cells[64];
    for (int i = 0; i < width; i++)
        cells[i] = i < filled ? '#' : '.';
    cells[width] = '\0';
    fprintf(bar->out, "\rsrrun: %s[%s] %3.0f%%  %.1f s", bar->label ? bar->label : "", cells,
            100.0 * fraction, elapsed);
    if (fraction > 0.02 && fraction < 1.0)
        fprintf(bar->out, ", about %.0f s left ", elapsed * (1.0 - fraction) / fraction + 0.5);
    else
        fprintf(bar->out, "%16s", "");
    fflush(bar->out);
    return 0;
}

void progress_bar_finish(progress_bar *bar)
{
    fprintf(bar->out, "\r%*s\r", 70 + (int)(bar->label ? strlen(bar->label) : 0), "");
    fflush(bar->out);
}

void format_size(char *buf, size_t size, int64_t bytes)
{
    const double mb = (double)bytes / (1 << 20);
    if (mb >= 10240)
        snprintf(buf, size, "%.0fG", mb / 1024);
    else if (mb >= 1024)
        snprintf(buf, size, "%.1fG", mb / 1024);
    else
        snprintf(buf, size, "%.0fM", ceil(mb));
}

void print_plan(FILE *out, const sr_model_info *model, const sr_plan_info *plan,
                int64_t max_memory, sr_backend backend)
{
    char peak[16], fixed[16], budget[16], bytes[16];
    format_size(peak, sizeof peak, plan->predicted_peak);
    format_size(fixed, sizeof fixed, plan->fixed_bytes);
    format_size(budget, sizeof budget, max_memory);
    format_size(bytes, sizeof bytes, plan->plan_bytes);
    fprintf(out, "plan for %lldx%lld -> %lldx%lld (%s x%d, %d blocks), max memory %s\n",
            (long long)plan->width, (long long)plan->height,
            (long long)plan->width * model->scale, (long long)plan->height * model->scale,
            model->architecture, model->scale, model->n_blocks, budget);
    fprintf(out, "predicted peak %s = %s %s + %s planned\n", peak, fixed,
            backend == SR_BACKEND_CUDA ? "of device memory: weights and input"
                                       : "program, weights and images",
            bytes);
    fprintf(out, "%.1f GFLOP planned, %.1f without recomputation (x%.2f); %d tensors kept whole",
            1e-9 * (double)plan->flops, 1e-9 * (double)plan->whole_flops,
            (double)plan->flops / (double)plan->whole_flops, plan->n_kept);
    if (plan->n_spilled > 0) {
        char scratch[16];
        format_size(scratch, sizeof scratch, plan->scratch_bytes);
        fprintf(out, ", %d of them (%s) in the scratch file", plan->n_spilled, scratch);
    }
    fprintf(out, "\n");
    if (plan->n_patches > 1) {
        /* The whole image's own FLOPs, to show what the patches' overlap costs. */
        const double whole =
            (double)model->n_input_pixel_flops * (double)plan->width * (double)plan->height;
        fprintf(out, "run on %lld patches of %lldx%lld, the plan below for each (x%.2f the "
                     "whole image's FLOPs)\n",
                (long long)plan->n_patches, (long long)plan->patch_width,
                (long long)plan->patch_height, (double)plan->whole_flops / whole);
    }
    fprintf(out, "%-5s %-20s %-32s %6s %6s %6s %8s %8s %8s\n", "stage", "sweeps", "for", "bands",
            "rows", "nodes", "kept", "buffers", "work");
    for (int i = 0; i < plan->n_stages; i++) {
        const sr_stage_info *s = &plan->stages[i];
        char kept[16], arena[16], work[16], purpose[80];
        format_size(kept, sizeof kept, s->kept_bytes);
        format_size(arena, sizeof arena, s->arena_bytes);
        format_size(work, sizeof work, s->workspace_bytes);
        if (s->global)
            snprintf(purpose, sizeof purpose, "statistics of %s", s->global);
        else
            snprintf(purpose, sizeof purpose, "the output");
        fprintf(out, "%-5d %-20s %-32s %6lld %6lld %6d %8s %8s %8s\n", i + 1, s->target,
                purpose, (long long)s->n_bands, (long long)s->band_rows, s->n_nodes, kept,
                arena, work);
    }
}

/* Names are the model's own (ASCII keys); quote them for JSON anyway. */
static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        if ((unsigned char)*s < 0x20)
            fprintf(out, "\\u%04x", *s);
        else
            fputc(*s, out);
    }
    fputc('"', out);
}

void write_stats_json(FILE *out, const sr_model_info *model, const sr_plan_info *plan,
                      const sr_session_options *options, const char *input,
                      const char *output, const run_times *times, int64_t peak_rss)
{
    fprintf(out, "{\n  \"srrun\": \"%s\",\n  \"model\": {\"architecture\": ", sr_version());
    json_string(out, model->architecture);
    fprintf(out, ", \"scale\": %d, \"blocks\": %d, \"parameters\": %lld},\n", model->scale,
            model->n_blocks, (long long)model->n_params);
    fprintf(out, "  \"input\": ");
    json_string(out, input);
    fprintf(out, ", \"output\": ");
    json_string(out, output);
    fprintf(out, ",\n  \"width\": %lld, \"height\": %lld,\n", (long long)plan->width,
            (long long)plan->height);
    fprintf(out, "  \"patches\": {\"count\": %lld, \"width\": %lld, \"height\": %lld},\n",
            (long long)plan->n_patches, (long long)plan->patch_width,
            (long long)plan->patch_height);
    fprintf(out, "  \"backend\": \"%s\", \"precision\": \"%s\", \"threads\": %d,\n",
            sr_backend_name(options->backend), sr_precision_name(options->precision),
            options->n_threads);
    fprintf(out, "  \"seconds\": {\"load\": %.4f, \"decode\": %.4f, \"plan\": %.4f, "
                 "\"run\": %.4f, \"encode\": %.4f, \"total\": %.4f},\n",
            times->load, times->decode, times->plan, times->run, times->encode, times->total);
    fprintf(out, "  \"gflop\": %.3f, \"gflop_planned\": %.3f, \"gflops\": %.2f,\n",
            1e-9 * (double)plan->whole_flops, 1e-9 * (double)plan->flops,
            times->run > 0 ? 1e-9 * (double)plan->whole_flops / times->run : 0.0);
    fprintf(out, "  \"memory\": {\"max\": %lld, \"predicted_peak\": %lld, \"measured_peak\": %lld, "
                 "\"fixed\": %lld, \"plan\": %lld, \"scratch_bytes\": %lld},\n",
            (long long)options->max_memory, (long long)plan->predicted_peak, (long long)peak_rss,
            (long long)plan->fixed_bytes, (long long)plan->plan_bytes,
            (long long)plan->scratch_bytes);
    fprintf(out, "  \"stages\": [\n"); /* a patch's: each runs them all */
    for (int i = 0; i < plan->n_stages; i++) {
        const sr_stage_info *s = &plan->stages[i];
        fprintf(out, "    {\"sweeps\": ");
        json_string(out, s->target);
        fprintf(out, ", \"statistics_of\": ");
        if (s->global)
            json_string(out, s->global);
        else
            fprintf(out, "null");
        fprintf(out, ", \"bands\": %lld, \"band_rows\": %lld, \"nodes\": %d, \"kept_bytes\": %lld, "
                     "\"band_bytes\": %lld, \"workspace_bytes\": %lld, \"gflop\": %.3f, "
                     "\"seconds\": %.4f}%s\n",
                (long long)s->n_bands, (long long)s->band_rows, s->n_nodes,
                (long long)s->kept_bytes, (long long)s->arena_bytes,
                (long long)s->workspace_bytes, 1e-9 * (double)s->flops, s->seconds,
                i + 1 < plan->n_stages ? "," : "");
    }
    fprintf(out, "  ],\n  \"layers\": [\n");
    for (int i = 0; i < plan->n_layers; i++) {
        const sr_layer_info *l = &plan->layers[i];
        fprintf(out, "    {\"name\": ");
        json_string(out, l->name);
        fprintf(out, ", \"op\": \"%s\", \"algorithm\": ", l->op);
        if (l->algorithm)
            json_string(out, l->algorithm);
        else
            fprintf(out, "null");
        fprintf(out, ", \"gflop\": %.4f, \"seconds\": %.4f, \"gflops\": %.2f}%s\n",
                1e-9 * (double)l->flops, l->seconds,
                l->seconds > 0 ? 1e-9 * (double)l->flops / l->seconds : 0.0,
                i + 1 < plan->n_layers ? "," : "");
    }
    fprintf(out, "  ]\n}\n");
}

const char *printable(char *out, size_t size, const char *text)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        /* how many bytes from c make one control character (0: none) */
        const int control = c[0] == 0xc2 && c[1] >= 0x80 && c[1] <= 0x9f ? 2
                            : c[0] < 0x20 || c[0] == 0x7f               ? 1
                                                                        : 0;
        if (n + (control ? 4 * (size_t)control : 1) >= size)
            break;
        if (!control) {
            out[n++] = (char)*c;
            continue;
        }
        for (int i = 0; i < control; i++) {
            out[n++] = '\\';
            out[n++] = 'x';
            out[n++] = hex[c[i] >> 4];
            out[n++] = hex[c[i] & 15];
        }
        c += control - 1;
    }
    out[n] = '\0';
    return out;
}

void print_notices(const char *model_path, const char *notices)
{
    for (const char *p = notices; p && *p;) {
        const size_t n = strcspn(p, "\n");
        fprintf(stderr, "srrun: note: %s: %.*s\n", model_path, (int)n, p);
        p += n + (p[n] == '\n');
    }
}
