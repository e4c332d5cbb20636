"""Builds VMDK variants that qemu-img cannot create, written from the format descriptions (VMware's
Virtual Disk Format spec, libyal's notes, and the checks qemu's reader applies): text descriptors of
every shape, ESX sparse (COWD) and seSparse extents, and streamOptimized streams with damaged or
missing metadata. Each builder takes the disk's bytes and returns nothing; tests compare what readers
make of the files with those bytes."""
import struct
import zlib

SECTOR = 512


def _round_up(v, a):
    return (v + a - 1) // a * a


def _pad(b, a=SECTOR):
    return b + bytes(_round_up(len(b), a) - len(b))


def _grains(data, grain):
    """Yields (index, bytes) of each grain of `data`, the last one possibly short."""
    for i in range(0, len(data), grain):
        yield i // grain, data[i:i + grain]


def descriptor(create_type, extents, cid=0x12345678, parent_cid=0xFFFFFFFF, parent_hint=None, crlf=False, comments=True):
    """A descriptor file's text. `extents` are full extent lines ("RW 2048 FLAT \"a b.bin\" 0")."""
    lines = []
    if comments:
        lines.append("# Disk DescriptorFile")
    lines += ["version=1", f"CID={cid:08x}", f"parentCID={parent_cid:08x}", f'createType="{create_type}"']
    if parent_hint is not None:
        lines.append(f'parentFileNameHint="{parent_hint}"')
    lines.append("")
    if comments:
        lines.append("# Extent description")
    lines += extents
    lines += ["", "# The Disk Data Base", "#DDB", "", 'ddb.virtualHWVersion = "4"', 'ddb.adapterType = "lsilogic"',
              'ddb.geometry.cylinders = "10"', 'ddb.geometry.heads = "255"', 'ddb.geometry.sectors = "63"', ""]
    return ("\r\n" if crlf else "\n").join(lines).encode()


# ---- ESX sparse extent (COWD) ---------------------------------------------------------------------
COWD_GTES = 4096


def write_cowd(path, data, grain_sectors=8):
    """A COWD file holding `data` (a multiple of 512 bytes); all-zero grains stay unallocated."""
    assert len(data) % SECTOR == 0
    capacity = len(data) // SECTOR
    grain = grain_sectors * SECTOR
    grains = -(-capacity // grain_sectors)
    tables = -(-grains // COWD_GTES)
    gd_sector = 4  # the 2 KiB header takes sectors 0..3
    gd_sectors = -(-tables * 4 // SECTOR)
    table_sectors = COWD_GTES * 4 // SECTOR
    # Tables for groups holding data, then grains.
    groups = sorted({i // COWD_GTES for i, g in _grains(data, grain) if any(g)})
    table_at = {}
    next_sector = gd_sector + gd_sectors
    for t in groups:
        table_at[t] = next_sector
        next_sector += table_sectors
    entries = [0] * (tables * COWD_GTES)
    payload = bytearray()
    for i, g in _grains(data, grain):
        if not any(g):
            continue
        entries[i] = next_sector + len(payload) // SECTOR
        payload += _pad(g, grain)
    header = bytearray(2048)
    header[0:4] = b"COWD"
    struct.pack_into("<IIIIIII", header, 4, 1, 3, capacity, grain_sectors, gd_sector, tables,
                     next_sector + len(payload) // SECTOR)
    struct.pack_into("<III", header, 32, 1, 255, 63)  # geometry of a root extent
    header[1064:1064 + 8] = b"gen_vmdk"
    with open(path, "wb") as f:
        f.write(header)
        f.write(_pad(b"".join(struct.pack("<I", table_at.get(t, 0)) for t in range(tables))))
        for t in groups:
            f.write(b"".join(struct.pack("<I", e) for e in entries[t * COWD_GTES:(t + 1) * COWD_GTES]))
        f.write(payload)


# ---- seSparse --------------------------------------------------------------------------------------
SE_GTES = 4096
SE_GRAIN = 8 * SECTOR
SE_TABLE_SECTORS = 64


def se_allocated(index):
    """A seSparse grain table entry for grain slot `index` (type 3, the number split 12 / 48 bits)."""
    return (0x3 << 60) | ((index & 0xFFF) << 48) | (index >> 12)


def write_sesparse(path, data, zero_grains=(), unmapped_grains=(), slot_base=0, table_shift=1):
    """A seSparse file for `data` (a multiple of 4 KiB not required; capacity in sectors).

    Grains whose index is in zero_grains / unmapped_grains get entry types 2 / 1 (read as zeros);
    other all-zero grains are unallocated; data grains take slots from `slot_base` upwards in
    reverse order (so slot numbers and grain numbers differ); grain tables are stored at table
    number `table_shift` and up (so directory entries are not the identity)."""
    assert len(data) % SECTOR == 0
    capacity = len(data) // SECTOR
    grains = -(-len(data) // SE_GRAIN)
    tables = -(-grains // SE_GTES)
    entries = [0] * (tables * SE_GTES)
    data_grains = [i for i, g in _grains(data, SE_GRAIN) if any(g) and i not in zero_grains and i not in unmapped_grains]
    slots = {}
    for n, i in enumerate(reversed(data_grains)):
        slots[i] = slot_base + n
    for i in range(grains):
        if i in zero_grains:
            entries[i] = 0x2 << 60
        elif i in unmapped_grains:
            entries[i] = 0x1 << 60
        elif i in slots:
            entries[i] = se_allocated(slots[i])
    used_tables = sorted({i // SE_GTES for i in range(grains) if entries[i]})
    table_number = {t: table_shift + n for n, t in enumerate(used_tables)}
    table_count = table_shift + len(used_tables)

    gd_offset = 16
    gd_sectors = max(1, -(-tables * 8 // SECTOR))
    tables_offset = _round_up(gd_offset + gd_sectors, 8)
    tables_size = table_count * SE_TABLE_SECTORS
    grains_offset = _round_up(tables_offset + tables_size, 8)
    slot_count = (max(slots.values()) + 1) if slots else 1
    grains_size = slot_count * (SE_GRAIN // SECTOR)

    const = struct.pack("<26Q", 0xCAFEBABE, 0x0000000200000001, capacity, 8, SE_TABLE_SECTORS, 0, 0, 0, 0, 0,
                        1, 1,  # volatile header
                        2, 1,  # journal header
                        3, 4,  # journal
                        gd_offset, gd_sectors, tables_offset, tables_size,
                        0, 0, 0, 0,  # free bitmap, back map
                        grains_offset, grains_size)
    const += bytes(SECTOR - len(const))
    volatile = struct.pack("<4Q", 0xCAFECAFE, table_count, 1, 0)
    volatile += bytes(SECTOR - len(volatile))
    gd = bytearray(gd_sectors * SECTOR)
    for t, n in table_number.items():
        struct.pack_into("<Q", gd, t * 8, 0x1000000000000000 | n)
    with open(path, "wb") as f:
        f.truncate((grains_offset + grains_size) * SECTOR)
        f.write(const)
        f.write(volatile)
        f.seek(gd_offset * SECTOR)
        f.write(gd)
        for t, n in table_number.items():
            f.seek((tables_offset + n * SE_TABLE_SECTORS) * SECTOR)
            f.write(b"".join(struct.pack("<Q", e) for e in entries[t * SE_GTES:(t + 1) * SE_GTES]))
        for i, slot in slots.items():
            f.seek((grains_offset + slot * (SE_GRAIN // SECTOR)) * SECTOR)
            f.write(data[i * SE_GRAIN:(i + 1) * SE_GRAIN])


# ---- streamOptimized -------------------------------------------------------------------------------
GD_AT_END = 0xFFFFFFFFFFFFFFFF
MARKER_EOS, MARKER_GT, MARKER_GD, MARKER_FOOTER = 0, 1, 2, 3


def sparse_header(capacity, grain_sectors, gd_offset, descriptor_sectors, overhead, version=3,
                  flags=0x30001, compress=1, rgd_offset=0, gtes=512):
    h = b"KDMV" + struct.pack("<IIQQQQIQQQB4sH", version, flags, capacity, grain_sectors, 1, descriptor_sectors,
                              gtes, rgd_offset, gd_offset, overhead, 0, b"\n \r\n", compress)
    return h + bytes(SECTOR - len(h))


def _marker(value, mtype):
    return struct.pack("<QII", value, 0, mtype) + bytes(SECTOR - 16)


def write_stream(path, data, variant="normal", grain_sectors=128, name="disk.vmdk"):
    """A streamOptimized stream of `data` (a multiple of 512 bytes; the last grain may be short).

    variant "normal": header says GD_AT_END, footer names the directory.
    variant "stale-header": the header names an older, empty directory; the footer the real one.
    variant "no-gd": grain markers and the end-of-stream marker only (a writer that died early).
    """
    assert len(data) % SECTOR == 0
    capacity = len(data) // SECTOR
    grain = grain_sectors * SECTOR
    grains = -(-capacity // grain_sectors)
    tables = -(-grains // 512)
    gd_sectors = max(1, -(-tables * 4 // SECTOR))
    desc = descriptor("streamOptimized", [f'RW {capacity} SPARSE "{name}"'])
    desc_sectors = -(-len(desc) // SECTOR)
    overhead = _round_up(1 + desc_sectors, grain_sectors)
    out = bytearray()
    out += sparse_header(capacity, grain_sectors, GD_AT_END, desc_sectors, overhead)
    out += _pad(desc)
    stale_gd = None
    if variant == "stale-header":
        # An all-zero directory right after the descriptor, which the header points at.
        stale_gd = len(out) // SECTOR
        out += bytes(gd_sectors * SECTOR)
        overhead = _round_up(len(out) // SECTOR, grain_sectors)
        out[0:SECTOR] = sparse_header(capacity, grain_sectors, stale_gd, desc_sectors, overhead)
    out += bytes(overhead * SECTOR - len(out))
    entries = [0] * (tables * 512)
    for i, g in _grains(data, grain):
        if not any(g):
            continue
        entries[i] = len(out) // SECTOR
        z = zlib.compress(g, 6)
        out += _pad(struct.pack("<QI", i * grain_sectors, len(z)) + z)
    if variant == "no-gd":
        out += _marker(0, MARKER_EOS)
        with open(path, "wb") as f:
            f.write(out)
        return
    gd = [0] * tables
    for t in range(tables):
        chunk = entries[t * 512:(t + 1) * 512]
        if not any(chunk):
            continue
        out += _marker(4, MARKER_GT)
        gd[t] = len(out) // SECTOR
        out += b"".join(struct.pack("<I", e) for e in chunk)
    out += _marker(gd_sectors, MARKER_GD)
    gd_at = len(out) // SECTOR
    out += _pad(b"".join(struct.pack("<I", e) for e in gd))
    out += _marker(1, MARKER_FOOTER)
    out += sparse_header(capacity, grain_sectors, gd_at, desc_sectors, overhead)
    out += _marker(0, MARKER_EOS)
    with open(path, "wb") as f:
        f.write(out)
