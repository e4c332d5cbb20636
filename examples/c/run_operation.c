/* Runs any operation of the registry from C, as `hsdk run` does:
 *
 *   hsdk_c_run_operation OPERATION [REQUEST_JSON]     e.g. image.info '{"path": "disk.qcow2"}'
 *
 * The result JSON goes to stdout; progress (one line per report) and errors to stderr. Ctrl-C is
 * not handled here: see hsdk_job_start / hsdk_job_cancel for a job you can stop from elsewhere. */
#include <hypersdk.h>
#include <stdio.h>

static int on_progress(const hsdk_progress *p, void *user_data) {
    (void)user_data;
    fprintf(stderr, "%s %s: %llu of %llu bytes\n", p->job_id, p->phase, (unsigned long long)p->bytes_done,
            (unsigned long long)p->bytes_total);
    return 0; /* non-zero would cancel the job */
}

int main(int argc, char **argv) {
    hsdk_job_callbacks callbacks = HSDK_JOB_CALLBACKS_INIT;
    char *result = NULL;
    hsdk_status st;
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s OPERATION [REQUEST_JSON]\n", argv[0]);
        return 2;
    }
    callbacks.progress = on_progress;
    st = hsdk_run_json(&result, argv[1], argc == 3 ? argv[2] : NULL, &callbacks);
    if (st != HSDK_OK) {
        fprintf(stderr, "%s: %s (%s)\n", argv[1], hsdk_last_error()->message, hsdk_status_name(st));
        return 1;
    }
    printf("%s\n", result);
    hsdk_string_free(result);
    return 0;
}
