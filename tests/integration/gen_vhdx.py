"""Builds VHDX images straight from the [MS-VHDX] specification, for the variants qemu-img cannot
make: dirty logs, differencing disks with sector bitmaps, 4096-byte logical sectors, and compact
fuzz seeds. Independent of the library under test (its own CRC-32C, GUIDs, layout), so the reader
is checked against the spec rather than against itself.

Used by test_vhdx.py; also runnable: `python3 gen_vhdx.py seeds DIR` writes fuzz seeds."""
import os
import struct
import sys
import uuid

KiB = 1 << 10
MiB = 1 << 20

# Block states ([MS-VHDX] 2.5.1).
NOT_PRESENT, UNDEFINED, ZERO, UNMAPPED, FULLY_PRESENT, PARTIALLY_PRESENT = 0, 1, 2, 3, 6, 7
SB_PRESENT = 6

BAT_GUID = uuid.UUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
METADATA_GUID = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")
FILE_PARAMETERS = uuid.UUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
VIRTUAL_DISK_SIZE = uuid.UUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
PAGE83 = uuid.UUID("BECA12AB-B2E6-4523-93EF-C309E000C746")
LOGICAL_SECTOR = uuid.UUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
PHYSICAL_SECTOR = uuid.UUID("CDA348C7-445D-4471-9CC9-E9885251C556")
PARENT_LOCATOR = uuid.UUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
VHDX_PARENT_TYPE = uuid.UUID("B04AEFB7-D19E-4A81-B789-25B8E9445913")


def _crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


def with_checksum(buf, field=4):
    """Stores the CRC-32C of `buf` (its checksum field taken as zero) into that field."""
    buf = bytearray(buf)
    buf[field:field + 4] = b"\0\0\0\0"
    buf[field:field + 4] = struct.pack("<I", crc32c(buf))
    return bytes(buf)


def guid(u):
    return u.bytes_le  # Data1..3 little-endian, Data4 as is: the MS layout


def utf16(s):
    return s.encode("utf-16-le")


def header(seq, file_write, data_write, log_guid=None, log_offset=1 * MiB, log_length=1 * MiB):
    h = bytearray(4 * KiB)
    h[0:4] = b"head"
    struct.pack_into("<Q", h, 8, seq)
    h[16:32] = guid(file_write)
    h[32:48] = guid(data_write)
    h[48:64] = guid(log_guid) if log_guid else bytes(16)
    struct.pack_into("<HHIQ", h, 64, 0, 1, log_length, log_offset)
    return with_checksum(h)


def region_table(entries):
    t = bytearray(64 * KiB)
    t[0:4] = b"regi"
    struct.pack_into("<I", t, 8, len(entries))
    for i, (g, offset, length, required) in enumerate(entries):
        e = 16 + 32 * i
        t[e:e + 16] = guid(g)
        struct.pack_into("<QII", t, e + 16, offset, length, 1 if required else 0)
    return with_checksum(t)


def parent_locator(pairs):
    """The Parent Locator item: header, entries, then the UTF-16LE keys and values."""
    head = bytearray(guid(VHDX_PARENT_TYPE) + struct.pack("<HH", 0, len(pairs)))
    strings = bytearray()
    entries = bytearray()
    base = 20 + 12 * len(pairs)
    for key, value in pairs:
        k, v = utf16(key), utf16(value)
        entries += struct.pack("<IIHH", base + len(strings), base + len(strings) + len(k), len(k), len(v))
        strings += k + v
    return bytes(head + entries + strings)


def log_entry(seq, tail, log_guid, writes, flushed_offset, last_offset):
    """One log entry: header and descriptors, then a data sector per data descriptor.
    writes: ("data", file_offset, 4096 bytes) or ("zero", file_offset, length)."""
    count = len(writes)
    desc_sectors = (count + 2 + 127) // 128
    data = [w for w in writes if w[0] == "data"]
    length = (desc_sectors + len(data)) * 4 * KiB
    e = bytearray(length)
    e[0:4] = b"loge"
    struct.pack_into("<IIQII", e, 8, length, tail, seq, count, 0)
    e[32:48] = guid(log_guid)
    struct.pack_into("<QQ", e, 48, flushed_offset, last_offset)
    sector = desc_sectors
    for i, w in enumerate(writes):
        d = 64 + 32 * i
        if w[0] == "zero":
            e[d:d + 4] = b"zero"
            struct.pack_into("<IQQQ", e, d + 4, 0, w[2], w[1], seq)
        else:
            payload = w[2]
            assert len(payload) == 4 * KiB
            e[d:d + 4] = b"desc"
            e[d + 4:d + 8] = payload[4092:4096]    # trailing bytes
            e[d + 8:d + 16] = payload[0:8]         # leading bytes
            struct.pack_into("<QQ", e, d + 16, w[1], seq)
            s = sector * 4 * KiB
            e[s:s + 4] = b"data"
            struct.pack_into("<I", e, s + 4, seq >> 32)
            e[s + 8:s + 4092] = payload[8:4092]
            struct.pack_into("<I", e, s + 4092, seq & 0xFFFFFFFF)
            sector += 1
    return with_checksum(e)


class Vhdx:
    """An image under construction. Layout like qemu's: log at 1 MiB, BAT at 2 MiB, 1 MiB metadata,
    payload and bitmap blocks appended (1 MiB aligned). `compact` packs BAT and metadata right after
    the header section with no log (small fuzz seeds)."""

    def __init__(self, virtual_size, block_size=1 * MiB, logical_sector_size=512, physical_sector_size=4096,
                 parent=None, fixed=False, compact=False):
        self.virtual_size = virtual_size
        self.block_size = block_size
        self.lss = logical_sector_size
        self.pss = physical_sector_size
        self.parent = parent  # list of (key, value) for the parent locator, or None
        self.fixed = fixed
        self.chunk_ratio = (1 << 23) * logical_sector_size // block_size
        self.blocks = -(-virtual_size // block_size)
        chunks = -(-self.blocks // self.chunk_ratio)
        if parent is not None:
            self.bat_entries = chunks * (self.chunk_ratio + 1)
        else:
            self.bat_entries = self.blocks + (self.blocks - 1) // self.chunk_ratio if self.blocks else 0
        self.bat = [0] * self.bat_entries
        if compact:
            self.log_offset, self.log_length = 1 * MiB, 0
            self.bat_offset = 1 * MiB
            self.bat_length = max(64 * KiB, -(-self.bat_entries * 8 // (64 * KiB)) * 64 * KiB)
            self.metadata_offset = self.bat_offset + self.bat_length
            self.metadata_length = 128 * KiB
            self.data_start = -(-(self.metadata_offset + self.metadata_length) // MiB) * MiB
        else:
            self.log_offset, self.log_length = 1 * MiB, 1 * MiB
            self.bat_offset = 2 * MiB
            self.bat_length = max(1, -(-self.bat_entries * 8 // MiB)) * MiB
            self.metadata_offset = self.bat_offset + self.bat_length
            self.metadata_length = 1 * MiB
            self.data_start = self.metadata_offset + self.metadata_length
        self.file = bytearray(self.data_start)
        self.bitmaps = {}  # chunk -> file offset of its sector bitmap block
        self.file_write = uuid.uuid4()
        self.data_write = uuid.uuid4()
        self.disk_id = uuid.uuid4()
        self.log_guid = None

    def _append(self, length):
        at = -(-len(self.file) // MiB) * MiB
        self.file.extend(bytes(at + length - len(self.file)))
        return at

    def payload_index(self, block):
        return block + block // self.chunk_ratio

    def bitmap_index(self, chunk):
        return chunk * (self.chunk_ratio + 1) + self.chunk_ratio

    def block_bytes(self, block):
        return min(self.block_size, self.virtual_size - block * self.block_size)

    def set_state(self, block, state):
        self.bat[self.payload_index(block)] = state

    def set_data(self, block, data, sectors=None):
        """Stores a payload block (data: up to block_size bytes, the rest zero). With `sectors`
        (a set of sector numbers), the block is PARTIALLY_PRESENT and only those sectors are
        marked present in its sector bitmap. Returns the block's file offset."""
        at = self._append(self.block_size)
        self.file[at:at + len(data)] = data
        state = FULLY_PRESENT if sectors is None else PARTIALLY_PRESENT
        self.bat[self.payload_index(block)] = at | state
        if self.parent is not None:
            # libvhdi consults the bitmap even for fully present blocks; the spec ignores it then.
            per_block = self.block_size // self.lss
            marked = range(per_block) if sectors is None else sectors
            self._mark(block, marked)
        return at

    def _mark(self, block, sectors):
        chunk = block // self.chunk_ratio
        if chunk not in self.bitmaps:
            at = self._append(1 * MiB)
            self.bitmaps[chunk] = at
            self.bat[self.bitmap_index(chunk)] = at | SB_PRESENT
        base = self.bitmaps[chunk] * 8 + (block % self.chunk_ratio) * (self.block_size // self.lss)
        for s in sectors:
            bit = base + s
            self.file[bit // 8] |= 1 << (bit % 8)

    def metadata(self):
        items = [
            (FILE_PARAMETERS, struct.pack("<II", self.block_size, (1 if self.fixed else 0) | (2 if self.parent else 0)), 4),
            (VIRTUAL_DISK_SIZE, struct.pack("<Q", self.virtual_size), 6),
            (PAGE83, guid(self.disk_id), 6),
            (LOGICAL_SECTOR, struct.pack("<I", self.lss), 6),
            (PHYSICAL_SECTOR, struct.pack("<I", self.pss), 6),
        ]
        if self.parent is not None:
            items.append((PARENT_LOCATOR, parent_locator(self.parent), 4))
        m = bytearray(self.metadata_length)
        m[0:8] = b"metadata"
        struct.pack_into("<H", m, 10, len(items))
        offset = 64 * KiB
        for i, (g, data, flags) in enumerate(items):
            e = 32 + 32 * i
            m[e:e + 16] = guid(g)
            struct.pack_into("<III", m, e + 16, offset, len(data), flags)
            m[offset:offset + len(data)] = data
            offset += len(data)
        return bytes(m)

    def bat_bytes(self):
        return b"".join(struct.pack("<Q", e) for e in self.bat)

    def build(self, log_entries=()):
        """The file: structures written into it. log_entries: (log offset, bytes) placed in the log."""
        f = self.file
        f[0:8] = b"vhdxfile"
        creator = utf16("gen_vhdx.py")
        f[8:8 + len(creator)] = creator
        h = header(7, self.file_write, self.data_write, self.log_guid, self.log_offset, self.log_length)
        f[64 * KiB:68 * KiB] = h
        f[128 * KiB:132 * KiB] = header(6, self.file_write, self.data_write, self.log_guid, self.log_offset,
                                        self.log_length)
        rt = region_table([(BAT_GUID, self.bat_offset, self.bat_length, True),
                           (METADATA_GUID, self.metadata_offset, self.metadata_length, True)])
        f[192 * KiB:256 * KiB] = rt
        f[256 * KiB:320 * KiB] = rt
        bat = self.bat_bytes()
        f[self.bat_offset:self.bat_offset + len(bat)] = bat
        md = self.metadata()
        f[self.metadata_offset:self.metadata_offset + len(md)] = md
        for offset, entry in log_entries:
            assert offset + len(entry) <= self.log_length
            f[self.log_offset + offset:self.log_offset + offset + len(entry)] = entry
        return bytes(f)


def read_header_guids(path):
    """DataWriteGuid of the current header of an existing VHDX (the parent's linkage)."""
    with open(path, "rb") as fh:
        data = fh.read(192 * KiB)
    best = None
    for off in (64 * KiB, 128 * KiB):
        h = data[off:off + 4 * KiB]
        if h[0:4] != b"head" or struct.unpack_from("<I", h, 4)[0] != crc32c(h[:4] + b"\0\0\0\0" + h[8:]):
            continue
        seq = struct.unpack_from("<Q", h, 8)[0]
        if best is None or seq > best[0]:
            best = (seq, uuid.UUID(bytes_le=bytes(h[32:48])))
    return best[1]


def pattern(size, seed):
    """Deterministic non-zero bytes."""
    import random
    return random.Random(seed).randbytes(size)


def dirty_log_image(path):
    """A dynamic disk whose log holds pending changes; returns the content the disk must show
    after replay. The log: an old valid sequence (seq 5) that a newer one supersedes; the active
    sequence (seq 10, 11) that allocates block 2 through the BAT, rewrites a sector of block 0,
    zeros part of block 1, changes the virtual disk id, and writes into block 2; then an entry with
    a bad checksum (seq 12) and one with a foreign log GUID (seq 50), both to be ignored."""
    size = 4 * MiB - 3 * 512
    v = Vhdx(size, block_size=1 * MiB)
    v.log_guid = uuid.uuid4()
    content = bytearray(size)
    b0, b1 = pattern(1 * MiB, 1), pattern(1 * MiB, 2)
    off0 = v.set_data(0, b0)
    off1 = v.set_data(1, b1)
    content[0:MiB] = b0
    content[MiB:2 * MiB] = b1
    # Block 2's data was written to the file before its BAT update was logged (as Hyper-V does).
    b2 = pattern(1 * MiB, 3)
    off2 = v._append(v.block_size)
    v.file[off2:off2 + MiB] = b2
    content[2 * MiB:3 * MiB] = b2
    file_size = len(v.file)

    bat_sector_old = bytearray(v.bat_bytes()[:4 * KiB].ljust(4 * KiB, b"\0"))
    bat_sector = bytearray(bat_sector_old)
    struct.pack_into("<Q", bat_sector, 8 * v.payload_index(2), off2 | FULLY_PRESENT)
    new_sector = pattern(4 * KiB, 4)
    content[12 * KiB:16 * KiB] = new_sector
    content[MiB + 20 * KiB:MiB + 28 * KiB] = bytes(8 * KiB)
    new_id = uuid.UUID("11111111-2222-4333-8444-555555555555")
    md = bytearray(v.metadata())
    # The Page 83 item is the third, at 64 KiB + 8 + 8.
    page83_at = 64 * KiB + 16
    md[page83_at:page83_at + 16] = guid(new_id)
    md_sector = bytes(md[64 * KiB:68 * KiB])
    late = pattern(4 * KiB, 5)
    content[2 * MiB + 100 * KiB:2 * MiB + 104 * KiB] = late

    e10 = log_entry(10, 0, v.log_guid, [("data", v.bat_offset, bytes(bat_sector)),
                                         ("data", off0 + 12 * KiB, new_sector),
                                         ("zero", off1 + 20 * KiB, 8 * KiB)], file_size, file_size)
    e11 = log_entry(11, 0, v.log_guid, [("data", v.metadata_offset + 64 * KiB, md_sector),
                                         ("data", off2 + 100 * KiB, late)], file_size, file_size)
    bad = bytearray(log_entry(12, 0, v.log_guid, [("zero", off0, 64 * KiB)], file_size, file_size))
    bad[100] ^= 0xFF  # checksum no longer matches
    foreign = log_entry(50, 0, uuid.uuid4(), [("zero", off0, 1 * MiB)], file_size, file_size)
    old = log_entry(5, 512 * KiB, v.log_guid, [("zero", off1, 1 * MiB)], file_size, file_size)
    entries = [(0, e10), (len(e10), e11), (len(e10) + len(e11), bytes(bad)), (256 * KiB, foreign), (512 * KiB, old)]
    data = v.build(entries)
    with open(path, "wb") as fh:
        fh.write(data)
    return bytes(content), new_id


def differencing_image(path, parent_path, parent_content, relative_path=".\\parent.vhdx", linkage=None,
                       block_size=2 * MiB, lss=512):
    """A differencing child of `parent_path`: a fully present block, a partially present block with
    a ragged sector bitmap, a ZERO block and an UNMAPPED block hiding parent data, the rest showing
    the parent. Returns the content the chain must show."""
    size = len(parent_content)
    if linkage is None:
        linkage = read_header_guids(parent_path)
    pairs = [("parent_linkage", "{%s}" % linkage),
             ("relative_path", relative_path),
             ("volume_path", "\\\\?\\Volume{26a21bda-a627-11d7-9931-806e6f6e6963}\\vms\\parent.vhdx"),
             ("absolute_win32_path", "C:\\vms\\parent.vhdx")]
    v = Vhdx(size, block_size=block_size, logical_sector_size=lss, parent=pairs)
    content = bytearray(parent_content)
    full = pattern(block_size, 11)
    v.set_data(0, full)
    content[0:block_size] = full
    per_block = block_size // lss
    sectors = set()
    s = 3
    while s < per_block:  # runs of varying length with gaps, not aligned to anything
        run = (s * 7) % 29 + 1
        sectors.update(range(s, min(per_block, s + run)))
        s += run + (s % 13) + 1
    partial = pattern(block_size, 12)
    v.set_data(1, partial, sectors)
    for sec in sectors:
        a = block_size + sec * lss
        content[a:a + lss] = partial[sec * lss:(sec + 1) * lss]
    if v.blocks > 2:
        v.set_state(2, ZERO)
        content[2 * block_size:3 * block_size] = bytes(min(block_size, size - 2 * block_size))
    if v.blocks > 3:
        v.set_state(3, UNMAPPED)
        content[3 * block_size:4 * block_size] = bytes(min(block_size, size - 3 * block_size))
    with open(path, "wb") as fh:
        fh.write(v.build())
    return bytes(content[:size])


def four_k_image(path):
    """A dynamic disk with 4096-byte logical sectors (qemu-img cannot read or make these)."""
    size = 5 * MiB + 3 * 4096
    v = Vhdx(size, block_size=1 * MiB, logical_sector_size=4096, physical_sector_size=4096)
    content = bytearray(size)
    for block, seed in ((0, 21), (3, 22), (5, 23)):
        data = pattern(v.block_bytes(block), seed)
        v.set_data(block, data)
        content[block * MiB:block * MiB + len(data)] = data
    v.set_state(1, ZERO)
    with open(path, "wb") as fh:
        fh.write(v.build())
    return bytes(content)


def write_seeds(folder):
    """Small fuzz seeds: compact layout (no log, BAT and metadata inside the first 2 MiB)."""
    os.makedirs(folder, exist_ok=True)
    v = Vhdx(96 * KiB, block_size=1 * MiB, compact=True)
    v.set_data(0, pattern(96 * KiB, 31))
    data = v.build()
    with open(os.path.join(folder, "gen-compact"), "wb") as fh:
        fh.write(data[:v.data_start + 96 * KiB])
    # A differencing one (parent not followed by the fuzzer) with a partial block.
    v = Vhdx(64 * KiB, block_size=1 * MiB, compact=True,
             parent=[("parent_linkage", "{%s}" % uuid.UUID(int=1)), ("relative_path", "parent.vhdx")])
    v.set_data(0, pattern(64 * KiB, 32), sectors={1, 2, 3, 64, 65, 100})
    with open(os.path.join(folder, "gen-diff"), "wb") as fh:
        fh.write(v.build())
    # One with a log to replay; its log lives where the data would be.
    v = Vhdx(64 * KiB, block_size=1 * MiB, compact=True)
    v.log_offset, v.log_length = 2 * MiB, 1 * MiB
    v.data_start = 3 * MiB
    v.file.extend(bytes(3 * MiB - len(v.file)))
    at = v.set_data(0, pattern(64 * KiB, 33))
    v.log_guid = uuid.uuid4()
    size = at + 64 * KiB
    entry = log_entry(1, 0, v.log_guid, [("data", at, pattern(4 * KiB, 34)), ("zero", at + 8 * KiB, 8 * KiB)], size, size)
    with open(os.path.join(folder, "gen-log"), "wb") as fh:
        fh.write(v.build([(0, entry)])[:size])


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "seeds":
        write_seeds(sys.argv[2])
    else:
        sys.exit("usage: gen_vhdx.py seeds FOLDER")
