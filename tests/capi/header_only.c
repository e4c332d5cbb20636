/* Compiled as C99 and as C++ with -pedantic -Werror: the public header must stay clean in both. */
#include <hypersdk.h>

int main(void) {
    const hsdk_error *e = hsdk_last_error();
    hsdk_progress p;
    p.struct_size = sizeof p;
    (void)e;
    (void)p;
    return hsdk_version_number() > 0 ? 0 : 1;
}
