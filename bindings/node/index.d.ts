// Type declarations of the hypersdk package (lib/index.js).
//
// Conventions: byte offsets and sizes are numbers (exact up to 2^53, beyond any virtual disk);
// inputs also accept bigints. Paths are strings or file: URLs. Every failure is a HypersdkError,
// and functions returning a Promise reject rather than throw.

/// <reference types="node" />

import type { Operations, OperationName } from './ops';
/** Requests and results of every operation, generated from api/*.json: ops.ImageConvertRequest, ... */
export type * as ops from './ops';

/** Names of the library's statuses (hsdk_status_name), as HypersdkError.code carries them. */
export type StatusName =
  | 'ok'
  | 'invalid_argument'
  | 'not_found'
  | 'unsupported'
  | 'corrupt_image'
  | 'io_error'
  | 'no_space'
  | 'network_error'
  | 'tls_error'
  | 'auth_failed'
  | 'permission_denied'
  | 'timeout'
  | 'cancelled'
  | 'checksum_mismatch'
  | 'remote_error'
  | 'conflict'
  | 'internal'
  | 'no_memory';

/** The error every function of this package throws or rejects with. */
export class HypersdkError extends Error {
  constructor(message: string, code: StatusName | string, status: number);
  readonly name: 'HypersdkError';
  /** Stable snake_case name of the status, e.g. "not_found". */
  code: StatusName | string;
  /** The C ABI's pinned status number (negative), e.g. -2. */
  status: number;
}

/** Every status by name: { ok: 0, invalid_argument: -1, not_found: -2, ... }. */
export const statusCodes: Readonly<Record<StatusName, number>>;

export type PathLike = string | URL;
export type ByteCount = number | bigint;

/** Version of the libhypersdk actually loaded, e.g. "0.2.0". */
export function version(): string;

/** The request of an operation (api/*.json, generated into ops.d.ts). */
export type RequestOf<Op extends OperationName> = Operations[Op]['request'];
/** The result of an operation. */
export type ResultOf<Op extends OperationName> = Operations[Op]['result'];

export interface RunOptions {
  /** Aborting cancels the job (it rejects with code "cancelled"). */
  signal?: AbortSignal;
  /** Called on the JavaScript thread for each report; return true to cancel; a thrown exception cancels and becomes the rejection. */
  onProgress?: (progress: Progress) => boolean | void | Promise<unknown>;
}

/** Runs an operation of the registry; a bad request rejects with "invalid_argument" naming the field by JSON pointer. */
export function run<Op extends OperationName>(operation: Op, request: RequestOf<Op>, options?: RunOptions): Promise<ResultOf<Op>>;

export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

/** A started operation. Awaiting the Job (or wait()) gives the result or rejects with the job's error. */
export class Job<Op extends OperationName = OperationName> implements PromiseLike<ResultOf<Op>> {
  private constructor();
  readonly operation: Op;
  /** A UUID; the job's log lines carry it. */
  readonly id: string;
  readonly state: JobState;
  wait(): Promise<ResultOf<Op>>;
  then<A = ResultOf<Op>, B = never>(onFulfilled?: ((value: ResultOf<Op>) => A | PromiseLike<A>) | null,
    onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null): Promise<A | B>;
  /** A queued job is cancelled at once; a running one stops and cleans up. */
  cancel(): void;
  /** id, operation, state, request (secrets masked), progress, error, times. */
  info(): Record<string, unknown>;
}

/** Starts an operation as a job; the request is validated now (a bad one throws). */
export function start<Op extends OperationName>(operation: Op, request: RequestOf<Op>, options?: RunOptions): Job<Op>;

export interface OperationDescription {
  name: OperationName;
  summary: string;
  description: string;
  long_running: boolean;
  errors: StatusName[];
  request: Record<string, unknown>;
  result: Record<string, unknown>;
}

/** Every operation of the registry, by name, with its JSON Schemas. */
export function operations(): Record<OperationName, OperationDescription>;

export interface ExecutorLimits {
  /** Jobs running at once; the rest wait queued. */
  maxJobs?: number;
  /** Threads for CPU work of all jobs together. */
  workerThreads?: number;
  /** Direct writes in flight for all jobs together. */
  ioThreads?: number;
}

/** Limits of the executor every job shares (absent or 0 keeps a limit). */
export function configureExecutor(limits: ExecutorLimits): void;

export interface PoolStats {
  limit: number;
  threads: number;
  busy: number;
  queued: number;
  peak_threads: number;
}

export function executorStats(): { jobs: PoolStats; workers: PoolStats; io: PoolStats; timer_threads: number };

/** The format a file would be opened as ("qcow2", "vmdk", ...). Raw is never guessed: a raw file rejects with code "unsupported". */
export function probeFormat(path: PathLike): Promise<string>;

export interface OpenOptions {
  /** Format to open as (raw, qcow2, vmdk, vhd/vpc, vhdx, vdi); probed by signature when absent. */
  format?: string;
  /** Follow backing files and extents outside the image's folder (default false). */
  allowExternalFiles?: boolean;
  /** Compose the backing chain (default true). */
  openBacking?: boolean;
}

export type ExtentKind = 'data' | 'zero' | 'hole';

export interface Extent {
  offset: number;
  length: number;
  /** data: allocated, read it; zero: reads as zeros; hole: allocated nowhere in the chain. */
  kind: ExtentKind;
  /** Layer of the chain that provides the run: 0 = the image itself, 1 = its backing file, ... */
  depth: number;
  /** Offset in the image file when the run is a plain range of one file, else null. */
  hostOffset: number | null;
}

/** qemu-img-like description of one image; keys as `qemu-img info --output=json`. */
export interface ImageInfo {
  filename: string;
  format: string;
  'virtual-size': number;
  'actual-size'?: number;
  'cluster-size'?: number;
  'backing-filename'?: string;
  'backing-filename-format'?: string;
  'dirty-flag'?: boolean;
  files?: string[];
  'format-specific'?: { type: string; data: Record<string, unknown> };
  /** Present in chainInfo(): the backing image, nested. */
  'backing-image'?: ImageInfo;
  [key: string]: unknown;
}

/** A disk image opened read-only as a block device. Obtain one with openImage(). */
export class Image {
  private constructor();
  /** Size of the disk the image presents, in bytes. Throws when closed. */
  readonly virtualSize: number;
  /** Description of the image itself (a fresh object on each access). Throws when closed. */
  readonly info: ImageInfo;
  readonly closed: boolean;
  /** The image and its backing files, each nested under "backing-image". */
  chainInfo(): ImageInfo;
  /** Reads length bytes at offset; the range must lie inside virtualSize. */
  read(offset: ByteCount, length: ByteCount): Promise<Buffer>;
  /** Allocation map of [offset, offset+length); defaults to the whole disk. */
  blockStatus(offset?: ByteCount, length?: ByteCount): Promise<Extent[]>;
  /** Frees the image now (idempotent); operations already running finish first. */
  close(): void;
  [Symbol.dispose](): void;
}

/** Opens a disk image read-only. */
export function openImage(path: PathLike, options?: OpenOptions): Promise<Image>;

export interface Progress {
  /** "converting", ... */
  phase: string;
  bytesDone: number;
  /** Bytes the phase will process (for a conversion: the data to read); 0 when unknown. */
  bytesTotal: number;
  rateBytesPerSec: number;
  /** Negative when unknown. */
  etaSeconds: number;
  /** Items (disks, files) of the job: done and total; 0 when the job has none. */
  itemsDone: number;
  itemsTotal: number;
  /** The item being worked on: its index and name ("" when none) and its own bytes. */
  itemIndex: number;
  currentItem: string;
  itemBytesDone: number;
  itemBytesTotal: number;
  /** True in the last report of the job. */
  finished: boolean;
  /** The job reporting. */
  jobId: string;
}

export type FormatOptionValue = string | number | bigint | boolean;

export interface ConvertOptions {
  /** raw, qcow2, vmdk, vhd (vpc), vhdx, vdi. Required. */
  outputFormat: string;
  /** Writer options as for qemu-img -o: an object ({cluster_size: 65536}) or "key=value,..." text. */
  options?: Record<string, FormatOptionValue> | string;
  /** Compress where the output format can (default false). */
  compress?: boolean;
  /** Worker threads; 0 or absent = one per core. */
  threads?: number;
  /** Format of the source; probed when absent (raw must be named). */
  sourceFormat?: string;
  /** Let the source follow files outside its folder (default false). */
  allowExternalFiles?: boolean;
  /** Replace an existing destination, atomically (default true); false rejects with "conflict". */
  overwrite?: boolean;
  /**
   * Output cache mode as qemu-img's -t: "none" (default: O_DIRECT for aligned data, fsync),
   * "writeback" (page cache, fsync) or "unsafe" (page cache, no fsync; qemu-img convert's default).
   * Other names reject with "invalid_argument".
   */
  cache?: 'none' | 'writeback' | 'unsafe';
  /**
   * Called on the JavaScript thread for each report (at most every 100 ms, and at phase changes);
   * the conversion waits for it. Return true to cancel; a thrown exception cancels and becomes
   * the rejection.
   */
  onProgress?: (progress: Progress) => boolean | void | Promise<unknown>;
  /** Aborting cancels the conversion (rejects with code "cancelled"). */
  signal?: AbortSignal;
}

export interface ConvertStats {
  virtualSize: number;
  bytesRead: number;
  bytesWritten: number;
  /** Size of the output file(s) on disk. */
  outputSize: number;
  seconds: number;
}

/** Converts an image. The destination appears only when complete; a failed or cancelled job leaves nothing. */
export function convert(source: PathLike, destination: PathLike, options: ConvertOptions): Promise<ConvertStats>;

export interface CompareOptions {
  aFormat?: string;
  bFormat?: string;
  /** Sizes must match too (default false: a longer image whose tail reads as zeros is equal). */
  strict?: boolean;
  /** Aborting cancels the comparison (rejects with code "cancelled"). */
  signal?: AbortSignal;
}

export interface CompareResult {
  identical: boolean;
  /** First differing byte offset; null when identical. */
  firstDifference: number | null;
}

export function compare(a: PathLike, b: PathLike, options?: CompareOptions): Promise<CompareResult>;

/** Metadata check report; keys as `qemu-img check --output=json`, plus clean and messages. */
export interface CheckReport {
  filename: string;
  format: string;
  /** No corruptions, leaks or check errors. */
  clean: boolean;
  /** Metadata inconsistencies that lose or corrupt data (tables past the end of the file, refcounts too low, ...). */
  corruptions: number;
  /** Allocated clusters nothing refers to. */
  leaks: number;
  /** Places the check itself could not examine (as qemu-img check means it). */
  'check-errors': number;
  messages: string[];
  'allocated-clusters'?: number;
  'total-clusters'?: number;
  'image-end-offset'?: number;
  [key: string]: unknown;
}

export function check(path: PathLike, options?: { format?: string; signal?: AbortSignal }): Promise<CheckReport>;

/** A disk of the VM model (docs/vm-model.md). */
export interface VmDisk {
  id: string;
  label: string;
  capacity_bytes: number;
  controller: string;
  controller_model: string;
  controller_bus: number;
  unit: number;
  backing_file: string;
  datastore: string;
  change_id: string;
  thin: boolean;
  file: string;
  file_format: string;
  file_bytes: number;
  sha256: string;
  boot_order: number | null;
  [key: string]: unknown;
}

export interface VmNic {
  id: string;
  mac: string;
  network: string;
  adapter_type: string;
  connected: boolean;
  [key: string]: unknown;
}

/** hsdk's VM model (docs/vm-model.md); keys as the model names them. */
export interface VirtualMachine {
  provider: string;
  id: string;
  name: string;
  inventory_path: string;
  uuid: string;
  instance_uuid: string;
  power_state: string;
  guest_id: string;
  ovf_os_id: number;
  guest_os_description: string;
  cpus: number;
  cores_per_socket: number;
  memory_mib: number;
  firmware: 'bios' | 'efi';
  secure_boot: boolean;
  hardware_version: string;
  disks: VmDisk[];
  nics: VmNic[];
  [key: string]: unknown;
}

/** Reads a VM description (.ovf, .ova or VM-model .json). */
export function loadVm(path: PathLike, options?: { virtualSystem?: string }): Promise<VirtualMachine>;

export type NameMap = Record<string, string> | Map<string, string> | string;

export interface KvmOptions {
  /** Domain name; default the VM's. */
  name?: string;
  /** Folder of the converted disks; default ".". */
  diskDir?: PathLike;
  /** Format of the converted disks; default "qcow2". */
  diskFormat?: string;
  /** libvirt network for every NIC; default "default". */
  network?: string;
  /** Or a host bridge for every NIC. */
  bridge?: string;
  /** Per source network: libvirt network ({Source: "net"} or "Source=net,..."). */
  networkMap?: NameMap;
  /** Per source network: host bridge. */
  bridgeMap?: NameMap;
  /** The Windows guest already has virtio drivers. */
  windowsVirtio?: boolean;
  /** Force "q35" or "pc". */
  machine?: string;
  /** Firmware files on the KVM host (defaults: Debian/Ubuntu ovmf package paths). */
  ovmfCode?: string;
  ovmfVars?: string;
  ovmfCodeSecure?: string;
  ovmfVarsSecure?: string;
  /** Where libvirt keeps per-VM NVRAM (default /var/lib/libvirt/qemu/nvram). */
  nvramDir?: string;
}

/** libvirt domain XML. Synchronous: it reads no file. */
export function kvmDomainXml(vm: VirtualMachine, options?: KvmOptions): string;

/** hyper2kvm artifact manifest (docs/hyper2kvm-manifest.md); hashes the disks in diskDir. */
export function kvmManifest(vm: VirtualMachine, options?: KvmOptions & { signal?: AbortSignal }): Promise<Record<string, unknown>>;

export interface OvaReport {
  /** Name of the .ovf member. */
  descriptor: string;
  /** Name of the .mf member; "" when there is none. */
  manifest: string;
  /** Members whose digest matched the manifest. */
  verified: string[];
  problems: string[];
  /** True when there are no problems. */
  ok: boolean;
}

/** Checks an OVA (or an .ovf with its files) against its manifest. */
export function verifyOva(path: PathLike, options?: { signal?: AbortSignal }): Promise<OvaReport>;

// ---- HyperSDK: the REST client of the original HyperSDK TypeScript SDK ---------------------------
//
// new HyperSDK('http://host:8080', { apiKey, timeout }) talks to hypervisord; new HyperSDK() runs
// the same calls against the service inside this process (no daemon, no authentication, jobs in
// memory). Method names, arguments and resolved shapes are the old SDK's; its `Job` interface is
// `ClientJob` here (`Job` is the library's job class above). Failures are HyperSDKError subclasses,
// not HypersdkError.

/** Base of every error the client throws. */
export class HyperSDKError extends Error {
  constructor(message: string);
}
/** HTTP 401: no or a wrong API key, an expired token, or a failed login. */
export class AuthenticationError extends HyperSDKError {
  constructor(message: string, statusCode?: number, response?: any);
  statusCode?: number;
  response?: any;
}
/** HTTP 404 of a request naming a job, schedule or webhook. */
export class JobNotFoundError extends HyperSDKError {
  constructor(message: string, statusCode?: number, response?: any);
  statusCode?: number;
  response?: any;
}
/** Any other failure: an error status (statusCode, response = the decoded error body), a failed
 * connection or timeout (no statusCode), or a route the daemon does not serve (route, e.g. "POST /cbt/enable"). */
export class APIError extends HyperSDKError {
  constructor(message: string, statusCode?: number, response?: any, route?: string);
  statusCode?: number;
  response?: any;
  route?: string;
}
/** An argument refused before the request was sent. */
export class ValidationError extends HyperSDKError {}
/** Kept for the old SDK's users; this client opens no WebSocket. */
export class WebSocketError extends HyperSDKError {}

export const JobStatus: {
  readonly PENDING: 'pending';
  readonly RUNNING: 'running';
  readonly COMPLETED: 'completed';
  readonly FAILED: 'failed';
  readonly CANCELLED: 'cancelled';
};
export type JobStatus = (typeof JobStatus)[keyof typeof JobStatus];

export const ExportFormat: {
  readonly QCOW2: 'qcow2';
  readonly RAW: 'raw';
  readonly VMDK: 'vmdk';
  readonly OVA: 'ova';
  readonly OVF: 'ovf';
  readonly VHD: 'vhd';
  readonly VHDX: 'vhdx';
  readonly VDI: 'vdi';
};
export type ExportFormat = (typeof ExportFormat)[keyof typeof ExportFormat];

export const ExportMethod: {
  readonly CTL: 'ctl';
  readonly GOVC: 'govc';
  readonly OVFTOOL: 'ovftool';
  readonly WEB: 'web';
  readonly AUTO: '';
};
export type ExportMethod = (typeof ExportMethod)[keyof typeof ExportMethod];

export interface VCenterConfig {
  server: string;
  username: string;
  password: string;
  insecure?: boolean;
}

export interface ExportOptions {
  parallel_downloads?: number;
  remove_cdrom?: boolean;
  shutdown_vm?: boolean;
  compress?: boolean;
  show_individual_progress?: boolean;
  enable_pipeline?: boolean;
  hyper2kvm_path?: string;
  pipeline_inspect?: boolean;
  pipeline_fix?: boolean;
  pipeline_convert?: boolean;
  pipeline_validate?: boolean;
  pipeline_compress?: boolean;
  compress_level?: number;
  libvirt_integration?: boolean;
  libvirt_uri?: string;
  libvirt_autostart?: boolean;
  libvirt_bridge?: string;
  libvirt_pool?: string;
  [key: string]: unknown;
}

/** A job as POST /jobs/submit takes it (the old SDK's fields, then hypervisord's). */
export interface JobDefinition {
  vm_path: string;
  name?: string;
  id?: string;
  output_path?: string;
  output_dir?: string;
  vcenter_url?: string;
  vcenter?: VCenterConfig;
  username?: string;
  password?: string;
  datacenter?: string;
  format?: ExportFormat | string;
  export_method?: ExportMethod | string;
  method?: string;
  compress?: boolean;
  thin?: boolean;
  insecure?: boolean;
  options?: ExportOptions;
  created_at?: string;
  provider?: string;
  priority?: number;
  depends_on?: string[];
  max_retries?: number;
  time_window?: string;
  hyper2kvm_integration?: { enabled?: boolean; auto_convert?: boolean; daemon_mode?: boolean; instance?: string };
  metadata?: Record<string, unknown>;
}

export interface JobProgress {
  phase: string;
  current_file?: string;
  current_step?: string;
  files_downloaded: number;
  total_files: number;
  bytes_downloaded: number;
  bytes_transferred: number;
  total_bytes: number;
  percent_complete: number;
  estimated_remaining?: string | null;
  export_method?: string;
  job_id?: string;
  status?: JobStatus;
  percentage?: number;
  transfer_rate_mbps?: number;
  speed_mbps?: number;
}

export interface JobResult {
  vm_name: string;
  output_dir: string;
  ovf_path: string;
  files: string[];
  output_files?: string[];
  total_size: number;
  duration: number;
  success: boolean;
  export_method?: string;
  error?: string;
  [key: string]: unknown;
}

/** The old SDK's `Job`: a job as GET /jobs/{id} and /jobs/query answer it. */
export interface ClientJob {
  id?: string;
  name?: string;
  operation?: string;
  definition: JobDefinition;
  status: JobStatus;
  progress?: JobProgress;
  result?: JobResult;
  error?: string;
  created_at?: string;
  started_at?: string;
  completed_at?: string;
  updated_at: string;
  priority?: number;
  depends_on?: string[];
  retries?: number;
  schedule_id?: string;
}

export interface QueryRequest {
  job_ids?: string[];
  status?: JobStatus[];
  all?: boolean;
  limit?: number;
}

export interface QueryResponse {
  jobs: ClientJob[];
  total: number;
  timestamp: string;
}

export interface SubmitResponse {
  job_ids: string[];
  accepted: number;
  rejected: number;
  errors?: unknown[];
  timestamp: string;
  job_id?: string;
}

export interface CancelRequest {
  job_ids: string[];
}

export interface CancelResponse {
  cancelled: string[];
  failed: string[];
  errors?: Record<string, string>;
  timestamp: string;
}

export interface DaemonStatus {
  version: string;
  uptime: string;
  uptime_seconds?: number;
  total_jobs: number;
  pending_jobs?: number;
  running_jobs: number;
  completed_jobs: number;
  failed_jobs: number;
  cancelled_jobs: number;
  timestamp: string;
}

export interface ScheduledJob {
  id?: string;
  name: string;
  description?: string;
  schedule: string;
  job_template: JobDefinition;
  enabled?: boolean;
  created_at?: string;
  updated_at?: string;
  next_run?: string;
  last_run?: string;
  run_count?: number;
  tags?: string[];
  priority?: number;
  time_window?: string;
}

export interface Webhook {
  id?: string;
  url: string;
  events?: string[];
  headers?: Record<string, string>;
  enabled?: boolean;
  secret?: string;
}

export interface WebhookTestResult {
  url: string;
  status_code: number;
  success: boolean;
  duration_ms: number;
}

export interface ErrorResponse {
  error: string;
  timestamp: string;
}

export interface HealthResponse {
  status: string;
  version?: string;
  uptime?: string;
  timestamp: string;
}

export interface CapabilitiesResponse {
  providers?: string[];
  formats?: string[];
  export_methods?: string[];
  operations?: string[];
  features?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface VmSummary {
  name: string;
  path: string;
  power_state: string;
  num_cpu: number;
  memory_mb: number;
  guest_os?: string;
  [key: string]: unknown;
}

export interface CarbonForecast {
  time: string;
  intensity_gco2_kwh: number;
  quality: string;
}

export interface CarbonStatus {
  zone: string;
  current_intensity: number;
  renewable_percent: number;
  optimal_for_backup: boolean;
  next_optimal_time?: string;
  forecast_next_4h: CarbonForecast[];
  reasoning: string;
  quality: string;
  timestamp: string;
}

export interface CarbonReport {
  operation_id: string;
  start_time: string;
  end_time: string;
  duration_hours: number;
  data_size_gb: number;
  energy_kwh: number;
  carbon_intensity_gco2_kwh: number;
  carbon_emissions_kg_co2: number;
  savings_vs_worst_kg_co2: number;
  renewable_percent: number;
  equivalent: string;
}

export interface CarbonZone {
  id: string;
  name: string;
  region: string;
  description: string;
  typical_intensity: number;
}

export interface CarbonEstimate {
  current_intensity_gco2_kwh: number;
  current_emissions_kg_co2: number;
  best_intensity_gco2_kwh: number;
  best_emissions_kg_co2: number;
  best_time?: string;
  savings_kg_co2: number;
  savings_percent: number;
  recommendation: string;
  delay_minutes?: number;
  forecast: CarbonForecast[];
}

/** POST /cbt/enable|disable|status: cbt.enable / cbt.status's result with vm_path (and success for enable/disable). */
export interface CbtAnswer {
  vm_path: string;
  provider: string;
  vm: string;
  enabled: boolean;
  disks: { disk_id: string; label: string; change_id: string }[];
  success?: boolean;
  timestamp?: string;
}

export interface HyperSDKConfig {
  /** The daemon, e.g. "http://127.0.0.1:8080"; none runs in this process. */
  baseURL?: string;
  apiKey?: string;
  /** Milliseconds per request (default 30000). */
  timeout?: number;
  headers?: Record<string, string>;
}

export class HyperSDK {
  constructor(config?: HyperSDKConfig | string | URL, options?: Omit<HyperSDKConfig, 'baseURL'>);
  readonly baseURL: string | undefined;
  readonly apiKey: string | undefined;
  readonly timeout: number;
  readonly headers: Record<string, string>;
  /** True when requests go to the service in this process. */
  readonly inProcess: boolean;
  /** The session token of the last login(). */
  readonly token: string | undefined;

  login(username: string, password: string): Promise<string>;
  logout(): Promise<void>;

  health(): Promise<HealthResponse>;
  status(): Promise<DaemonStatus>;
  capabilities(): Promise<CapabilitiesResponse>;

  submitJob(jobDef: JobDefinition): Promise<string>;
  submitJobs(jobDefs: JobDefinition[]): Promise<string[]>;
  getJob(jobId: string): Promise<ClientJob>;
  queryJobs(query?: QueryRequest): Promise<ClientJob[]>;
  listJobs(all?: boolean): Promise<ClientJob[]>;
  cancelJob(jobId: string): Promise<boolean>;
  cancelJobs(jobIds: string[]): Promise<CancelResponse>;
  getJobProgress(jobId: string): Promise<JobProgress>;
  getJobLogs(jobId: string): Promise<string>;
  getJobETA(jobId: string): Promise<string>;
  /** The same as getJobETA. */
  getJobEta(jobId: string): Promise<string>;

  /** The VMs of the vCenter given (the old SDK's bare {server, username, password, insecure}), or of the daemon's provider. */
  listVMs(vcenterConfig?: VCenterConfig | null, options?: { provider?: string; filter?: { datacenter?: string; power_state?: string; name_pattern?: string } }): Promise<VmSummary[]>;
  getVMInfo(vcenterConfig: VCenterConfig | null | undefined, vmPath: string): Promise<any>;
  /** Not served by hypervisord: rejects with an APIError naming the route. */
  shutdownVM(vcenterConfig: VCenterConfig, vmPath: string): Promise<any>;

  listSchedules(): Promise<ScheduledJob[]>;
  createSchedule(schedule: ScheduledJob): Promise<ScheduledJob>;
  getSchedule(scheduleId: string): Promise<ScheduledJob>;
  updateSchedule(scheduleId: string, schedule: ScheduledJob): Promise<ScheduledJob>;
  deleteSchedule(scheduleId: string): Promise<void>;
  enableSchedule(scheduleId: string): Promise<void>;
  disableSchedule(scheduleId: string): Promise<void>;
  /** Runs the schedule's job now. */
  triggerSchedule(scheduleId: string): Promise<{ schedule_id: string; job_id: string }>;

  listWebhooks(): Promise<Webhook[]>;
  addWebhook(webhook: Webhook): Promise<Webhook>;
  /** Rejects with an APIError when the test delivery failed. */
  testWebhook(url: string): Promise<WebhookTestResult>;
  deleteWebhook(webhookId: string): Promise<void>;

  /** Changed block tracking of a VM of the vCenter given, or (as the old SDK called it) of the daemon's configured vCenter. */
  enableCBT(vmPath: string, vcenterConfig?: VCenterConfig): Promise<CbtAnswer>;
  disableCBT(vmPath: string, vcenterConfig?: VCenterConfig): Promise<CbtAnswer>;
  getCBTStatus(vmPath: string, vcenterConfig?: VCenterConfig): Promise<CbtAnswer>;
  analyzeIncrementalExport(vmPath: string, vcenterConfig?: VCenterConfig): Promise<{ vm_path: string; cbt_enabled: boolean; can_incremental: boolean; has_previous_backup: boolean; recommendation: string; [key: string]: unknown }>;

  // The old SDK's methods for routes hypervisord does not serve: each rejects with an APIError
  // naming the route (.route), unless a daemon serving it answers.
  listDomains(): Promise<any[]>;
  getDomain(name: string): Promise<any>;
  startDomain(name: string): Promise<void>;
  shutdownDomain(name: string): Promise<void>;
  listSnapshots(domain: string): Promise<any[]>;
  createSnapshot(domain: string, name: string, description?: string): Promise<void>;
  estimateCost(params: { provider: string; region: string; storageClass: string; storageGB: number; transferGB?: number; requests?: number; durationDays?: number }): Promise<any>;
  compareProviders(params: { storageGB: number; transferGB?: number; requests?: number; durationDays?: number }): Promise<any>;
  projectYearlyCost(params: { provider: string; storageClass: string; storageGB: number; transferGB?: number; requests?: number }): Promise<any>;
  estimateExportSize(params: { diskSizeGB: number; format?: string; includeSnapshots?: boolean }): Promise<any>;
  createAdvancedSchedule(params: { name: string; schedule: string; jobTemplate: any; description?: string; advancedConfig?: Record<string, unknown> }): Promise<{ success: boolean; message: string; schedule: any }>;
  getDependencyStatus(jobId: string): Promise<any>;
  getRetryStatus(jobId: string): Promise<any>;
  getTimeWindowStatus(jobId: string): Promise<any>;
  getJobQueueStatus(): Promise<{ queue_size: number; running_jobs: number; max_slots: number; queued_jobs: any[] }>;
  validateSchedule(params: { name: string; schedule: string; jobTemplate: any; advancedConfig?: any }): Promise<{ valid: boolean; errors?: string[]; message?: string }>;
  convertVM(sourcePath: string, outputPath: string): Promise<string>;
  getConversionStatus(conversionId: string): Promise<any>;
  getCarbonStatus(zone?: string, threshold?: number): Promise<CarbonStatus>;
  listCarbonZones(): Promise<CarbonZone[]>;
  estimateCarbonSavings(zone: string, dataSizeGB: number, durationHours?: number): Promise<CarbonEstimate>;
  getCarbonReport(jobId: string, startTime: string, endTime: string, dataSizeGB: number, zone?: string): Promise<CarbonReport>;
  /** Submits with the old SDK's carbon metadata; hypervisord does not delay the job. */
  submitCarbonAwareJob(jobDef: JobDefinition, carbonZone?: string, maxIntensity?: number, maxDelayHours?: number): Promise<string>;
}
