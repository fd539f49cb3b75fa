/* Sessions on a backend the caller opened (runtime/session.h): a graph
 * with a node the backend cannot run is refused when the session is made,
 * in one line naming the backend, the node and its op. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "backends/backend.h"
#include "runtime/model.h"
#include "runtime/session.h"
#include "testutil.h"

/* The reference backend, except that it will not add tensors. */
static bool no_add_supports_op(void *ctx, const sr_node *node)
{
    (void)ctx;
    return node->op != SR_OP_ADD && sr_op_get(node->op)->reference != NULL;
}

static sr_backend_iface no_add_iface;

static sr_backend_handle open_no_add(void)
{
    sr_backend_handle b;
    assert_int_equal(sr_reference_backend_new(&b, NULL), SR_OK);
    no_add_iface = *b.iface;
    no_add_iface.name = "no-add";
    no_add_iface.supports_op = no_add_supports_op;
    b.iface = &no_add_iface;
    return b;
}

static void test_unsupported_op_refused_at_creation(void **state)
{
    (void)state;
    sr_model *model = test_load_model("srpgan_x2");
    const sr_graph *g = &model->graph;
    int add = 0;
    while (add < g->n_nodes && g->nodes[add].op != SR_OP_ADD)
        add++;
    assert_true(add < g->n_nodes);
    char want[256];
    snprintf(want, sizeof want, "the no-add backend cannot run %s (op add)",
             g->nodes[add].name);

    sr_session_options opt = SR_SESSION_OPTIONS_INIT;
    opt.backend = SR_BACKEND_REFERENCE;
    sr_session *s = (sr_session *)&opt; /* set to NULL on failure */
    sr_error err = {0};
    assert_int_equal(sr_session_new_on(model, &opt, open_no_add(), &s, &err),
                     SR_ERR_UNSUPPORTED);
    assert_null(s);
    assert_string_equal(err.message, want);
    sr_model_free(model);
}

/* The same backend with every op it has: the check refuses nothing else. */
static void test_supported_graph_accepted(void **state)
{
    (void)state;
    sr_model *model = test_load_model("srpgan_x2");
    sr_session_options opt = SR_SESSION_OPTIONS_INIT;
    opt.backend = SR_BACKEND_REFERENCE;
    sr_backend_handle b;
    assert_int_equal(sr_reference_backend_new(&b, NULL), SR_OK);
    sr_session *s = NULL;
    sr_error err = {0};
    assert_int_equal(sr_session_new_on(model, &opt, b, &s, &err), SR_OK);
    sr_session_free(s);
    sr_model_free(model);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unsupported_op_refused_at_creation),
        cmocka_unit_test(test_supported_graph_accepted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
