'use strict';
// Image: a disk image opened read-only as a block device. The native handle is freed by close()
// or, failing that, when the garbage collector takes the object; reads still running keep it.
const { constants: bufferConstants } = require('node:buffer');
const native = require('./native');
const args = require('./args');
const { invalidArgument } = require('./errors');
const { run } = require('./ops');

const construct = Symbol('hypersdk.Image');

class Image {
  #native;

  constructor(token, nativeImage) {
    if (token !== construct) throw invalidArgument('use openImage() to open an image');
    this.#native = nativeImage;
  }

  /** Size of the disk the image presents, in bytes. */
  get virtualSize() {
    return this.#native.virtualSize;
  }

  /** qemu-img-like description of the image itself (keys as `qemu-img info --output=json`). */
  get info() {
    return JSON.parse(this.#native.infoJson());
  }

  get closed() {
    return this.#native.closed;
  }

  /** The image and its backing files, each nested under "backing-image". */
  chainInfo() {
    return JSON.parse(this.#native.chainJson());
  }

  /** Reads length bytes at offset (the range must lie inside virtualSize). */
  async read(offset, length) {
    offset = args.uint(offset, 'offset');
    length = args.uint(length, 'length');
    const size = this.virtualSize;
    if (offset > size || length > size - offset) {
      throw invalidArgument(`read of ${length} bytes at offset ${offset} goes past the end of the image (virtual size ${size})`);
    }
    if (length > bufferConstants.MAX_LENGTH) throw invalidArgument(`length ${length} is more than a Buffer can hold`);
    return this.#native.read(offset, Buffer.allocUnsafe(length));
  }

  /** Allocation map of [offset, offset+length): runs of data, zero or hole. */
  async blockStatus(offset = 0, length = undefined) {
    offset = args.uint(offset, 'offset');
    const size = this.virtualSize;
    if (offset > size) throw invalidArgument(`offset ${offset} is past the end of the image (virtual size ${size})`);
    length = length === undefined ? size - offset : args.uint(length, 'length');
    return this.#native.blockStatus(offset, length);
  }

  /** Frees the image now. Idempotent; operations already running finish first. */
  close() {
    this.#native.close();
  }
}

// `using img = await openImage(...)` where the runtime has explicit resource management.
if (typeof Symbol.dispose === 'symbol') {
  Image.prototype[Symbol.dispose] = Image.prototype.close;
}

const OPEN_OPTIONS = ['format', 'allowExternalFiles', 'openBacking'];

/** Opens a disk image read-only; its format is probed unless given (raw only when named). */
async function openImage(path, options) {
  path = args.path(path, 'path');
  const o = args.options(options, OPEN_OPTIONS, 'openImage');
  const nativeImage = await native.openImage(path, {
    format: args.optionalString(o.format, 'format'),
    allowExternalFiles: args.optionalBoolean(o.allowExternalFiles, 'allowExternalFiles'),
    openBacking: args.optionalBoolean(o.openBacking, 'openBacking'),
  });
  return new Image(construct, nativeImage);
}

/** The format a file would be opened as ("qcow2", "vmdk", ...). */
async function probeFormat(path) {
  return (await run('image.probe', { path: args.path(path, 'path') })).format;
}

module.exports = { Image, openImage, probeFormat };
