/* Loads libhypersdk at run time as an FFI user would and asks for its version. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include <hypersdk.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s LIBRARY EXPECTED_VERSION\n", argv[0]);
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    const char *(*version)(void);
    const char *(*status_name)(hsdk_status);
    *(void **)&version = dlsym(lib, "hsdk_version");
    *(void **)&status_name = dlsym(lib, "hsdk_status_name");
    if (!version || !status_name) {
        fprintf(stderr, "dlsym failed: %s\n", dlerror());
        return 1;
    }
    if (strcmp(version(), argv[2]) != 0) {
        fprintf(stderr, "hsdk_version() = %s, expected %s\n", version(), argv[2]);
        return 1;
    }
    if (strcmp(status_name(HSDK_E_CORRUPT_IMAGE), "corrupt_image") != 0) {
        fprintf(stderr, "unexpected status name %s\n", status_name(HSDK_E_CORRUPT_IMAGE));
        return 1;
    }
    /* A C++ symbol must not be reachable. */
    if (dlsym(lib, "_ZN8hypersdk7versionEv") != NULL) {
        fprintf(stderr, "C++ symbol hypersdk::version() is exported\n");
        return 1;
    }
    printf("dlopen ok: hypersdk %s\n", version());
    dlclose(lib);
    return 0;
}
