/* srrun._srrun: the C half of srrun's Python package, a thin layer over
 * srrun.h. It loads models and runs one image buffer into another; the
 * Python half (srrun/__init__.py) turns numpy arrays and PIL images into
 * those buffers and checks the arguments a user passes.
 *
 * Images cross as buffers (PEP 3118), not copies: a buffer whose rows are
 * packed pixels (any row pitch, rows top to bottom) is wrapped as an
 * sr_image as it is, and srrun writes straight into the output's memory.
 * The GIL is released while srrun works, so threads sharing one model run
 * in parallel; the progress callback takes it back to call Python. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <srrun.h>

#include <stdio.h>
#include <string.h>

/* srrun.Error, made at import. */
static PyObject *srrun_error;

/* Error.status: what kind of failure, by sr_status (a server tells a
 * client's mistake, "format", from "limit" and its own failures by it). */
static const char *const status_names[] = {
    "ok",      "invalid_argument", "io",        "format",      "unsafe",    "model",
    "limit",   "no_memory",        "cancelled", "unsupported", "bad_state", "device",
};
_Static_assert(sizeof status_names / sizeof *status_names == SR_STATUS_COUNT,
               "a name for each sr_status");

/* Raises srrun.Error(message) with its status attribute. */
static PyObject *raise_srrun(sr_status status, const char *message)
{
    PyObject *error = PyObject_CallFunction(srrun_error, "s", message);
    if (!error)
        return NULL;
    const char *name = (unsigned)status < SR_STATUS_COUNT ? status_names[status] : "unknown";
    PyObject *value = PyUnicode_FromString(name);
    if (value && PyObject_SetAttrString(error, "status", value) == 0)
        PyErr_SetObject(srrun_error, error);
    Py_XDECREF(value);
    Py_DECREF(error);
    return NULL;
}

/* ---- Models ---------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    sr_model *model;
} ModelObject;

static PyTypeObject model_type;

static void model_dealloc(ModelObject *self)
{
    sr_model_free(self->model);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Wraps what a load returned, or raises its error. */
static PyObject *model_wrap(sr_status status, sr_model *model, const sr_error *err)
{
    if (status != SR_OK)
        return raise_srrun(status, err->message);
    ModelObject *self = PyObject_New(ModelObject, &model_type);
    if (!self) {
        sr_model_free(model);
        return NULL;
    }
    self->model = model;
    return (PyObject *)self;
}

static PyObject *load_file(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *path; /* bytes, from str or os.PathLike */
    sr_model_options options = SR_MODEL_OPTIONS_INIT;
    if (!PyArg_ParseTuple(args, "O&pLL:load_file", PyUnicode_FSConverter, &path, &options.strict,
                          &options.patch, &options.patch_margin))
        return NULL;
    sr_model *model = NULL;
    sr_error err = {0};
    sr_status status;
    Py_BEGIN_ALLOW_THREADS
    status = sr_model_load(PyBytes_AS_STRING(path), &options, &model, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    return model_wrap(status, model, &err);
}

/* From a whole model file's bytes (any bytes-like object), which srrun
 * copies. */
static PyObject *load_memory(PyObject *module, PyObject *args)
{
    (void)module;
    Py_buffer data;
    sr_model_options options = SR_MODEL_OPTIONS_INIT;
    if (!PyArg_ParseTuple(args, "y*pLL:load_memory", &data, &options.strict, &options.patch,
                          &options.patch_margin))
        return NULL;
    sr_model *model = NULL;
    sr_error err = {0};
    sr_status status;
    Py_BEGIN_ALLOW_THREADS
    status = sr_model_load_memory(data.buf, (size_t)data.len, &options, &model, &err);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    return model_wrap(status, model, &err);
}

/* The shipped model of that scale: srrun finds it in the package's
 * share/srrun/, beside this module, the binary that holds its code. */
static PyObject *load_default(PyObject *module, PyObject *args)
{
    (void)module;
    int scale;
    sr_model_options options = SR_MODEL_OPTIONS_INIT;
    if (!PyArg_ParseTuple(args, "ipLL:load_default", &scale, &options.strict, &options.patch,
                          &options.patch_margin))
        return NULL;
    sr_model *model = NULL;
    sr_error err = {0};
    sr_status status;
    Py_BEGIN_ALLOW_THREADS
    status = sr_model_load_default(scale, &options, &model, &err);
    Py_END_ALLOW_THREADS
    return model_wrap(status, model, &err);
}

static PyObject *model_get_scale(ModelObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromLong(sr_model_scale(self->model));
}

/* sr_model_info as a dict, the notices as a list of lines. */
static PyObject *model_info(ModelObject *self, PyObject *unused)
{
    (void)unused;
    sr_model_info info = SR_MODEL_INFO_INIT;
    const sr_status status = sr_model_get_info(self->model, &info);
    if (status != SR_OK)
        return raise_srrun(status, "the model cannot be described");
    PyObject *notices = PyList_New(0);
    const char *text = sr_model_notices(self->model);
    for (const char *line = text; notices && line && *line;) {
        const char *end = strchr(line, '\n');
        const Py_ssize_t n = end ? end - line : (Py_ssize_t)strlen(line);
        PyObject *item = PyUnicode_DecodeUTF8(line, n, "replace");
        if (!item || PyList_Append(notices, item) < 0)
            Py_CLEAR(notices);
        Py_XDECREF(item);
        line = end ? end + 1 : line + n;
    }
    if (!notices)
        return NULL;
    PyObject *dict = Py_BuildValue(
        "{s:z,s:i,s:i,s:L,s:L,s:z,s:z,s:L,s:O,s:k,s:k,s:N}",
        "architecture", info.architecture, "scale", info.scale, "n_blocks", info.n_blocks,
        "n_params", (long long)info.n_params,
        "n_input_pixel_flops", (long long)info.n_input_pixel_flops, "format", info.format,
        "dtype", info.dtype, "file_size", (long long)info.file_size, "has_checksum",
        info.has_checksum ? Py_True : Py_False, "header_crc32",
        (unsigned long)info.header_crc32, "data_crc32", (unsigned long)info.data_crc32,
        "notices", notices);
    return dict;
}

/* ---- Images ---------------------------------------------------------- */

/* The pixel type of a buffer's item format: "B", "H" or "f", in native
 * byte order; -1 for any other. */
static int pixel_type_of(const Py_buffer *view)
{
    const char *f = view->format ? view->format : "B";
    const int little = PY_LITTLE_ENDIAN;
    if (*f == '@' || *f == '=' || (*f == '<' && little) || (*f == '>' && !little))
        f++;
    if (strcmp(f, "B") == 0 && view->itemsize == 1)
        return SR_PIXEL_U8;
    if (strcmp(f, "H") == 0 && view->itemsize == 2)
        return SR_PIXEL_U16;
    if (strcmp(f, "f") == 0 && view->itemsize == 4)
        return SR_PIXEL_F32;
    return -1;
}

/* Wraps a HxW or HxWxC buffer as an sr_image without copying. Its rows
 * may be any distance apart (a crop of a larger array) but must be packed
 * pixels, top to bottom; a length-1 axis may have any stride. */
static int image_wrap(const Py_buffer *view, const char *what, sr_image *image)
{
    if (view->ndim != 2 && view->ndim != 3) {
        PyErr_Format(PyExc_ValueError, "%s must be HxW or HxWxC, not %d-dimensional", what,
                     view->ndim);
        return -1;
    }
    const int type = pixel_type_of(view);
    if (type < 0) {
        PyErr_Format(PyExc_TypeError, "%s must hold uint8, uint16 or float32 in native "
                                      "byte order, not format '%s'", what,
                     view->format ? view->format : "B");
        return -1;
    }
    const Py_ssize_t height = view->shape[0], width = view->shape[1];
    const Py_ssize_t channels = view->ndim == 3 ? view->shape[2] : 1;
    if (height < 1 || width < 1 || channels < 1 || channels > 4) {
        PyErr_Format(PyExc_ValueError, "%s must be at least 1x1 with 1 to 4 channels, "
                                       "not %zdx%zdx%zd", what, height, width, channels);
        return -1;
    }
    const Py_ssize_t item = view->itemsize;
    const Py_ssize_t *strides = view->strides;
    const Py_ssize_t row_bytes = width * channels * item;
    const int packed =
        !strides || ((view->ndim == 2 || channels == 1 || strides[2] == item) &&
                     (width == 1 || strides[1] == channels * item) &&
                     (height == 1 || strides[0] >= row_bytes));
    if (!packed) {
        PyErr_Format(PyExc_ValueError, "%s must store each row's pixels packed, rows top to "
                                       "bottom (numpy.ascontiguousarray makes such a copy)",
                     what);
        return -1;
    }
    *image = (sr_image){
        .width = width,
        .height = height,
        .channels = (int)channels,
        .type = (sr_pixel_type)type,
        .stride = strides && height > 1 ? strides[0] : row_bytes,
        .data = view->buf,
    };
    return 0;
}

/* ---- Running --------------------------------------------------------- */

/* What the progress callback needs, and the exception that stopped a run. */
typedef struct {
    PyObject *callable; /* the user's, or NULL */
    PyObject *exc_type, *exc_value, *exc_traceback;
} progress_state;

/* Called by srrun from the thread that called sr_session_run (between
 * bands, outside its parallel loops), without the GIL. It takes the GIL,
 * lets a pending signal (Ctrl-C) raise, and calls the user's callable; an
 * exception from either is kept for the caller and cancels the run. */
static int on_progress(void *user, double fraction)
{
    progress_state *state = user;
    PyGILState_STATE gil = PyGILState_Ensure();
    int failed = PyErr_CheckSignals() < 0;
    if (!failed && state->callable) {
        PyObject *result = PyObject_CallFunction(state->callable, "d", fraction);
        failed = result == NULL;
        Py_XDECREF(result);
    }
    if (failed)
        PyErr_Fetch(&state->exc_type, &state->exc_value, &state->exc_traceback);
    PyGILState_Release(gil);
    return failed;
}

static int backend_of(const char *name, sr_backend *backend)
{
    for (int b = 0; b < SR_BACKEND_COUNT; b++)
        if (strcmp(name, sr_backend_name((sr_backend)b)) == 0) {
            *backend = (sr_backend)b;
            return 0;
        }
    PyErr_Format(PyExc_ValueError,
                 "backend must be 'auto', 'cpu', 'cuda' or 'reference', not '%s'", name);
    return -1;
}

/* Runs in into out on a session of its own (a model is shared, a session
 * is not), without the GIL. */
static PyObject *run_session(const sr_model *model, sr_session_options options,
                             PyObject *progress, const sr_image *in, sr_image *out)
{
    progress_state state = {.callable = progress == Py_None ? NULL : progress};
    options.progress = on_progress;
    options.progress_user = &state;
    sr_error err = {0};
    sr_status status;
    Py_BEGIN_ALLOW_THREADS
    sr_session *session = NULL;
    status = sr_session_new(model, &options, &session, &err);
    if (status == SR_OK) {
        status = sr_session_run(session, in, out);
        if (status != SR_OK)
            snprintf(err.message, sizeof err.message, "%s", sr_session_last_error(session));
        sr_session_free(session);
    }
    Py_END_ALLOW_THREADS
    if (state.exc_type) {
        PyErr_Restore(state.exc_type, state.exc_value, state.exc_traceback);
        return NULL;
    }
    if (status != SR_OK)
        return raise_srrun(status, err.message);
    Py_RETURN_NONE;
}

/* run(src, dst, max_memory, threads, backend, progress): upscales the
 * buffer src into dst, which is scale x its size, with 3 or 4 channels
 * (see sr_session_run for what they mean). max_memory and threads: 0 for
 * srrun's defaults. */
static PyObject *model_run(ModelObject *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"src", "dst", "max_memory", "threads", "backend", "progress", NULL};
    PyObject *src, *dst, *progress;
    long long max_memory;
    int threads;
    const char *backend_name;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOLisO:run", keywords, &src, &dst,
                                     &max_memory, &threads, &backend_name, &progress))
        return NULL;
    sr_session_options options = SR_SESSION_OPTIONS_INIT;
    if (backend_of(backend_name, &options.backend) < 0)
        return NULL;
    if (max_memory < 0 || threads < 0) {
        PyErr_SetString(PyExc_ValueError, "max_memory and threads must not be negative");
        return NULL;
    }
    if (progress != Py_None && !PyCallable_Check(progress)) {
        PyErr_SetString(PyExc_TypeError, "progress must be callable or None");
        return NULL;
    }
    options.max_memory = max_memory;
    options.n_threads = threads;

    Py_buffer in_view, out_view;
    if (PyObject_GetBuffer(src, &in_view, PyBUF_RECORDS_RO) < 0)
        return NULL;
    if (PyObject_GetBuffer(dst, &out_view, PyBUF_RECORDS) < 0) {
        PyBuffer_Release(&in_view);
        return NULL;
    }
    sr_image in, out;
    const int scale = sr_model_scale(self->model);
    int ok = image_wrap(&in_view, "the image", &in) == 0 &&
             image_wrap(&out_view, "the output", &out) == 0;
    if (ok && (out.width != in.width * scale || out.height != in.height * scale ||
               (out.channels != 3 && out.channels != 4))) {
        PyErr_Format(PyExc_ValueError, "the output must be %lldx%lld with 3 or 4 channels",
                     (long long)(in.height * scale), (long long)(in.width * scale));
        ok = 0;
    }
    PyObject *result = ok ? run_session(self->model, options, progress, &in, &out) : NULL;
    PyBuffer_Release(&out_view);
    PyBuffer_Release(&in_view);
    return result;
}

/* ---- Image files ----------------------------------------------------- */

/* One image file's bytes to upscale, and what comes of it. */
typedef struct file_job {
    const void *data;
    size_t size;
    sr_image_format format;
    int keep_alpha, depth, quality; /* as srrun's --alpha keep, --depth, --quality */
    int64_t max_pixels;
    sr_session_options options;
    void *result; /* the output file's bytes (sr_free) */
    size_t result_size;
    sr_error err;
} file_job;

/* The CLI's steps for one file (tools/batch.c, tools/upscale.c), on its
 * bytes: the header; the output's shape (RGBA only for alpha kept, 16-bit
 * for --depth 16 or a 16-bit input, never in a JPEG) and its limits; a
 * plan within max_memory, before any pixel is decoded; then decode,
 * upscale with the input's colour metadata carried, and encode. So the
 * bytes equal the CLI's output file. Runs without the GIL. */
static sr_status upscale_file(const sr_model *model, file_job *job)
{
    sr_error *err = &job->err;
    sr_image header = {0}, in = {0}, out = {0};
    sr_session *session = NULL;
    sr_image_read_options read = SR_IMAGE_READ_OPTIONS_INIT;
    read.max_pixels = job->max_pixels;
    sr_status st = sr_image_read_info_memory(job->data, job->size, &read, &header, err);
    const int64_t scale = sr_model_scale(model);
    const int has_alpha = header.channels == 2 || header.channels == 4;
    const int deep = job->depth == 16 || (job->depth == 0 && header.type == SR_PIXEL_U16);
    const sr_image shape = {
        .width = header.width * scale,
        .height = header.height * scale,
        .channels = job->keep_alpha && has_alpha ? 4 : 3,
        .type = job->format == SR_IMAGE_PNG && deep ? SR_PIXEL_U16 : SR_PIXEL_U8,
    };
    if (st == SR_OK)
        st = sr_image_check_output("the result", job->format, &shape, err);
    if (st == SR_OK)
        st = sr_session_new(model, &job->options, &session, err);
    if (st == SR_OK && (st = sr_session_plan_images(session, &header, &shape, NULL)) != SR_OK)
        snprintf(err->message, sizeof err->message, "%s", sr_session_last_error(session));
    if (st == SR_OK) {
        read.max_pixels = header.width * header.height; /* what was planned */
        st = sr_image_read_memory(job->data, job->size, &read, &in, err);
    }
    if (st == SR_OK)
        st = sr_image_alloc(&out, shape.width, shape.height, shape.channels, shape.type, err);
    if (st == SR_OK)
        st = sr_image_copy_meta(&out, &in, err);
    if (st == SR_OK && (st = sr_session_run(session, &in, &out)) != SR_OK)
        snprintf(err->message, sizeof err->message, "%s", sr_session_last_error(session));
    sr_image_free(&in);
    if (st == SR_OK)
        st = sr_image_write_memory(&out, job->format, job->quality, &job->result,
                                   &job->result_size, err);
    sr_image_free(&out);
    sr_session_free(session);
    return st;
}

/* run_file(data, jpeg, keep_alpha, depth, quality, max_pixels, max_memory,
 * threads, backend, progress): the bytes of a PNG or JPEG file upscaled
 * into the bytes of a PNG (or a JPEG) file, as the CLI writes it. depth: 0
 * (the input's), 8 or 16; quality 1..100; max_pixels, max_memory and
 * threads: 0 for srrun's defaults. */
static PyObject *model_run_file(ModelObject *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"data",       "jpeg",       "keep_alpha", "depth",
                               "quality",    "max_pixels", "max_memory", "threads",
                               "backend",    "progress",   NULL};
    Py_buffer data;
    int jpeg, keep_alpha, depth, quality, threads;
    long long max_pixels, max_memory;
    const char *backend_name;
    PyObject *progress;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*ppiiLLisO:run_file", keywords, &data,
                                     &jpeg, &keep_alpha, &depth, &quality, &max_pixels,
                                     &max_memory, &threads, &backend_name, &progress))
        return NULL;
    file_job job = {
        .data = data.buf,
        .size = (size_t)data.len,
        .format = jpeg ? SR_IMAGE_JPEG : SR_IMAGE_PNG,
        .keep_alpha = keep_alpha,
        .depth = depth,
        .quality = quality,
        .max_pixels = max_pixels,
        .options = SR_SESSION_OPTIONS_INIT,
    };
    int ok = backend_of(backend_name, &job.options.backend) == 0;
    if (ok && ((depth != 0 && depth != 8 && depth != 16) || quality < 1 || quality > 100 ||
               max_pixels < 0 || max_memory < 0 || threads < 0)) {
        PyErr_SetString(PyExc_ValueError, "depth must be 0, 8 or 16, quality 1 to 100, and "
                                          "max_pixels, max_memory and threads not negative");
        ok = 0;
    }
    if (ok && progress != Py_None && !PyCallable_Check(progress)) {
        PyErr_SetString(PyExc_TypeError, "progress must be callable or None");
        ok = 0;
    }
    if (!ok) {
        PyBuffer_Release(&data);
        return NULL;
    }
    progress_state state = {.callable = progress == Py_None ? NULL : progress};
    job.options.max_memory = max_memory;
    job.options.n_threads = threads;
    job.options.progress = on_progress;
    job.options.progress_user = &state;
    sr_status status;
    Py_BEGIN_ALLOW_THREADS
    status = upscale_file(self->model, &job);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    PyObject *result = NULL;
    if (state.exc_type)
        PyErr_Restore(state.exc_type, state.exc_value, state.exc_traceback);
    else if (status != SR_OK)
        raise_srrun(status, job.err.message);
    else
        result = PyBytes_FromStringAndSize(job.result, (Py_ssize_t)job.result_size);
    sr_free(job.result);
    return result;
}

static PyGetSetDef model_getset[] = {
    {"scale", (getter)model_get_scale, NULL, "output pixels per input pixel, per axis", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef model_methods[] = {
    {"info", (PyCFunction)model_info, METH_NOARGS, "sr_model_info as a dict"},
    {"run", (PyCFunction)(void (*)(void))model_run, METH_VARARGS | METH_KEYWORDS,
     "run(src, dst, max_memory, threads, backend, progress): upscale src into dst"},
    {"run_file", (PyCFunction)(void (*)(void))model_run_file, METH_VARARGS | METH_KEYWORDS,
     "run_file(data, jpeg, keep_alpha, depth, quality, max_pixels, max_memory, threads, "
     "backend, progress): an image file's bytes upscaled into an image file's bytes"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject model_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "srrun._srrun.Model",
    .tp_basicsize = sizeof(ModelObject),
    .tp_dealloc = (destructor)model_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A loaded srrun model (made by a load_ function); immutable, shared by threads.",
    .tp_methods = model_methods,
    .tp_getset = model_getset,
};

/* ---- The module ------------------------------------------------------ */

static PyObject *version(PyObject *module, PyObject *unused)
{
    (void)module, (void)unused;
    return PyUnicode_FromString(sr_version());
}

static PyMethodDef module_methods[] = {
    {"load_file", load_file, METH_VARARGS, "load_file(path, strict, patch, margin): a Model from a file"},
    {"load_memory", load_memory, METH_VARARGS,
     "load_memory(data, strict, patch, margin): a Model from a file's bytes"},
    {"load_default", load_default, METH_VARARGS,
     "load_default(scale, strict, patch, margin): the shipped model of that scale"},
    {"version", version, METH_NOARGS, "the library's version"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "srrun._srrun", "srrun's C API, as the srrun package uses it.", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__srrun(void)
{
    if (PyType_Ready(&model_type) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (!module)
        return NULL;
    srrun_error = PyErr_NewExceptionWithDoc(
        "srrun.Error",
        "A failure srrun reports; str() is its one-line message, status its kind: "
        "'format', 'limit', 'io', 'model', 'unsafe', 'no_memory', 'unsupported', ...",
        NULL, NULL);
    if (!srrun_error || PyModule_AddType(module, &model_type) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(srrun_error);
    if (PyModule_AddObject(module, "Error", srrun_error) < 0) {
        Py_DECREF(srrun_error);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
