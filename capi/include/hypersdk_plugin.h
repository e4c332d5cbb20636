/* Provider plugins: a shared object that adds a provider to libhypersdk at run time (from
 * HSDK_PLUGIN_PATH, or the providers.load operation / hypersdk::load_provider_plugin), in the manner of
 * nbdkit's plugin_init. Plain C, no libhypersdk symbol is needed to build one.
 *
 * The plugin exports
 *
 *     const hsdk_plugin *hsdk_plugin_init(uint32_t host_abi_version);
 *
 * returning a table that lives as long as the process (or NULL to decline). The host passes the
 * newest ABI version it speaks; the plugin answers with the version its table follows (at most the
 * host's). Later versions only append members: struct_size tells the host which are there.
 *
 * Every function returning int returns 0 on success or one of libhypersdk's error codes (the values
 * of HSDK_E_* in <hypersdk.h>: 2 not found, 3 unsupported, 5 I/O error, 7 network error, 9 auth
 * failed, ...) and then writes a message of at most err_len bytes (NUL included) into err. Messages
 * must not contain secrets. Strings returned through char ** are freed with free_string.
 *
 * Threads: read_disk may be called from several threads at once for one disk; everything else is
 * called from one thread at a time per session. Documented in docs/providers.md. */
#ifndef HYPERSDK_PLUGIN_H
#define HYPERSDK_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HSDK_PLUGIN_ABI_VERSION 1u
#define HSDK_PLUGIN_INIT_SYMBOL "hsdk_plugin_init"

/* Capability bits (the same as hypersdk::ProviderCapability). */
#define HSDK_CAP_LIST (1u << 0)
#define HSDK_CAP_DESCRIBE (1u << 1)
#define HSDK_CAP_SNAPSHOT (1u << 2)
#define HSDK_CAP_NATIVE_EXPORT (1u << 3)
#define HSDK_CAP_BLOCK_READS (1u << 4)
#define HSDK_CAP_CHANGED_EXTENTS (1u << 5)
#define HSDK_CAP_POWER (1u << 6)

typedef struct hsdk_plugin {
    uint32_t struct_size; /* sizeof(hsdk_plugin) as the plugin was built */
    uint32_t abi_version; /* HSDK_PLUGIN_ABI_VERSION the table follows */
    const char *name;     /* [a-z0-9_-]+, unique among providers */
    const char *description;
    uint32_t capabilities;          /* HSDK_CAP_* bits */
    const char *config_schema_json; /* JSON Schema (draft 7) of connect's config */

    /* Opens a session from a JSON object (validated against the schema). Wrong credentials: 9. */
    int (*connect)(const char *config_json, void **session, char *err, size_t err_len);
    void (*disconnect)(void *session);
    /* A JSON array of VMs in libhypersdk's VM model (docs/vm-model.md). filter_json is an object
     * with "name_contains" (may be empty). */
    int (*list_vms)(void *session, const char *filter_json, char **vms_json, char *err, size_t err_len);
    /* One VM as a JSON object of the VM model; 2 when there is none by that name, path or id. */
    int (*describe_vm)(void *session, const char *vm, char **vm_json, char *err, size_t err_len);
    /* HSDK_CAP_BLOCK_READS: disk `index` of the VM (describe's order) as bytes in the disk's
     * file_format (raw when empty); *size is their count. */
    int (*open_disk)(void *session, const char *vm, uint32_t index, void **disk, uint64_t *size, char *err, size_t err_len);
    /* Exactly `length` bytes at `offset` (inside *size). */
    int (*read_disk)(void *disk, uint64_t offset, void *buf, size_t length, char *err, size_t err_len);
    void (*close_disk)(void *disk);
    void (*free_string)(char *s);
} hsdk_plugin;

typedef const hsdk_plugin *(*hsdk_plugin_init_fn)(uint32_t host_abi_version);

#ifdef __cplusplus
}
#endif

#endif /* HYPERSDK_PLUGIN_H */
