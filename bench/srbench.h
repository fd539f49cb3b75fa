/* What srbench's two halves share: the options, what a child measures for
 * one configuration, and the reports (srbench_report.c) made of it. */
#ifndef SR_BENCH_SRBENCH_H
#define SR_BENCH_SRBENCH_H

#include <stdio.h>

#include "srrun.h"

enum { MAX_SIZES = 32, NAME_CHARS = 64 };
typedef enum out_format { OUT_CSV, OUT_LAYERS, OUT_JSON } out_format;

typedef struct bench_options {
    const char *model, *photo;
    sr_backend backends[SR_BACKEND_COUNT];
    int n_backends;
    int64_t widths[MAX_SIZES], heights[MAX_SIZES];
    int n_sizes;
    int n_threads, repeats, warmup;
    int64_t max_memory; /* 0: the library's default */
    /* The CPU backend's runs with every convolution that can run it on
     * this algorithm (backends/cpu/cpu.h), or NULL: the library's choice. */
    const char *conv_algorithm;
    /* What the CUDA backend's matrix products read (its runs show as
     * cuda:P where P is not fp32); the other backends run fp32. */
    sr_precision precision;
    out_format format;
} bench_options;

/* What a child sends back through its pipe, followed by n_layers layers. */
typedef struct bench_result {
    sr_backend backend;
    int64_t width, height;
    double median_s, min_s, plan_s;
    int64_t flops, whole_flops, predicted_peak, max_memory, peak_rss;
    int n_layers;
} bench_result;

typedef struct layer_result {
    char name[NAME_CHARS], op[NAME_CHARS];
    char algorithm[NAME_CHARS]; /* sr_layer_info.algorithm, or "" */
    int64_t flops;
    double seconds; /* in the median run */
} layer_result;

/* What every line of the report repeats. */
typedef struct bench_context {
    const bench_options *o;
    const char *model_name;
    int scale;
    char machine[192]; /* CPU model name and count, from /proc/cpuinfo */
    double sgemm;      /* GFLOP/s */
} bench_context;

/* "AMD EPYC (2 CPUs)": the CPU's model name and count. */
void describe_machine(char *buf, size_t size);

/* The table's heading on stderr, and the CSV header or JSON opening on out. */
void put_header(FILE *out, const bench_context *c, const sr_model_info *info);

/* One configuration: a table row on stderr, then its CSV line, layer
 * lines or JSON object on out (first: the first object of the array). */
void report(FILE *out, const bench_context *c, const bench_result *r,
            const layer_result *layers, int first);

#endif
