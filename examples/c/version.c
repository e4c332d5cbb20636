/* Smallest C user of libhypersdk: versions, status names and the last-error convention. */
#include <hypersdk.h>
#include <stdio.h>

int main(void) {
    hsdk_cancel *cancel = NULL;
    hsdk_status st;
    printf("hypersdk %s (header %d.%d.%d)\n", hsdk_version(), HSDK_VERSION_MAJOR, HSDK_VERSION_MINOR,
           HSDK_VERSION_PATCH);
    if (hsdk_version_number() != HSDK_VERSION_NUMBER) {
        fprintf(stderr, "header and library versions differ\n");
        return 1;
    }
    st = hsdk_cancel_new(NULL); /* deliberately wrong: shows how errors come back */
    printf("hsdk_cancel_new(NULL) -> %s: %s\n", hsdk_status_name(st), hsdk_last_error()->message);
    if (st != HSDK_E_INVALID_ARGUMENT) return 1;
    if (hsdk_cancel_new(&cancel) != HSDK_OK) return 1;
    hsdk_cancel_free(cancel);
    return 0;
}
