"""Small VHD and VDI seeds the fuzzers can mutate whole (qemu-img's seeds exceed -max_len: its
blocks are 1-2 MiB): dynamic and differencing VHDs with 4 KiB blocks, parent locators and sector
bitmaps (which qemu-img cannot make), a fixed VHD, and VDIs with 4 KiB blocks holding allocated,
unallocated and discarded entries.

usage: seeds_vhd_vdi.py CORPUS_DIR  (writes CORPUS_DIR/vhd/small* and CORPUS_DIR/vdi/small*)"""
import pathlib
import random
import struct
import sys
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "integration"))
import gen_vhd  # noqa: E402

corpus = pathlib.Path(sys.argv[1])
rng = random.Random(5)
(corpus / "vhd").mkdir(parents=True, exist_ok=True)
(corpus / "vdi").mkdir(parents=True, exist_ok=True)

# VHD: a dynamic parent and a differencing child, 64 KiB in 4 KiB blocks.
size, bs = 64 * 1024 + 1024, 4096
blocks = {i: (b"\xff", rng.randbytes(bs)) for i in (0, 3, 7, 16)}
parent_id = gen_vhd.write_sparse(corpus / "vhd" / "small-dynamic", size, bs, blocks)
child = {i: (bytes([rng.randrange(256)]), rng.randbytes(bs)) for i in (1, 3, 16)}
gen_vhd.write_sparse(corpus / "vhd" / "small-differencing", size, bs, child, disk_type=4,
                     parent=(parent_id, 1000, "small-dynamic"),
                     locators=[(b"W2ru", ".\\small-dynamic".encode("utf-16-le")),
                               (b"W2ku", "C:\\x\\small-dynamic".encode("utf-16-le")),
                               (b"MacX", b"file:///x/small-dynamic")])
with open(corpus / "vhd" / "small-fixed", "wb") as f:
    f.write(rng.randbytes(size))
    f.write(gen_vhd.footer(size, 2, 0xFFFFFFFFFFFFFFFF, uuid.uuid4().bytes))

# VDI: header, block map at 512, data after it; 4 KiB blocks.
blocks_in_image, bsz = 20, 4096
entries = [0xFFFFFFFF] * blocks_in_image
entries[0], entries[2], entries[5], entries[6], entries[19] = 0, 1, 0xFFFFFFFE, 2, 3
header = bytearray(512)
header[:40] = b"<<< Oracle VM VirtualBox Disk Image >>>\n"
struct.pack_into("<III", header, 0x40, 0xBEDA107F, 0x00010001, 0x180)
struct.pack_into("<I", header, 0x4C, 1)
struct.pack_into("<II", header, 0x154, 512, 1024)
struct.pack_into("<I", header, 0x168, 512)
struct.pack_into("<QIIII", header, 0x170, blocks_in_image * bsz - 700, bsz, 0, blocks_in_image, 4)
header[0x188:0x198] = uuid.uuid4().bytes
with open(corpus / "vdi" / "small-dynamic", "wb") as f:
    f.write(header)
    f.write(b"".join(struct.pack("<I", e) for e in entries).ljust(512, b"\0"))
    f.write(rng.randbytes(4 * bsz))
