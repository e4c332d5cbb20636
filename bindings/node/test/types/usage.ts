// Compiled (never run) by api.test.js: the declarations must accept real use and refuse misuse.
// Each @ts-expect-error line must be an error, or tsc fails for an unused directive.
import * as hypersdk from '../..';
import { HypersdkError, type ConvertStats, type Extent, type Image, type OvaReport, type VirtualMachine } from '../..';

export async function usage(): Promise<void> {
  const v: string = hypersdk.version();
  const fmt: string = await hypersdk.probeFormat(new URL('file:///disk.qcow2'));
  const img: Image = await hypersdk.openImage('disk.qcow2', { format: 'qcow2', allowExternalFiles: false, openBacking: true });
  const size: number = img.virtualSize;
  const backing = img.chainInfo()['backing-image']?.filename;
  const buf: Buffer = await img.read(0, 512n);
  const runs: Extent[] = await img.blockStatus();
  const kinds = runs.map((r) => (r.kind === 'data' ? r.hostOffset ?? -1 : r.depth));
  img.close();

  const controller = new AbortController();
  const stats: ConvertStats = await hypersdk.convert('a.raw', 'b.qcow2', {
    outputFormat: 'qcow2',
    sourceFormat: 'raw',
    options: { cluster_size: 65536, lazy_refcounts: true },
    compress: false,
    threads: 2,
    overwrite: true,
    onProgress: (p) => p.bytesDone > p.bytesTotal,
  });
  await hypersdk.convert('a.raw', 'c.raw', {
    outputFormat: 'raw',
    onProgress: async (p) => {
      await Promise.resolve(p.phase);
    },
    signal: controller.signal,
  });
  const same = await hypersdk.compare('a.raw', 'b.qcow2', { aFormat: 'raw', strict: true });
  const first: number | null = same.firstDifference;
  const report = await hypersdk.check('b.qcow2');
  const clean: boolean = report.clean && report['check-errors'] === 0;

  const vm: VirtualMachine = await hypersdk.loadVm('vm.ova', { virtualSystem: 'vm' });
  const xml: string = hypersdk.kvmDomainXml(vm, { diskDir: '/images', bridgeMap: { 'VM Network': 'br0' }, networkMap: new Map() });
  const manifest = await hypersdk.kvmManifest(vm, { diskDir: '/images', signal: controller.signal });
  const ova: OvaReport = await hypersdk.verifyOva('vm.ova');

  const info = await hypersdk.run('image.info', { path: 'b.qcow2', backing_chain: false });
  const converted: hypersdk.ops.ImageConvertResult = await hypersdk.run('image.convert',
    { source: 'a.raw', destination: 'b.qcow2', output_format: 'qcow2', options: { cluster_size: 65536 } },
    { signal: controller.signal, onProgress: (p) => p.itemsDone > 0 });
  const job = hypersdk.start('image.check', { path: 'b.qcow2' });
  const state: hypersdk.JobState = job.state;
  const checked = await job;
  const again: boolean = (await job.wait()).clean;
  job.cancel();
  const described: boolean = hypersdk.operations()['image.convert'].long_running;
  hypersdk.configureExecutor({ maxJobs: 2, workerThreads: 4 });
  const peak: number = hypersdk.executorStats().workers.peak_threads;
  console.log(info, converted.bytes_written, job.id, state, checked.clean, again, described, peak);

  try {
    await hypersdk.openImage('missing');
  } catch (e) {
    if (e instanceof HypersdkError) console.log(e.code, e.status, hypersdk.statusCodes[e.code as 'not_found']);
  }
  console.log(v, fmt, size, backing, buf.length, kinds, stats.outputSize, first, clean, xml, manifest, ova.ok);
}

export async function misuse(img: Image): Promise<void> {
  // @ts-expect-error outputFormat is required
  await hypersdk.convert('a', 'b', {});
  // @ts-expect-error offsets are numbers or bigints
  await img.read('0', 1);
  // @ts-expect-error virtualSize is read-only
  img.virtualSize = 1;
  // @ts-expect-error Image has no public constructor
  new hypersdk.Image();
  // @ts-expect-error kvmDomainXml is synchronous
  await hypersdk.kvmDomainXml({} as VirtualMachine).then(() => 0);
  // @ts-expect-error unknown option
  await hypersdk.openImage('x', { fromat: 'raw' });
  // @ts-expect-error not an operation
  await hypersdk.run('image.nothing', {});
  // @ts-expect-error output_format is required by image.convert's schema
  await hypersdk.run('image.convert', { source: 'a', destination: 'b' });
  // @ts-expect-error a check result has no bytes_written
  console.log((await hypersdk.start('image.check', { path: 'x' })).bytes_written);
  // @ts-expect-error configureExecutor takes camelCase limits
  hypersdk.configureExecutor({ max_jobs: 1 });
  // @ts-expect-error a progress callback answers with a boolean (true cancels), nothing or a Promise
  await hypersdk.convert('a', 'b', { outputFormat: 'raw', onProgress: () => 'stop' });
}

// The REST client with the old HyperSDK TypeScript SDK's API, as its examples use it.
export async function clientUsage(): Promise<void> {
  const client = new hypersdk.HyperSDK('http://127.0.0.1:8080', { apiKey: 'key', timeout: 10_000 });
  const same = new hypersdk.HyperSDK({ baseURL: 'http://127.0.0.1:8080', headers: { 'X-Trace': '1' } });
  const local = new hypersdk.HyperSDK();
  const health: string = (await local.health()).status;
  const status: hypersdk.DaemonStatus = await client.status();
  const token: string = await same.login('admin', 'password');
  const jobDef: hypersdk.JobDefinition = {
    name: 'Export Ubuntu Server',
    vm_path: '/Datacenter/vm/ubuntu-server',
    output_dir: '/exports',
    vcenter: { server: 'vcenter.example.com', username: 'administrator@vsphere.local', password: 'pw', insecure: true },
    format: hypersdk.ExportFormat.OVF,
    compress: true,
    thin: true,
  };
  const jobId: string = await client.submitJob(jobDef);
  const job: hypersdk.ClientJob = await client.getJob(jobId);
  const finished: boolean = job.status === hypersdk.JobStatus.COMPLETED || job.status === hypersdk.JobStatus.FAILED;
  const percent: number = job.progress ? job.progress.percent_complete : 0;
  const files: string[] = job.result ? job.result.files : [];
  const running = await client.queryJobs({ status: [hypersdk.JobStatus.RUNNING], limit: 5 });
  const all: hypersdk.ClientJob[] = await client.listJobs(true);
  const eta: string = await client.getJobETA(running[0]?.definition.id ?? jobId);
  const logs: string = await client.getJobLogs(jobId);
  const cancelled: boolean = await client.cancelJob(jobId);
  const vms = await client.listVMs({ server: 'vc', username: 'u', password: 'p', insecure: true });
  const schedule = await client.createSchedule({ name: 'nightly', schedule: '0 2 * * *', job_template: jobDef, enabled: true });
  const triggered: string = (await client.triggerSchedule(schedule.id ?? '')).job_id;
  await client.addWebhook({ url: 'http://127.0.0.1:9/hook', events: ['job_completed'] });
  try {
    await client.enableCBT('/Datacenter/vm/ubuntu-server');
  } catch (e) {
    if (e instanceof hypersdk.APIError) console.log(e.statusCode, e.route);
    else if (e instanceof hypersdk.HyperSDKError) console.log(e.message);
  }
  console.log(health, status.running_jobs, token, finished, percent, files, all.length, eta, logs, cancelled,
    vms[0]?.name, triggered);
}

export async function clientMisuse(client: hypersdk.HyperSDK): Promise<void> {
  // @ts-expect-error a job definition needs vm_path
  await client.submitJob({ output_dir: '/x' });
  // @ts-expect-error not a job status
  const s: hypersdk.JobStatus = 'done';
  // @ts-expect-error the client's job is not the library's Job class
  const j: hypersdk.Job = await client.getJob('x');
  // @ts-expect-error getJobETA resolves to a string
  const n: number = await client.getJobETA('x');
  console.log(s, j, n);
}
