/* A program built against an installed srrun: upscales INPUT with the
 * shipped default x4 model, or with MODEL when given, into OUTPUT (PNG).
 *
 *     upscale INPUT OUTPUT.png [MODEL]
 *
 * Build it with find_package(srrun) (CMakeLists.txt here) or with
 * pkg-config: cc upscale.c $(pkg-config --cflags --libs srrun). */
#include <stdio.h>

#include <srrun.h>

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s INPUT OUTPUT.png [MODEL]\n", argv[0]);
        return 2;
    }
    sr_error err = {0};
    sr_model *model = NULL;
    sr_session *session = NULL;
    sr_image in = {0}, out = {0};
    sr_status st = argc == 4 ? sr_model_load(argv[3], NULL, &model, &err)
                             : sr_model_load_default(4, NULL, &model, &err);
    if (st == SR_OK)
        st = sr_session_new(model, NULL, &session, &err);
    if (st == SR_OK)
        st = sr_image_read(argv[1], NULL, &in, &err);
    if (st == SR_OK) {
        const int scale = sr_model_scale(model);
        st = sr_image_alloc(&out, in.width * scale, in.height * scale, 3, SR_PIXEL_U8, &err);
    }
    if (st == SR_OK && (st = sr_session_run(session, &in, &out)) != SR_OK)
        snprintf(err.message, sizeof err.message, "%s: %s", argv[1],
                 sr_session_last_error(session));
    if (st == SR_OK)
        st = sr_image_copy_meta(&out, &in, &err); /* the ICC profile */
    if (st == SR_OK)
        st = sr_image_write_png(argv[2], &out, &err);
    if (st != SR_OK)
        fprintf(stderr, "upscale: %s\n", err.message);
    sr_image_free(&in);
    sr_image_free(&out);
    sr_session_free(session);
    sr_model_free(model);
    return st != SR_OK;
}
