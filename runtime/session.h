/* What sessions offer inside the library and its tests beyond srrun.h. */
#ifndef SR_RUNTIME_SESSION_H
#define SR_RUNTIME_SESSION_H

#include "backends/backend.h"

/* sr_session_new on a backend the caller opened (test_cuda_host's CUDA
 * backend on the host, which sr_session_new cannot load as a module;
 * srbench's CPU backend with a forced conv algorithm), recorded as
 * options->backend, which names its kind. The session owns it from here,
 * also when this fails. */
sr_status sr_session_new_on(const sr_model *model, const sr_session_options *options,
                            sr_backend_handle backend, sr_session **session, sr_error *err);

/* Where the session keeps its last failure's message, for the API's code
 * outside session.c that fails on a session's behalf. */
sr_error *sr_session_error(sr_session *session);

#endif
