/*
 * hypersdk.h - the stable C ABI of libhypersdk.
 *
 * Conventions (see docs/c-api.md):
 *  - every fallible call returns hsdk_status: HSDK_OK (0) or a negative HSDK_E_* code;
 *    hsdk_last_error() then describes the failure for the calling thread;
 *  - output parameters come first and are named out; what comes back through **out is
 *    owned by the caller and freed with the matching hsdk_*_free (all NULL-safe);
 *  - callbacks take `void *user_data` last; a progress callback returning non-zero cancels;
 *  - option structs carry struct_size first and have an HSDK_*_INIT initialiser.
 *
 * The header is C99 and C++ clean and never mentions a C++ or Boost type.
 */
#ifndef HYPERSDK_H
#define HYPERSDK_H

#include <stddef.h>
#include <stdint.h>

#define HSDK_VERSION_MAJOR 0
#define HSDK_VERSION_MINOR 2
#define HSDK_VERSION_PATCH 0
#define HSDK_VERSION_NUMBER (HSDK_VERSION_MAJOR * 10000 + HSDK_VERSION_MINOR * 100 + HSDK_VERSION_PATCH)

#if defined(_WIN32)
#  define HSDK_API
#elif defined(HSDK_BUILDING_LIBRARY)
#  define HSDK_API __attribute__((visibility("default")))
#else
#  define HSDK_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------
 * Status codes. The numbers are pinned forever: a retired code keeps its number and name.
 * hsdk_status == -(hypersdk::Errc value).
 * ------------------------------------------------------------------------------------- */
typedef int hsdk_status;

#define HSDK_OK 0
#define HSDK_E_INVALID_ARGUMENT (-1)
#define HSDK_E_NOT_FOUND (-2)
#define HSDK_E_UNSUPPORTED (-3)
#define HSDK_E_CORRUPT_IMAGE (-4)
#define HSDK_E_IO (-5)
#define HSDK_E_NO_SPACE (-6)
#define HSDK_E_NETWORK (-7)
#define HSDK_E_TLS (-8)
#define HSDK_E_AUTH_FAILED (-9)
#define HSDK_E_PERMISSION_DENIED (-10)
#define HSDK_E_TIMEOUT (-11)
#define HSDK_E_CANCELLED (-12)
#define HSDK_E_CHECKSUM_MISMATCH (-13)
#define HSDK_E_REMOTE (-14)
#define HSDK_E_CONFLICT (-15)
#define HSDK_E_INTERNAL (-16)
#define HSDK_E_NOMEM (-17)
/* The name the operation model uses for HSDK_E_INVALID_ARGUMENT: a bad request, an unknown
 * operation, a versioned struct from a newer caller with fields this library does not know set. */
#define HSDK_E_INVALID HSDK_E_INVALID_ARGUMENT

/* Version of the library actually loaded, e.g. "0.1.0". */
HSDK_API const char *hsdk_version(void);
/* HSDK_VERSION_NUMBER of the library actually loaded. */
HSDK_API int hsdk_version_number(void);
/* Stable lower-case name of a status ("ok", "corrupt_image", ...); "unknown" otherwise. */
HSDK_API const char *hsdk_status_name(hsdk_status status);

/* The calling thread's last error. Valid until the next failing call on this thread. */
typedef struct hsdk_error {
    hsdk_status code;
    const char *message;
} hsdk_error;
HSDK_API const hsdk_error *hsdk_last_error(void);
/* Forget the calling thread's last error. */
HSDK_API void hsdk_clear_error(void);

/* ---------------------------------------------------------------------------------------
 * Logging: silent until the host installs a sink. The sink may be called from any thread.
 * ------------------------------------------------------------------------------------- */
typedef enum hsdk_log_level {
    HSDK_LOG_TRACE = 0,
    HSDK_LOG_DEBUG = 1,
    HSDK_LOG_INFO = 2,
    HSDK_LOG_WARN = 3,
    HSDK_LOG_ERROR = 4,
    HSDK_LOG_OFF = 5
} hsdk_log_level;

typedef void (*hsdk_log_fn)(hsdk_log_level level, const char *message, void *user_data);
/* Install (fn != NULL) or remove (fn == NULL) the process-wide log sink. min_level is an
 * hsdk_log_level (taken as int so that any value a caller passes is defined behaviour). */
HSDK_API hsdk_status hsdk_set_log_sink(hsdk_log_fn fn, int min_level, void *user_data);

/* ---------------------------------------------------------------------------------------
 * Cancellation: a token shared between the host and running operations.
 * ------------------------------------------------------------------------------------- */
typedef struct hsdk_cancel hsdk_cancel;
HSDK_API hsdk_status hsdk_cancel_new(hsdk_cancel **out);
/* Request cancellation; safe from any thread and from signal-free contexts. */
HSDK_API void hsdk_cancel_request(hsdk_cancel *token);
HSDK_API int hsdk_cancel_requested(const hsdk_cancel *token);
HSDK_API void hsdk_cancel_free(hsdk_cancel *token);

/* ---------------------------------------------------------------------------------------
 * Progress: the one progress event of every operation. Returning non-zero from the callback
 * cancels. Read fields beyond those your header knows only when struct_size covers them.
 * ------------------------------------------------------------------------------------- */
typedef struct hsdk_progress {
    size_t struct_size;
    const char *phase;       /* "converting", "exporting disk 1 of 2", ... */
    uint64_t bytes_done;
    uint64_t bytes_total;    /* 0 when unknown */
    double rate_bytes_per_sec;
    double eta_seconds;      /* negative when unknown */
    /* Since 0.2.0. */
    uint64_t items_done;       /* disks, files done, for operations made of several */
    uint64_t items_total;      /* 0 when the operation is not made of items */
    uint64_t item_index;       /* 1-based index of the item this event is about, 0 for none */
    const char *current_item;  /* that item's name ("disk 1 of 2"), "" for none */
    uint64_t item_bytes_done;
    uint64_t item_bytes_total; /* 0 when unknown */
    int finished;              /* 1 on the last event of a phase */
    const char *job_id;        /* the job reporting */
} hsdk_progress;

typedef int (*hsdk_progress_fn)(const hsdk_progress *progress, void *user_data);

/* ---------------------------------------------------------------------------------------
 * Hashing (SHA-256 via OpenSSL): a convenience the export and manifest code relies on.
 * ------------------------------------------------------------------------------------- */
/* Writes 64 lower-case hex digits and a NUL into out_hex (at least 65 bytes). */
HSDK_API hsdk_status hsdk_sha256_file(char *out_hex, size_t out_hex_size, const char *path,
                                      hsdk_cancel *cancel);

/* ---------------------------------------------------------------------------------------
 * Disk images: open (format given or probed; raw only when named) as a read-only block device.
 * ------------------------------------------------------------------------------------- */
typedef struct hsdk_image hsdk_image;

typedef struct hsdk_open_options {
    size_t struct_size;
    const char *format;        /* NULL or "" = probe by signature */
    int allow_external_files;  /* follow backing files / extents outside the image's folder */
    int open_backing;          /* compose the backing chain (default 1) */
} hsdk_open_options;
#define HSDK_OPEN_OPTIONS_INIT { sizeof(hsdk_open_options), NULL, 0, 1 }

typedef enum hsdk_extent_kind {
    HSDK_EXTENT_DATA = 0, /* allocated: read it */
    HSDK_EXTENT_ZERO = 1, /* reads as zeros (allocated as zeros or known zero) */
    HSDK_EXTENT_HOLE = 2  /* allocated nowhere in the chain: reads as zeros */
} hsdk_extent_kind;

typedef struct hsdk_extent {
    uint64_t offset;
    uint64_t length;
    int kind;             /* hsdk_extent_kind */
    uint32_t depth;       /* layer of the chain that provides it, 0 = the image itself */
    uint64_t host_offset; /* UINT64_MAX when not a plain range of one file */
} hsdk_extent;

/* options may be NULL for defaults. */
HSDK_API hsdk_status hsdk_image_open(hsdk_image **out, const char *path, const hsdk_open_options *options);
HSDK_API void hsdk_image_free(hsdk_image *image);
HSDK_API uint64_t hsdk_image_virtual_size(const hsdk_image *image);
/* Reads length bytes at offset; the range must lie inside the virtual size. Thread-safe. */
HSDK_API hsdk_status hsdk_image_read(hsdk_image *image, uint64_t offset, void *buffer, size_t length);
/* Allocation map of [offset, offset+length); free *out_extents with hsdk_extents_free. */
HSDK_API hsdk_status hsdk_image_block_status(hsdk_extent **out_extents, size_t *out_count, hsdk_image *image,
                                             uint64_t offset, uint64_t length);
HSDK_API void hsdk_extents_free(hsdk_extent *extents);
/* qemu-img-like JSON description; with_backing_chain nests each backing image. Free with hsdk_string_free. */
HSDK_API hsdk_status hsdk_image_info_json(char **out_json, const hsdk_image *image, int with_backing_chain);
/* The format a file would be opened as ("qcow2", ...). Free with hsdk_string_free. */
HSDK_API hsdk_status hsdk_probe_format(char **out_name, const char *path);
HSDK_API void hsdk_string_free(char *string);

/* ---------------------------------------------------------------------------------------
 * Conversion, comparison, checking.
 * ------------------------------------------------------------------------------------- */
typedef struct hsdk_convert_options {
    size_t struct_size;
    const char *output_format; /* raw, qcow2, vmdk, vhd (vpc), vhdx, vdi */
    const char *options;       /* "key=value,key=value" as for qemu-img -o; NULL for none */
    int compress;              /* compress where the output format can */
    unsigned threads;          /* 0 = one per core */
    int overwrite;             /* replace an existing destination (atomically); default 1 */
    hsdk_progress_fn progress; /* may be NULL; returning non-zero cancels */
    void *progress_user_data;
    hsdk_cancel *cancel;       /* may be NULL */
    /* Output cache mode as qemu-img's -t: "none" (O_DIRECT for aligned data, fsync; NULL means
     * this), "writeback" (page cache, fsync) or "unsafe" (page cache, no fsync). */
    const char *cache;
} hsdk_convert_options;
#define HSDK_CONVERT_OPTIONS_INIT { sizeof(hsdk_convert_options), NULL, NULL, 0, 0, 1, NULL, NULL, NULL, NULL }

typedef struct hsdk_convert_stats {
    size_t struct_size;
    uint64_t virtual_size;
    uint64_t bytes_read;
    uint64_t bytes_written;
    uint64_t output_size;
    double seconds;
} hsdk_convert_stats;

/* out_stats may be NULL; if given, set its struct_size first. The destination appears only when
 * complete; a failed or cancelled conversion leaves nothing behind. */
HSDK_API hsdk_status hsdk_convert(hsdk_convert_stats *out_stats, const char *source, const hsdk_open_options *source_options,
                                  const char *destination, const hsdk_convert_options *options);

/* *out_identical = 1 when the images read the same (sizes may differ if the tail is zero, unless
 * strict); otherwise *out_first_difference is the first differing byte offset. */
HSDK_API hsdk_status hsdk_compare(int *out_identical, uint64_t *out_first_difference, hsdk_image *a, hsdk_image *b,
                                  int strict);

/* Metadata consistency check of one image file as JSON (check-errors, leaks, messages, ...). */
HSDK_API hsdk_status hsdk_check_json(char **out_json, const char *path, const hsdk_open_options *options);

/* ---------------------------------------------------------------------------------------
 * vSphere: discovery and export (see docs/vsphere.md).
 * ------------------------------------------------------------------------------------- */
typedef struct hsdk_vsphere_options {
    size_t struct_size;
    const char *url;        /* https://host[/sdk]; NULL: $GOVC_URL (which may carry user:password@) */
    const char *username;   /* NULL: $GOVC_USERNAME */
    const char *password;   /* NULL: $GOVC_PASSWORD. Never logged nor put in an error message */
    int insecure;           /* 1: no certificate check at all ($GOVC_INSECURE also turns it on) */
    const char *ca_file;    /* PEM bundle trusted instead of the system store */
    const char *thumbprint; /* pin the server certificate's SHA-256 (hex, colons optional) */
    unsigned max_attempts;  /* tries per request on transient failures; 0 = default (5) */
    hsdk_cancel *cancel;    /* may be NULL */
} hsdk_vsphere_options;
#define HSDK_VSPHERE_OPTIONS_INIT { sizeof(hsdk_vsphere_options), NULL, NULL, NULL, 0, NULL, NULL, 0, NULL }

/* Every VM with inventory path, power state, guest, CPUs, memory, firmware, disks and NICs, as a
 * JSON array of the VM model. Free *out_json with hsdk_string_free. */
HSDK_API hsdk_status hsdk_vsphere_list_vms_json(char **out_json, const hsdk_vsphere_options *options);

typedef struct hsdk_export_progress {
    size_t struct_size;
    const char *phase;  /* connecting, snapshot, exporting disk N of M, converting, manifest, cleanup */
    unsigned disk_index; /* 1-based while a disk moves, else 0 */
    unsigned disk_count;
    uint64_t disk_bytes_done;
    uint64_t disk_bytes_total; /* 0 when unknown */
    uint64_t bytes_done;
    uint64_t bytes_total;
    double rate_bytes_per_sec;
    double eta_seconds; /* negative when unknown */
} hsdk_export_progress;

typedef int (*hsdk_export_progress_fn)(const hsdk_export_progress *progress, void *user_data);

typedef struct hsdk_export_options {
    size_t struct_size;
    const hsdk_vsphere_options *connection; /* NULL: everything from GOVC_* */
    const char *vm;          /* inventory path, e.g. "/DC0/vm/DC0_H0_VM0" */
    const char *output_dir;  /* created if missing */
    const char *format;      /* ova, ovf, qcow2, raw, vmdk, vhd, vhdx, vdi; NULL = "ova" */
    int resume;              /* continue from the state files an interrupted export left */
    int quiesce;             /* quiesce the guest for the snapshot of a running VM */
    unsigned parallel;       /* disks at once; 0 = 1 */
    int overwrite;           /* replace existing outputs */
    const char *transport;   /* "auto" (NULL), "nfc" or "datastore" */
    hsdk_export_progress_fn progress; /* may be NULL; returning non-zero cancels */
    void *progress_user_data;
} hsdk_export_options;
#define HSDK_EXPORT_OPTIONS_INIT { sizeof(hsdk_export_options), NULL, NULL, NULL, NULL, 0, 0, 1, 0, NULL, NULL, NULL }

/* Exports a VM. Cancel through connection->cancel or the progress callback. On failure the
 * snapshot is removed, the lease aborted, and nothing that looks finished is left behind.
 * *out_result_json (may be NULL) receives {"vm", "files", "bytes_received", "bytes_resumed",
 * "method", "snapshot_used", "seconds"}; free it with hsdk_string_free. */
HSDK_API hsdk_status hsdk_export(char **out_result_json, const hsdk_export_options *options);

/* ---------------------------------------------------------------------------------------
 * Writing an image from your own data: pieces in ascending order (any size, gaps read as zeros);
 * raw also in any order. The image appears only when hsdk_writer_close() succeeds.
 * ------------------------------------------------------------------------------------- */
typedef struct hsdk_writer hsdk_writer;

typedef struct hsdk_writer_options {
    size_t struct_size;
    const char *format;   /* raw, qcow2, vmdk, vhd (vpc), vhdx, vdi */
    const char *options;  /* "key=value,..." as for hsdk_convert; NULL for none */
    int compress;
    unsigned threads;     /* 0 = one per core */
    int overwrite;        /* default 1 */
} hsdk_writer_options;
#define HSDK_WRITER_OPTIONS_INIT { sizeof(hsdk_writer_options), NULL, NULL, 0, 0, 1 }

HSDK_API hsdk_status hsdk_writer_create(hsdk_writer **out, const char *path, uint64_t virtual_size,
                                        const hsdk_writer_options *options);
HSDK_API hsdk_status hsdk_writer_write(hsdk_writer *writer, uint64_t offset, const void *data, size_t length);
/* 1 when pieces may come in any order (raw), 0 when they must ascend. */
HSDK_API int hsdk_writer_random_access(const hsdk_writer *writer);
/* Finishes the image, fsyncs it and renames it into place. */
HSDK_API hsdk_status hsdk_writer_close(hsdk_writer *writer);
/* Frees the handle; an image that was not closed is removed. NULL-safe. */
HSDK_API void hsdk_writer_free(hsdk_writer *writer);

/* ---------------------------------------------------------------------------------------
 * VM descriptions, OVF/OVA and KVM. VMs cross the C ABI as JSON in hsdk's VM model
 * (docs/vm-model.md), which keeps this interface stable as the model grows.
 * ------------------------------------------------------------------------------------- */
/* Reads a VM description (.ovf, .ova, or .json) into VM-model JSON. virtual_system may be NULL. */
HSDK_API hsdk_status hsdk_vm_load_json(char **out_json, const char *path, const char *virtual_system);

typedef struct hsdk_kvm_options {
    size_t struct_size;
    const char *name;         /* domain name; NULL = the VM's */
    const char *disk_dir;     /* folder of the converted disks; NULL = "." */
    const char *disk_format;  /* NULL = "qcow2" */
    const char *network;      /* libvirt network for every NIC; NULL = "default" */
    const char *bridge;       /* or a host bridge for every NIC */
    const char *network_map;  /* "SOURCE=NETWORK,SOURCE=NETWORK" or NULL */
    const char *bridge_map;   /* "SOURCE=BRIDGE,..." or NULL */
    int windows_virtio;       /* the Windows guest has virtio drivers */
    const char *machine;      /* "q35" or "pc" to force; NULL = decide */
    /* Firmware files on the KVM host; NULL = Debian/Ubuntu ovmf package paths. */
    const char *ovmf_code;
    const char *ovmf_vars;
    const char *ovmf_code_secure;
    const char *ovmf_vars_secure;
    const char *nvram_dir;    /* NULL = /var/lib/libvirt/qemu/nvram */
} hsdk_kvm_options;
#define HSDK_KVM_OPTIONS_INIT { sizeof(hsdk_kvm_options), NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL }

/* libvirt domain XML for a VM (VM-model JSON). options may be NULL. */
HSDK_API hsdk_status hsdk_kvm_domain_xml(char **out_xml, const char *vm_json, const hsdk_kvm_options *options);
/* hyper2kvm manifest JSON; measures the converted disks found in options->disk_dir. */
HSDK_API hsdk_status hsdk_kvm_manifest_json(char **out_json, const char *vm_json, const hsdk_kvm_options *options,
                                            hsdk_cancel *cancel);
/* Verifies an OVA (or an .ovf with its files) against its manifest. Returns HSDK_OK with a JSON report
 * {descriptor, manifest, verified[], problems[]}; *out_ok is 1 when there are no problems. */
HSDK_API hsdk_status hsdk_ova_verify_json(char **out_report_json, int *out_ok, const char *path, hsdk_cancel *cancel);

/* ---------------------------------------------------------------------------------------
 * Operations and jobs (docs/api.md lists every operation with its request and result).
 * Every capability is an operation with a dotted name ("image.convert") and a JSON request; it
 * runs as a job on the library's one executor. The typed functions above are thin wrappers over
 * these operations, except the data plane (hsdk_image_* reads, hsdk_writer_*, hsdk_compare).
 * ------------------------------------------------------------------------------------- */
typedef struct hsdk_job hsdk_job;

typedef enum hsdk_job_state_value {
    HSDK_JOB_QUEUED = 0,
    HSDK_JOB_RUNNING = 1,
    HSDK_JOB_SUCCEEDED = 2,
    HSDK_JOB_FAILED = 3,
    HSDK_JOB_CANCELLED = 4
} hsdk_job_state_value;  /* what hsdk_job_state() returns */

/* A line the job logged (its id is also in every line the process-wide sink receives). */
typedef void (*hsdk_job_log_fn)(hsdk_log_level level, const char *job_id, const char *message, void *user_data);
/* Once, when the job has finished; on the job's thread (or the thread cancelling a queued job). */
typedef void (*hsdk_job_finished_fn)(int state, const char *job_id, void *user_data);

typedef struct hsdk_job_callbacks {
    size_t struct_size;
    hsdk_progress_fn progress;     /* may be NULL; returning non-zero cancels the job */
    hsdk_job_log_fn log;           /* may be NULL */
    int log_level;                 /* hsdk_log_level: lines below it are not passed to log */
    hsdk_job_finished_fn finished; /* may be NULL */
    hsdk_cancel *cancel;           /* may be NULL; the job uses this token as its own */
    void *user_data;               /* passed to every callback */
} hsdk_job_callbacks;
#define HSDK_JOB_CALLBACKS_INIT { sizeof(hsdk_job_callbacks), NULL, NULL, HSDK_LOG_INFO, NULL, NULL, NULL }

/* One request to the in-process service (the routes of hypervisord, served without a daemon: an
 * in-memory database, no authentication): request_json is {method, target ("/jobs/query?all=true"),
 * headers {name: value}, body (a string)}; *out_response_json gets {status, content_type, headers
 * [[name, value]...], body (a string)}. An HTTP error status is a response, not a failure. Free
 * with hsdk_string_free. */
HSDK_API hsdk_status hsdk_service_request(const char *request_json, char **out_response_json);

/* The registry: {"version", "operations": [{name, summary, description, long_running, errors,
 * request, result}]}, request and result as JSON Schema draft 7. Free with hsdk_string_free. */
HSDK_API hsdk_status hsdk_ops_json(char **out_json);

/* Validates request_json (NULL means {}) and queues the job. An unknown operation or a bad
 * request fails here with HSDK_E_INVALID, the message naming the field by JSON pointer
 * ("/options/cluster_size: expected integer, got string"). callbacks may be NULL. */
HSDK_API hsdk_status hsdk_job_start(hsdk_job **out, const char *operation, const char *request_json,
                                    const hsdk_job_callbacks *callbacks);
/* Waits until the job has finished, at most timeout_ms (negative: no limit). HSDK_OK once it has
 * finished, whatever its outcome (see hsdk_job_result_json); HSDK_E_TIMEOUT if it has not. */
HSDK_API hsdk_status hsdk_job_wait(hsdk_job *job, int64_t timeout_ms);
/* An hsdk_job_state_value, or HSDK_E_INVALID for NULL. */
HSDK_API int hsdk_job_state(const hsdk_job *job);
/* "queued", "running", "succeeded", "failed", "cancelled"; "unknown" otherwise. */
HSDK_API const char *hsdk_job_state_name(int state);
/* From any thread. A queued job is cancelled at once without running; a running one stops at its
 * next unit of work and cleans up (no partial output is left). */
HSDK_API hsdk_status hsdk_job_cancel(hsdk_job *job);
/* A succeeded job: HSDK_OK and its result JSON. A failed or cancelled one: its error's status,
 * with hsdk_last_error() describing it. HSDK_E_CONFLICT while it has not finished. */
HSDK_API hsdk_status hsdk_job_result_json(char **out_json, const hsdk_job *job);
/* {id, operation, state, request (secrets replaced by "********"), progress{...}, error?,
 * created, started?, finished?}. */
HSDK_API hsdk_status hsdk_job_info_json(char **out_json, const hsdk_job *job);
/* The job's id (a UUID); valid until hsdk_job_free. */
HSDK_API const char *hsdk_job_id(const hsdk_job *job);
/* Frees the handle. A job still running is cancelled and waited for, so that no callback runs
 * after this returns (except when called from the job's own finished callback). NULL-safe. */
HSDK_API void hsdk_job_free(hsdk_job *job);
/* hsdk_job_start + hsdk_job_wait + hsdk_job_result_json in one call. */
HSDK_API hsdk_status hsdk_run_json(char **out_result_json, const char *operation, const char *request_json,
                                   const hsdk_job_callbacks *callbacks);

/* The executor every job shares: job slots, worker threads, I/O threads. 0 keeps a limit. */
typedef struct hsdk_executor_options {
    size_t struct_size;
    unsigned max_jobs;       /* jobs running at once; the rest wait queued (default 4) */
    unsigned worker_threads; /* CPU work of all jobs together (default: one per core) */
    unsigned io_threads;     /* direct writes in flight for all jobs together (default 4) */
} hsdk_executor_options;
#define HSDK_EXECUTOR_OPTIONS_INIT { sizeof(hsdk_executor_options), 0, 0, 0 }
HSDK_API hsdk_status hsdk_executor_configure(const hsdk_executor_options *options);
/* {"jobs": {limit, threads, busy, queued, peak_threads}, "workers": {...}, "io": {...}, "timer_threads"}. */
HSDK_API hsdk_status hsdk_executor_stats_json(char **out_json);

#ifdef __cplusplus
}
#endif

#endif /* HYPERSDK_H */
