/* The HTTP side of `srrun serve` (serve_http.c): its routes on
 * libmicrohttpd. */
#ifndef SR_TOOLS_SERVE_HTTP_H
#define SR_TOOLS_SERVE_HTTP_H

#include <microhttpd.h>

#include "serve.h"

/* Serves srv's routes on listen_fd (bound and listening; the caller
 * closes it after MHD_stop_daemon) with a thread per connection, at most
 * max_connections at once, each closed after timeout_seconds idle. NULL
 * when libmicrohttpd cannot start. */
struct MHD_Daemon *serve_http_start(server *srv, int listen_fd, unsigned max_connections,
                                    unsigned timeout_seconds);

#endif
