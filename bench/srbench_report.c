/* srbench's reports: the table on stderr, and CSV, per-layer CSV or JSON
 * on stdout, from what the children measured (srbench.c). Presentation
 * only: FLOPs and plans are the library's, times srbench's own. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h> /* openblas_get_corename */
#include <string.h>
#include <unistd.h>

#include "bench/srbench.h"
#include "tools/report.h"

void describe_machine(char *buf, size_t size)
{
    char line[256], name[128] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
            snprintf(name, sizeof name, "%s", strchr(line, ':') + 2);
            name[strcspn(name, "\n")] = '\0';
            break;
        }
    if (f)
        fclose(f);
    snprintf(buf, size, "%s (%ld CPUs)", name, sysconf(_SC_NPROCESSORS_ONLN));
}

/* Quoted for CSV and JSON alike; quotes, backslashes and controls (none
 * in CPU or layer names) become '_'. */
static void put_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++)
        fputc(*s == '"' || *s == '\\' || (unsigned char)*s < 0x20 ? '_' : *s, out);
    fputc('"', out);
}

void put_header(FILE *out, const bench_context *c, const sr_model_info *info)
{
    const bench_options *o = c->o;
    fprintf(stderr, "srbench: %s (%s x%d, %d blocks, %s %s); %s\n"
                    "srbench: sgemm %.1f GFLOP/s on %d threads (OpenBLAS %s kernels); "
                    "warm runs: %d warm-up, median of %d\n",
            c->model_name, info->architecture, info->scale, info->n_blocks, info->format,
            info->dtype, c->machine, c->sgemm, o->n_threads, openblas_get_corename(),
            o->warmup, o->repeats);
    fprintf(stderr, "%-9s %7s %11s %9s %9s %8s %8s %7s %8s %9s %9s\n", "backend", "threads",
            "size", "median_s", "min_s", "GFLOP", "GFLOP/s", "sgemm", "planned", "predicted",
            "peak_rss");
    if (o->format == OUT_CSV)
        fputs("machine,model,scale,backend,threads,width,height,warmup,repeats,max_memory,"
              "plan_s,median_s,min_s,gflop,gflop_planned,gflops,sgemm_share,sgemm_gflops,"
              "predicted_peak,peak_rss\n", out);
    if (o->format == OUT_LAYERS)
        fputs("backend,threads,width,height,layer,op,gflop,seconds,gflops,algorithm\n", out);
    if (o->format != OUT_JSON)
        return;
    fprintf(out, "{\"srbench\": \"%s\", \"machine\": ", sr_version());
    put_string(out, c->machine);
    fprintf(out, ", \"sgemm_gflops\": %.2f, \"openblas_core\": ", c->sgemm);
    put_string(out, openblas_get_corename());
    fprintf(out, ",\n \"model\": {\"file\": ");
    put_string(out, c->model_name);
    fprintf(out, ", \"architecture\": \"%s\", \"scale\": %d, \"blocks\": %d, \"parameters\": %lld, "
                 "\"format\": \"%s\", \"dtype\": \"%s\"},\n \"warm\": true, \"runs\": [",
            info->architecture, info->scale, info->n_blocks, (long long)info->n_params,
            info->format, info->dtype);
}

void report(FILE *out, const bench_context *c, const bench_result *r,
                   const layer_result *layers, int first)
{
    const bench_options *o = c->o;
    /* The backend, and any forced conv algorithm or precision. */
    const char *variant = r->backend == SR_BACKEND_CPU ? o->conv_algorithm
                          : r->backend == SR_BACKEND_CUDA && o->precision != SR_PRECISION_FP32
                              ? sr_precision_name(o->precision)
                              : NULL;
    char name[2 * NAME_CHARS];
    snprintf(name, sizeof name, "%s%s%s", sr_backend_name(r->backend), variant ? ":" : "",
             variant ? variant : "");
    const double gflop = 1e-9 * (double)r->whole_flops, rate = gflop / r->median_s;
    const long long w = r->width, h = r->height;
    char size[48], predicted[16], rss[16];
    snprintf(size, sizeof size, "%lldx%lld", w, h);
    format_size(predicted, sizeof predicted, r->predicted_peak);
    format_size(rss, sizeof rss, r->peak_rss);
    fprintf(stderr, "%-9s %7d %11s %9.4f %9.4f %8.2f %8.1f %6.1f%% %8.2f %9s %9s\n", name,
            o->n_threads, size, r->median_s, r->min_s, gflop, rate, 100 * rate / c->sgemm,
            1e-9 * (double)r->flops, predicted, rss);
    if (o->format == OUT_CSV) {
        put_string(out, c->machine);
        fputc(',', out);
        put_string(out, c->model_name);
        fprintf(out, ",%d,%s,%d,%lld,%lld,%d,%d,%lld,%.4f,%.6f,%.6f,%.4f,%.4f,%.2f,%.4f,%.2f,"
                     "%lld,%lld\n",
                c->scale, name, o->n_threads, w, h, o->warmup, o->repeats,
                (long long)r->max_memory, r->plan_s, r->median_s, r->min_s, gflop,
                1e-9 * (double)r->flops, rate, rate / c->sgemm, c->sgemm,
                (long long)r->predicted_peak, (long long)r->peak_rss);
    } else if (o->format == OUT_JSON) {
        fprintf(out, "%s\n  {\"backend\": \"%s\", \"threads\": %d, \"width\": %lld, "
                     "\"height\": %lld, \"warmup\": %d, \"repeats\": %d, \"max_memory\": %lld,\n"
                     "   \"plan_s\": %.4f, \"median_s\": %.6f, \"min_s\": %.6f, \"gflop\": %.4f, "
                     "\"gflop_planned\": %.4f, \"gflops\": %.2f, \"sgemm_share\": %.4f,\n"
                     "   \"predicted_peak\": %lld, \"peak_rss\": %lld, \"layers\": [",
                first ? "" : ",", name, o->n_threads, w, h, o->warmup, o->repeats,
                (long long)r->max_memory, r->plan_s, r->median_s, r->min_s, gflop,
                1e-9 * (double)r->flops, rate, rate / c->sgemm, (long long)r->predicted_peak,
                (long long)r->peak_rss);
    }
    for (int l = 0; o->format != OUT_CSV && l < r->n_layers; l++) {
        const layer_result *x = &layers[l];
        const double gflops = x->seconds > 0 ? 1e-9 * (double)x->flops / x->seconds : 0.0;
        if (o->format == OUT_LAYERS) {
            fprintf(out, "%s,%d,%lld,%lld,%s,%s,%.6f,%.6f,%.2f,%s\n", name, o->n_threads, w, h,
                    x->name, x->op, 1e-9 * (double)x->flops, x->seconds, gflops, x->algorithm);
            continue;
        }
        fprintf(out, "%s\n    {\"name\": ", l ? "," : "");
        put_string(out, x->name);
        fprintf(out, ", \"op\": ");
        put_string(out, x->op);
        fprintf(out, ", \"algorithm\": ");
        if (x->algorithm[0])
            put_string(out, x->algorithm);
        else
            fputs("null", out);
        fprintf(out, ", \"gflop\": %.4f, \"seconds\": %.6f, \"gflops\": %.2f}",
                1e-9 * (double)x->flops, x->seconds, gflops);
    }
    if (o->format == OUT_JSON)
        fprintf(out, "\n  ]}");
}
