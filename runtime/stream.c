/* sr_session_upscale_to_file: a run whose output rows go straight into an
 * image encoder, inside formats/file.c's whole-or-nothing write, so that
 * the file is linked into place only after the last row and a failed or
 * cancelled run leaves nothing. */
#include <stdbool.h>

#include "base/error.h"
#include "formats/file.h"
#include "formats/image_writer.h"
#include "runtime/session.h"

typedef struct file_job {
    sr_session *session;
    const sr_image *in, *shape;
    sr_image_format format;
    int quality;
    sr_image_writer *writer;
    bool encode_failed; /* the writer refused rows: the file's failure */
    bool run_failed;    /* the failure is the run's, its message the session's */
} file_job;

static sr_status encode_rows(void *user, const sr_image *rows, int64_t y0, sr_error *err)
{
    (void)y0; /* in order: sr_session_run_rows promises it */
    file_job *job = user;
    const sr_status st = sr_image_writer_rows(job->writer, rows, err);
    job->encode_failed = st != SR_OK;
    return st;
}

static sr_status write_file(FILE *file, void *user, sr_error *err)
{
    file_job *job = user;
    sr_status st = sr_image_writer_new(file, job->format, job->shape, job->quality,
                                       &job->writer, err);
    if (st != SR_OK)
        return st;
    st = sr_session_run_rows(job->session, job->in, job->shape, encode_rows, job);
    job->run_failed = st != SR_OK && !job->encode_failed;
    if (job->encode_failed) /* told in the session's error, as the run's are */
        *err = *sr_session_error(job->session);
    if (st == SR_OK)
        st = sr_image_writer_finish(job->writer, err);
    sr_image_writer_free(job->writer);
    job->writer = NULL;
    return st;
}

sr_status sr_session_upscale_to_file(sr_session *session, const sr_image *in,
                                     const sr_image *shape, const char *path,
                                     sr_image_format format, int quality)
{
    if (!session)
        return SR_ERR_INVALID_ARGUMENT;
    /* The plan and the output's checks before the file is touched. */
    sr_status st = sr_session_plan_rows(session, in, shape, NULL);
    if (st != SR_OK)
        return st;
    sr_error *err = sr_session_error(session);
    if (!path)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "no path to write to");
    st = sr_image_writer_check(format, shape, quality, err);
    if (st != SR_OK) {
        sr_error_prefix(err, path);
        return st;
    }
    file_job job = {session, in, shape, format, quality, NULL, false, false};
    sr_error file_err = {{0}};
    st = sr_file_write_atomic(path, write_file, &job, &file_err);
    if (st != SR_OK && !job.run_failed) {
        *err = file_err;
        sr_error_prefix(err, path);
    }
    return st;
}
