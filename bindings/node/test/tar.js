'use strict';
// A minimal ustar writer for building OVA packages in the tests (regular files only, names under
// 100 bytes). GNU tar reads what it writes; ova.test.js checks that.

function octal(value, width) {
  // width - 1 digits and a NUL, as POSIX ustar numeric fields are written.
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function header(name, size, mtime) {
  const h = Buffer.alloc(512);
  if (Buffer.byteLength(name) >= 100) throw new Error(`tar.js: name too long: ${name}`);
  h.write(name, 0, 'utf8');
  h.write(octal(0o644, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');           // uid
  h.write(octal(0, 8), 116, 'ascii');           // gid
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(mtime, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');            // checksum counts as spaces while summing
  h.write('0', 156, 'ascii');                   // regular file
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return h;
}

// members: [{name, data: Buffer|string}] in package order. Returns the archive's bytes.
function tar(members, mtime = 1700000000) {
  const parts = [];
  for (const { name, data } of members) {
    const body = Buffer.isBuffer(data) ? data : Buffer.from(data);
    parts.push(header(name, body.length, mtime), body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));  // two zero blocks end the archive
  return Buffer.concat(parts);
}

module.exports = { tar };
