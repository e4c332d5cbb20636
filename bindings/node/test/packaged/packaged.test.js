'use strict';
// Run by scripts/lib/node_package_check.sh in an empty project that installed the packed tarball,
// away from the repository: the package works there on its own. HSDK_HEADER names hypersdk.h of
// the repository the tarball was packed from (its version must be the package's).
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const hypersdk = require('hypersdk');

const MiB = 1024 * 1024;
const installed = path.dirname(require.resolve('hypersdk/package.json'));

test('the package is the one installed in this project, built from the sources it carries', () => {
  assert.equal(installed, path.join(process.cwd(), 'node_modules', 'hypersdk'));
  assert.ok(fs.existsSync(path.join(installed, 'deps', 'libhypersdk', 'capi', 'include', 'hypersdk.h')));
  for (const f of ['index.d.ts', 'ops.d.ts', 'lib/ops.js']) assert.ok(fs.existsSync(path.join(installed, f)), f);
  const addon = path.join(installed, 'build', 'Release', 'hypersdk.node');
  const ldd = spawnSync('ldd', [addon], { encoding: 'utf8' });
  const line = ldd.stdout.split('\n').find((l) => l.includes('libhypersdk.so'));
  assert.ok(line && line.includes(path.join(installed, 'build', 'Release')), line);
});

test('its version is the library\'s', () => {
  const header = fs.readFileSync(process.env.HSDK_HEADER, 'utf8');
  const part = (n) => header.match(new RegExp(`#define HSDK_VERSION_${n} (\\d+)`))[1];
  const expected = `${part('MAJOR')}.${part('MINOR')}.${part('PATCH')}`;
  assert.equal(hypersdk.version(), expected);
  assert.equal(JSON.parse(fs.readFileSync(path.join(installed, 'package.json'), 'utf8')).version, expected);
});

test('operations run: convert, check, compare, and a job', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hypersdk-packaged-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const raw = path.join(dir, 'disk.raw');
  const data = Buffer.alloc(MiB);
  for (let i = 0; i < data.length; i++) data[i] = (i * 131) & 0xff;
  fs.writeFileSync(raw, Buffer.concat([data, Buffer.alloc(3 * MiB)]));
  const out = path.join(dir, 'disk.qcow2');
  const stats = await hypersdk.run('image.convert', { source: raw, source_format: 'raw', destination: out, output_format: 'qcow2' });
  assert.equal(stats.virtual_size, 4 * MiB);
  assert.equal((await hypersdk.check(out)).clean, true);
  assert.equal(spawnSync('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', raw, out]).status, 0);
  const job = hypersdk.start('image.compare', { a: raw, a_format: 'raw', b: out });
  assert.equal((await job).identical, true);
  assert.equal(job.state, 'succeeded');
  assert.ok(Object.keys(hypersdk.operations()).length >= 10);
});
