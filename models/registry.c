/* The list of architectures and the dispatch to the one that recognises a
 * file's weights. */
#include "models/registry.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

static const sr_arch *const architectures[] = {
    &sr_arch_srpgan, &sr_arch_rrdbnet, &sr_arch_srvgg, &sr_arch_edsr, &sr_arch_msrresnet,
};

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

sr_status sr_model_build(sr_weights *w, bool strict, sr_graph *g,
                         sr_model_info *info, sr_notices *notices, sr_error *err)
{
    for (size_t i = 0; i < sizeof architectures / sizeof *architectures; i++) {
        if (!architectures[i]->recognise(w))
            continue;
        bool *used = calloc((size_t)w->n_items, sizeof *used);
        if (!used)
            return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
        sr_status st = architectures[i]->build(w, strict, used, g, info, notices, err);
        if (st == SR_OK)
            sr_weights_keep(w, used);
        free(used);
        return st;
    }
    return sr_fail(err, SR_ERR_MODEL,
                   "unknown architecture: no known layout has keys like '%s' (srrun knows "
                   "SRPGAN, RRDBNet/ESRGAN, SRVGGNetCompact, EDSR and MSRResNet)",
                   w->n_items ? w->items[0].name : "(none)");
}
