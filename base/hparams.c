/* Hyper-parameter lists: building one, and checking a recorded one against
 * what the weights say. */
#include "base/hparams.h"

#include <string.h>

#include "base/error.h"

bool sr_hparams_add(sr_hparams *h, const char *name, int64_t value)
{
    const size_t len = strlen(name);
    if (h->n >= SR_HPARAMS_MAX || len == 0 || len >= SR_HPARAM_NAME_SIZE)
        return false;
    sr_hparam *p = &h->items[h->n++];
    memset(p->name, 0, sizeof p->name);
    memcpy(p->name, name, len);
    p->value = value;
    return true;
}

static const sr_hparam *find(const sr_hparams *h, const char *name)
{
    for (int i = 0; i < h->n; i++)
        if (strcmp(h->items[i].name, name) == 0)
            return &h->items[i];
    return NULL;
}

bool sr_hparams_take(sr_hparams *h, const char *name, int64_t *value)
{
    for (int i = 0; i < h->n; i++)
        if (strcmp(h->items[i].name, name) == 0) {
            *value = h->items[i].value;
            memmove(&h->items[i], &h->items[i + 1], (size_t)(h->n - i - 1) * sizeof *h->items);
            h->n--;
            return true;
        }
    return false;
}

static sr_status check_positions(const sr_hparams *recorded, const sr_hparams *derived,
                                 sr_error *err)
{
    for (int i = 0; i < recorded->n || i < derived->n; i++) {
        const int64_t have = i < derived->n ? derived->items[i].value : 0;
        if (i >= recorded->n)
            return sr_fail(err, SR_ERR_MODEL, "header lacks %s (the weights have %lld)",
                           derived->items[i].name, (long long)have);
        const int64_t says = recorded->items[i].value;
        if (says == have)
            continue;
        if (i < derived->n)
            return sr_fail(err, SR_ERR_MODEL, "header says %s %lld, the weights have %lld",
                           derived->items[i].name, (long long)says, (long long)have);
        return sr_fail(err, SR_ERR_MODEL, "header says hyper-parameter %d is %lld, must be 0", i,
                       (long long)says);
    }
    return SR_OK;
}

sr_status sr_hparams_check(const sr_hparams *recorded, const sr_hparams *derived,
                           const char *arch, sr_error *err)
{
    if (recorded->n > 0 && recorded->items[0].name[0] == '\0')
        return check_positions(recorded, derived, err);
    for (int i = 0; i < derived->n; i++) {
        const sr_hparam *d = &derived->items[i], *r = find(recorded, d->name);
        if (!r)
            return sr_fail(err, SR_ERR_MODEL, "header lacks %s (the weights have %lld)", d->name,
                           (long long)d->value);
        if (r->value != d->value)
            return sr_fail(err, SR_ERR_MODEL, "header says %s %lld, the weights have %lld",
                           d->name, (long long)r->value, (long long)d->value);
    }
    for (int i = 0; i < recorded->n; i++)
        if (!find(derived, recorded->items[i].name))
            return sr_fail(err, SR_ERR_MODEL, "header says %s %lld, but %s has no %s",
                           recorded->items[i].name, (long long)recorded->items[i].value, arch,
                           recorded->items[i].name);
    return SR_OK;
}
