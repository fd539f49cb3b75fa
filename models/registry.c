/* The list of architectures, the dispatch to the one a file names or whose
 * layout its weights have, and the shipped default models. */
#include "models/registry.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

static const sr_arch *const architectures[] = {
    &sr_arch_srpgan, &sr_arch_rrdbnet, &sr_arch_srvgg, &sr_arch_edsr, &sr_arch_msrresnet,
};
#define N_ARCHITECTURES (sizeof architectures / sizeof *architectures)

/* What sr_model_load_default finds in the data folders, by scale. */
static const struct {
    int scale;
    const char *file;
} default_models[] = {{2, "srpgan_x2.bin"}, {4, "srpgan_x4.bin"}};
#define N_DEFAULT_MODELS (sizeof default_models / sizeof *default_models)

void sr_notices_add(sr_notices *n, const char *fmt, ...)
{
    size_t len = strlen(n->text);
    if (len + 1 >= sizeof n->text)
        return;
    char raw[sizeof n->text];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    sr_escape(n->text + len, sizeof n->text - len, raw); /* names come from files */
    len = strlen(n->text);
    if (len + 1 < sizeof n->text) {
        n->text[len] = '\n';
        n->text[len + 1] = '\0';
    }
}

/* "srpgan, rrdbnet": for messages. */
static void list_names(char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < N_ARCHITECTURES && len < size; i++) {
        const int k = snprintf(buf + len, size - len, "%s%s", i ? ", " : "", architectures[i]->name);
        len += k > 0 ? (size_t)k : 0;
    }
}

/* The architecture the file names (name), or else the one that recognises
 * the weights. */
static sr_status find_arch(const char *name, const sr_weights *w, const sr_arch **arch,
                           sr_error *err)
{
    const char *example = w->n_items ? w->items[0].name : "(none)";
    *arch = NULL;
    for (size_t i = 0; i < N_ARCHITECTURES; i++) {
        const sr_arch *a = architectures[i];
        if (name ? strcmp(a->name, name) != 0 : !a->recognise(w))
            continue;
        if (name && !a->recognise(w))
            return sr_fail(err, SR_ERR_MODEL,
                           "the file says architecture '%s', but its weights are not laid out "
                           "as %s's (keys like '%s')",
                           name, name, example);
        /* Recognisers must exclude one another; where two do not, a
         * crafted file meets a refusal, not a guess. */
        if (*arch)
            return sr_fail(err, SR_ERR_MODEL,
                           "the weights are laid out as both %s's and %s's: ambiguous",
                           (*arch)->name, a->name);
        *arch = a;
    }
    if (*arch)
        return SR_OK;
    char known[256];
    list_names(known, sizeof known);
    if (name)
        return sr_fail(err, SR_ERR_MODEL, "unknown architecture '%s' (srrun knows %s)", name, known);
    return sr_fail(err, SR_ERR_MODEL,
                   "unknown architecture: no known layout has keys like '%s' (srrun knows %s)",
                   example, known);
}

sr_status sr_model_build_as(const char *name, sr_weights *w, bool strict, sr_graph *g,
                            sr_model_info *info, sr_hparams *hparams, sr_notices *notices,
                            sr_error *err)
{
    const sr_arch *arch = NULL;
    sr_status st = find_arch(name, w, &arch, err);
    if (st != SR_OK)
        return st;
    bool *used = calloc((size_t)w->n_items, sizeof *used);
    if (!used)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    st = arch->build(w, strict, used, g, info, notices, err);
    if (st == SR_OK) {
        memset(hparams, 0, sizeof *hparams);
        if (arch->hparams) {
            arch->hparams(w, info, hparams);
        } else {
            sr_hparams_add(hparams, "scale", info->scale);
            sr_hparams_add(hparams, "blocks", info->n_blocks);
        }
        sr_weights_keep(w, used);
    }
    free(used);
    return st;
}

sr_status sr_model_build(sr_weights *w, bool strict, sr_graph *g, sr_model_info *info,
                         sr_notices *notices, sr_error *err)
{
    sr_hparams hparams;
    return sr_model_build_as(NULL, w, strict, g, info, &hparams, notices, err);
}

const char *sr_default_model_file(int scale)
{
    for (size_t i = 0; i < N_DEFAULT_MODELS; i++)
        if (default_models[i].scale == scale)
            return default_models[i].file;
    return NULL;
}

void sr_default_model_scales(char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < N_DEFAULT_MODELS && len < size; i++) {
        const char *sep = i == 0 ? "" : i + 1 < N_DEFAULT_MODELS ? ", " : " and ";
        const int k = snprintf(buf + len, size - len, "%sx%d", sep, default_models[i].scale);
        len += k > 0 ? (size_t)k : 0;
    }
}
