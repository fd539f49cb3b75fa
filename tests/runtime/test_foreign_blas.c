/* libsrrun.so in a host that loaded another OpenBLAS first: the stand-in
 * (foreign_openblas.c, soname libopenblas.so.0) is opened RTLD_GLOBAL,
 * then libsrrun.so, as a Python process does after `import numpy`. srrun
 * must still compute with its own OpenBLAS: the network's output matches
 * PyTorch's and the stand-in is never called. Without the private copy
 * (CMakeLists.txt), the loader hands libsrrun.so the stand-in for its
 * libopenblas.so.0 and the output is garbage. The program links neither
 * srrun nor OpenBLAS; it reaches srrun only through dlsym. Closing the
 * library must leave it loaded, for OpenMP's sake. */
#define _GNU_SOURCE /* RTLD_NOLOAD */
#include <dlfcn.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "srrun.h"
#include "testutil.h"
#include "tolerance.h"

static void *find(void *lib, const char *name)
{
    void *p = dlsym(lib, name);
    if (!p)
        fail_msg("%s: %s", name, dlerror());
    return p;
}

static void test_srrun_keeps_its_own_blas(void **state)
{
    (void)state;
    void *foreign = dlopen(SR_FOREIGN_BLAS, RTLD_NOW | RTLD_GLOBAL);
    if (!foreign)
        fail_msg("%s", dlerror());
    void *lib = dlopen(SR_SHARED_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        fail_msg("%s", dlerror());
    int (*foreign_calls)(void) = (int (*)(void))find(foreign, "foreign_openblas_calls");
/* The library's function of that name, typed as srrun.h declares it. */
#define FIND(fn) __typeof__(&fn) p_##fn = (__typeof__(&fn))find(lib, #fn)
    FIND(sr_model_load);
    FIND(sr_image_read);
    FIND(sr_image_alloc);
    FIND(sr_image_free);
    FIND(sr_session_new);
    FIND(sr_session_run);
    FIND(sr_session_last_error);
    FIND(sr_session_free);
    FIND(sr_model_free);

    sr_error err = {0};
    sr_model *model;
    sr_image in, out;
    if (p_sr_model_load(SR_FIXTURES_DIR "/srpgan_x2.pth", NULL, &model, &err) != SR_OK ||
        p_sr_image_read(SR_FIXTURES_DIR "/kite_41x27.jpg", NULL, &in, &err) != SR_OK)
        fail_msg("%s", err.message);
    const int64_t W = in.width * 2, H = in.height * 2;
    assert_int_equal(p_sr_image_alloc(&out, W, H, 3, SR_PIXEL_F32, NULL), SR_OK);
    test_fill_nan(out.data, W * H * 3);
    sr_session_options opt = SR_SESSION_OPTIONS_INIT;
    opt.backend = SR_BACKEND_CPU;
    opt.n_threads = 2;
    sr_session *session;
    assert_int_equal(p_sr_session_new(model, &opt, &session, NULL), SR_OK);
    if (p_sr_session_run(session, &in, &out) != SR_OK)
        fail_msg("%s", p_sr_session_last_error(session));
    assert_int_equal(foreign_calls(), 0);

    int64_t size;
    float *want = test_read_file(SR_FIXTURES_DIR "/kite_41x27.srpgan_x2.f32", &size);
    assert_non_null(want);
    assert_int_equal(size, W * H * 3 * 4);
    const float worst = test_max_abs_diff_planar(out.data, want, W * H, 3);
    if (!(worst <= SR_TOL_NETWORK_ABS))
        fail_msg("max |srrun - pytorch| = %g: srrun's GEMMs did not run on its OpenBLAS", worst);
    free(want);
    p_sr_image_free(&in);
    p_sr_image_free(&out);
    p_sr_session_free(session);
    p_sr_model_free(model);
    /* A host may close it, but it stays loaded (-z nodelete): unloading
     * it took libgomp along while its idle workers waited in its code, and
     * the process crashed at exit (3 times in 8 before). */
    dlclose(lib);
    assert_non_null(dlopen(SR_SHARED_LIBRARY, RTLD_NOW | RTLD_NOLOAD));
    dlclose(foreign);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_srrun_keeps_its_own_blas),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
