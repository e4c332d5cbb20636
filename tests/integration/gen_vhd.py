"""Builds VHD files from scratch, independently of libhypersdk, following Microsoft's VHD
specification: fixed and dynamic disks, and differencing disks (which qemu-img cannot create) with
parent locators and per-sector bitmaps. Each builder also returns the bytes a reader must see, so
tests can compare hsdk's output with a result computed here.

Used by test_vhd.py; also runnable: gen_vhd.py OUTDIR writes parent.vhd, child.vhd, expected.raw."""
import pathlib
import random
import struct
import sys
import uuid

SECTOR = 512
UNALLOCATED = 0xFFFFFFFF


def checksum(buf):
    return (~sum(buf)) & 0xFFFFFFFF


def chs_geometry(total_sectors):
    """The specification's CHS algorithm (appendix)."""
    total_sectors = min(total_sectors, 65535 * 16 * 255)
    if total_sectors >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cth = total_sectors // spt
    else:
        spt = 17
        cth = total_sectors // spt
        heads = max((cth + 1023) // 1024, 4)
        if cth >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cth = total_sectors // spt
        if cth >= heads * 1024:
            spt, heads = 63, 16
            cth = total_sectors // spt
    return cth // heads, heads, spt


def footer(size, disk_type, data_offset, unique_id, creator=b"win ", timestamp=700000000, geometry=None):
    c, h, s = geometry or chs_geometry(size // SECTOR)
    f = bytearray(512)
    struct.pack_into(">8sIIQI4sI4sQQHBBI", f, 0, b"conectix", 2, 0x00010000, data_offset, timestamp,
                     creator, 0x000A0000, b"Wi2k", size, size, c, h, s, disk_type)
    f[68:84] = unique_id
    struct.pack_into(">I", f, 64, checksum(f))
    return bytes(f)


def dynamic_header(table_offset, entries, block_size, parent_id=bytes(16), parent_timestamp=0, parent_name="",
                   locators=()):
    """locators: (platform code, data space in sectors, data length, data offset) tuples."""
    hd = bytearray(1024)
    struct.pack_into(">8sQQIII", hd, 0, b"cxsparse", 0xFFFFFFFFFFFFFFFF, table_offset, 0x00010000, entries, block_size)
    hd[40:56] = parent_id
    struct.pack_into(">I", hd, 56, parent_timestamp)
    name = parent_name.encode("utf-16-be")[:512]
    hd[64:64 + len(name)] = name
    for i, (code, space, length, offset) in enumerate(locators):
        struct.pack_into(">4sIIIQ", hd, 576 + 24 * i, code, space, length, 0, offset)
    struct.pack_into(">I", hd, 36, checksum(hd))
    return bytes(hd)


def write_sparse(path, size, block_size, blocks, disk_type=3, unique_id=None, creator=b"win ", parent=None,
                 locators=()):
    """Writes a dynamic (3) or differencing (4) VHD. blocks: {index: (bitmap bytes, data bytes)}.
    parent: (unique id, timestamp, name); locators: (platform code, encoded data) pairs."""
    unique_id = unique_id or uuid.uuid4().bytes
    entries = -(-size // block_size)
    bmp = -(-(block_size // SECTOR // 8) // SECTOR) * SECTOR
    table_offset = 512 + 1024
    pos = table_offset + -(-entries * 4 // SECTOR) * SECTOR
    loc_entries, loc_data = [], []
    for code, data in locators:
        space = -(-len(data) // SECTOR)
        loc_entries.append((code, space, len(data), pos))
        loc_data.append((pos, data))
        pos += space * SECTOR
    bat = [UNALLOCATED] * entries
    block_data = []
    for index in sorted(blocks):
        bitmap, data = blocks[index]
        assert len(bitmap) <= bmp and len(data) == block_size
        bat[index] = pos // SECTOR
        block_data.append((pos, bitmap.ljust(bmp, b"\0") + data))
        pos += bmp + block_size
    pid, pts, pname = parent or (bytes(16), 0, "")
    foot = footer(size, disk_type, 512, unique_id, creator)
    with open(path, "wb") as f:
        f.write(foot)
        f.write(dynamic_header(table_offset, entries, block_size, pid, pts, pname, loc_entries))
        f.write(b"".join(struct.pack(">I", e) for e in bat).ljust(-(-entries * 4 // SECTOR) * SECTOR, b"\xff"))
        for at, data in loc_data + block_data:
            f.seek(at)
            f.write(data)
        f.seek(pos)
        f.write(foot)
    return unique_id


def child_sectors(rng, sectors_per_block, pattern):
    """Sectors of a block the child holds. "runs": runs of random length anywhere. "tail": the
    block's last sectors from a random one on. libvhdi 20210425 reads a set run to the end of the
    read request (showing the child's bytes where the bitmap is clear), so comparisons with
    vhdimount use "tail", which it reads right and which still tells the bit order apart."""
    if pattern == "tail":
        return range(rng.choice([0, rng.randrange(1, sectors_per_block)]), sectors_per_block)
    chosen = []
    s = 0
    while s < sectors_per_block:
        run = rng.randrange(1, 40)
        if rng.random() < 0.5:
            chosen.extend(range(s, min(s + run, sectors_per_block)))
        s += run
    return chosen


def make_parent_and_child(folder, size=5 * 1024 * 1024 + 7 * SECTOR, block_size=512 * 1024, seed=11,
                          locators=("W2ru", "W2ku"), parent_file="parent.vhd", child_file="child.vhd",
                          w2ku_path=None, w2ru_path=None, pattern="runs"):
    """A dynamic parent with some blocks allocated and a differencing child whose bitmaps select
    scattered sectors. The sectors of the child's blocks whose bitmap bit is clear hold 0xAA
    garbage: a reader must show the parent there. Returns (parent path, child path, expected
    bytes of the child as a chain)."""
    rng = random.Random(seed)
    folder = pathlib.Path(folder)
    entries = -(-size // block_size)
    parent_content = bytearray(size)
    parent_blocks = {}
    for index in range(entries):
        if rng.random() < 0.3:
            continue  # unallocated in the parent: zeros
        data = bytearray(rng.randbytes(block_size))
        parent_blocks[index] = (b"\xff" * (block_size // SECTOR // 8), bytes(data))
        start = index * block_size
        parent_content[start:start + block_size] = data[:max(0, min(block_size, size - start))]
    parent_path = folder / parent_file
    parent_id = write_sparse(parent_path, size, block_size, parent_blocks)

    expected = bytearray(parent_content)
    child_blocks = {}
    sectors_per_block = block_size // SECTOR
    for index in range(entries):
        if rng.random() < 0.35:
            continue  # not in the child: the parent shows through
        bits = bytearray(sectors_per_block // 8)
        data = bytearray(b"\xaa" * block_size)
        for k in child_sectors(rng, sectors_per_block, pattern):
            disk_sector = index * sectors_per_block + k
            if disk_sector * SECTOR >= size:
                continue
            bits[k // 8] |= 0x80 >> (k % 8)
            sector = rng.randbytes(SECTOR) if rng.random() < 0.8 else bytes(SECTOR)
            data[k * SECTOR:(k + 1) * SECTOR] = sector
            expected[disk_sector * SECTOR:(disk_sector + 1) * SECTOR] = sector
        child_blocks[index] = (bytes(bits), bytes(data))
    encoded = []
    for code in locators:
        if code == "W2ru":
            encoded.append((b"W2ru", (w2ru_path or ".\\" + parent_file).encode("utf-16-le")))
        elif code == "W2ku":
            encoded.append((b"W2ku", (w2ku_path or "C:\\VMs\\" + parent_file).encode("utf-16-le")))
        elif code == "MacX":
            encoded.append((b"MacX", ("file://" + str((folder / parent_file).resolve())).encode()))
    child_path = folder / child_file
    write_sparse(child_path, size, block_size, child_blocks, disk_type=4,
                 parent=(parent_id, 700000000, parent_file), locators=encoded)
    return parent_path, child_path, bytes(expected)


if __name__ == "__main__":
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    out.mkdir(parents=True, exist_ok=True)
    _, _, exp = make_parent_and_child(out)
    (out / "expected.raw").write_bytes(exp)
