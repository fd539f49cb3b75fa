/* libFuzzer harness for the restricted unpickler as the .pth loader drives
 * it (torch's allowed globals, storages, tensors, OrderedDicts), without
 * the zip CRC that stops most mutations of a real file's data.pkl. The
 * input is a recipe for a checkpoint:
 *
 *     u8 n_storages, then n_storages x u32le size, then data.pkl
 *
 * and the harness zips it torch's way (archive/data.pkl plus
 * archive/data/0 ... as stored entries with correct CRCs, the storages
 * filled with small finite floats) and runs sr_pth_load and the model
 * builder on it. Seeds: fuzz/seeds/ *.pickle, made by
 * tests/crashers/make_crashers.py from small torch.save files. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "load_pth.h"

/* Storage bytes per input, in all: bounds the time one input takes. */
#define MAX_STORAGE_BYTES (UINT32_C(1) << 20)

typedef struct buf {
    uint8_t *data;
    size_t len, cap;
} buf;

static void put(buf *b, const void *bytes, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->data = realloc(b->data, b->cap);
        if (!b->data)
            abort();
    }
    if (n)
        memcpy(b->data + b->len, bytes, n);
    b->len += n;
}

static void le(buf *b, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) {
        uint8_t c = (uint8_t)(v >> (8 * i));
        put(b, &c, 1);
    }
}

typedef struct entry {
    char name[32];
    uint32_t offset, size, crc;
} entry;

static void add_entry(buf *zip, entry *e, const uint8_t *bytes, uint32_t size)
{
    e->offset = (uint32_t)zip->len;
    e->size = size;
    e->crc = (uint32_t)crc32(0, bytes, size);
    const size_t name_len = strlen(e->name);
    le(zip, 0x04034b50, 4);
    le(zip, 20, 2); /* version needed */
    le(zip, 0, 2);  /* flags */
    le(zip, 0, 2);  /* stored */
    le(zip, 0, 4);  /* time, date */
    le(zip, e->crc, 4);
    le(zip, size, 4);
    le(zip, size, 4);
    le(zip, name_len, 2);
    le(zip, 0, 2);
    put(zip, e->name, name_len);
    put(zip, bytes, size);
}

static void central_directory(buf *zip, const entry *entries, int n)
{
    const size_t start = zip->len;
    for (int i = 0; i < n; i++) {
        const entry *e = &entries[i];
        const size_t name_len = strlen(e->name);
        le(zip, 0x02014b50, 4);
        le(zip, 20, 2); /* made by */
        le(zip, 20, 2); /* needed */
        le(zip, 0, 2);
        le(zip, 0, 2);
        le(zip, 0, 4);
        le(zip, e->crc, 4);
        le(zip, e->size, 4);
        le(zip, e->size, 4);
        le(zip, name_len, 2);
        le(zip, 0, 2); /* extra */
        le(zip, 0, 2); /* comment */
        le(zip, 0, 2); /* disk */
        le(zip, 0, 2); /* internal attributes */
        le(zip, 0, 4); /* external attributes */
        le(zip, e->offset, 4);
        put(zip, e->name, name_len);
    }
    le(zip, 0x06054b50, 4);
    le(zip, 0, 4); /* disks */
    le(zip, n, 2);
    le(zip, n, 2);
    le(zip, zip->len - start - 12, 4); /* the CD's size, counted before EOCD */
    le(zip, start, 4);
    le(zip, 0, 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const int n_storages = data[0];
    if (size < 1 + 4 * (size_t)n_storages)
        return 0;
    const uint8_t *sizes = data + 1;
    const uint8_t *pkl = sizes + 4 * n_storages;
    const size_t pkl_size = size - (size_t)(pkl - data);

    uint64_t total = 0;
    uint32_t max_size = 0;
    for (int i = 0; i < n_storages; i++) {
        uint32_t s = sizes[4 * i] | sizes[4 * i + 1] << 8 | sizes[4 * i + 2] << 16 |
                     (uint32_t)sizes[4 * i + 3] << 24;
        total += s;
        if (s > max_size)
            max_size = s;
    }
    if (total > MAX_STORAGE_BYTES)
        return 0;
    /* 0.0999 as float32 (also finite as f16, bf16 and f64 patterns). */
    uint8_t *fill = malloc(max_size ? max_size : 1);
    for (uint32_t i = 0; i < max_size; i++)
        fill[i] = (uint8_t[]){0xcd, 0xcc, 0xcc, 0x3d}[i % 4];

    buf zip = {0};
    entry entries[257];
    snprintf(entries[0].name, sizeof entries[0].name, "archive/data.pkl");
    add_entry(&zip, &entries[0], pkl, (uint32_t)pkl_size);
    for (int i = 0; i < n_storages; i++) {
        const uint8_t *p = sizes + 4 * i;
        uint32_t s = p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
        snprintf(entries[1 + i].name, sizeof entries[1 + i].name, "archive/data/%d", i);
        add_entry(&zip, &entries[1 + i], fill, s);
    }
    central_directory(&zip, entries, 1 + n_storages);
    free(fill);

    const sr_mapped_file file = {zip.data, zip.len};
    load_pth(&file);
    free(zip.data);
    return 0;
}
