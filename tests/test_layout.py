"""Struct layout: offsets, sizes, alignment, attributes, unknown types and DMA granule sharing."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from dmalint.consteval import Target
from dmalint.contracts.errors import RuleFileError
from dmalint.contracts.loader import load_macro_tables
from dmalint.layout import (
    KernelType, LayoutEngine, Unknown, granule_overlap, kernel_types_from_data, load_kernel_types,
)
from dmalint.source import make_source, read_source


def engine(code: str, **kwargs) -> LayoutEngine:
    return LayoutEngine([make_source(code.encode(), "drv.c", load_macro_tables())], **kwargs)


def offsets(layout) -> dict[str, tuple[int, int]]:
    return {f.name: (f.offset, f.size) for f in layout.fields}


def test_scalars_and_padding():
    s = engine("struct regs { u8 ctrl; u32 status; u16 len; u64 addr; char tag; };").struct("regs")
    assert offsets(s) == {"ctrl": (0, 1), "status": (4, 4), "len": (8, 2), "addr": (16, 8),
                          "tag": (24, 1)}
    assert (s.size, s.align, s.unknown, s.approximate) == (32, 8, None, False)


def test_kernel_scalar_types():
    s = engine("""struct k { bool on; __le16 a; __be32 b; dma_addr_t dma; size_t n; ssize_t m;
                  phys_addr_t p; resource_size_t r; unsigned long long ull; long l; short sh;
                  signed char sc; void *ptr; void (*cb)(int); enum mode md; };""").struct("k")
    assert offsets(s) == {"on": (0, 1), "a": (2, 2), "b": (4, 4), "dma": (8, 8), "n": (16, 8),
                          "m": (24, 8), "p": (32, 8), "r": (40, 8), "ull": (48, 8),
                          "l": (56, 8), "sh": (64, 2), "sc": (66, 1), "ptr": (72, 8),
                          "cb": (80, 8), "md": (88, 4)}
    assert s.size == 96


def test_packed_struct_and_packed_attribute_spellings():
    e = engine("""
struct hdr { u8 type; __le32 len; u16 crc; } __packed;
struct __packed hdr2 { u8 type; __le32 len; };
struct hdr3 { u8 type; __le32 len; } __attribute__((packed));
struct hdr4 { u8 type; __le32 len __packed; u16 crc; };
struct hdr5 { u8 type; __le32 len; } __packed __aligned(4);
""")
    assert offsets(e.struct("hdr")) == {"type": (0, 1), "len": (1, 4), "crc": (5, 2)}
    assert (e.struct("hdr").size, e.struct("hdr").align) == (7, 1)
    assert (e.struct("hdr2").size, e.struct("hdr3").size) == (5, 5)
    assert offsets(e.struct("hdr4")) == {"type": (0, 1), "len": (1, 4), "crc": (6, 2)}
    assert (e.struct("hdr5").size, e.struct("hdr5").align) == (8, 4)


def test_aligned_members_and_structs():
    e = engine("""
#define DESC_ALIGN 16
struct a { u8 x; u32 y __aligned(8); u8 z; };
struct b { u8 x; __attribute__((aligned(DESC_ALIGN))) u8 y; };
struct c { u8 x; } __aligned(32);
struct d { u8 x; u8 y[6] __attribute__((__aligned__(4))); };
""")
    assert offsets(e.struct("a")) == {"x": (0, 1), "y": (8, 4), "z": (12, 1)}
    assert (e.struct("a").size, e.struct("a").align) == (16, 8)
    assert offsets(e.struct("b"))["y"] == (16, 1) and e.struct("b").size == 32
    assert (e.struct("c").size, e.struct("c").align) == (32, 32)
    assert offsets(e.struct("d"))["y"] == (4, 6) and e.struct("d").size == 12


def test_cacheline_aligned_buffer_at_the_end_has_its_own_line():
    e = engine("""
struct sensor { u32 state; u8 rx[16] ____cacheline_aligned; };
struct sensor2 { u32 state; u8 rx[16] ____cacheline_aligned_in_smp; u32 after; };
""")
    s = e.struct("sensor")
    assert offsets(s) == {"state": (0, 4), "rx": (64, 16)}
    assert (s.size, s.align) == (128, 64)
    assert granule_overlap(s, "rx", 64) == []
    s3 = engine("struct s3 { u32 state; u8 rx[8] __cacheline_aligned; };").struct("s3")
    assert offsets(s3)["rx"] == (64, 8)
    s2 = e.struct("sensor2")
    assert offsets(s2)["after"] == (80, 4)
    shared = granule_overlap(s2, "rx", 64)
    assert [(n.member, n.ranges) for n in shared] == [("after", ((80, 84),))]


def test_buffer_shares_a_line_only_with_a_128_byte_granule():
    e = engine("""
struct adc {
	struct mutex lock;
	u32 flags;
	u8 rx[64] ____cacheline_aligned;
	u32 count;
};
""")
    s = e.struct("adc")
    assert offsets(s) == {"lock": (0, 32), "flags": (32, 4), "rx": (64, 64), "count": (128, 4)}
    assert s.size == 192
    assert granule_overlap(s, "rx", 64) == []
    shared = granule_overlap(s, "rx", 128)
    assert [(n.member, n.ranges) for n in shared] == [("lock", ((0, 32),)), ("flags", ((32, 36),))]


def test_dma_minalign_follows_the_target():
    code = "struct st { u32 cfg; u8 buf[4] __aligned(IIO_DMA_MINALIGN); };"
    x86 = engine(code).struct("st")
    arm = engine(code, target=Target.arm64()).struct("st")
    assert offsets(x86)["buf"] == (64, 4) and x86.size == 128
    assert offsets(arm)["buf"] == (128, 4) and arm.size == 256
    assert granule_overlap(arm, "buf", 128) == []


def test_nested_structs_and_field_path():
    e = engine("""
struct stats { u64 packets; u32 errors; };
struct queue { u16 id; struct stats st; struct { u8 a; u16 b; } inline_member; };
struct priv { u8 flag; struct queue q[2]; struct queue main; };
""")
    q = e.struct("queue")
    assert offsets(q) == {"id": (0, 2), "st": (8, 16), "inline_member": (24, 4)}
    assert q.size == 32
    assert q.member("st").layout.name == "struct stats"
    p = e.struct("struct priv")
    assert offsets(p) == {"flag": (0, 1), "q": (8, 64), "main": (72, 32)}
    assert e.field_path("priv", ["main", "st", "errors"]).offset == 72 + 8 + 8
    assert e.field_path(p, ["main", "inline_member", "b"]).offset == 72 + 24 + 2
    assert e.field_path("priv", ["main", "nope"]) is None
    paths = [path for path, _ in p.leaves()]
    assert paths == ["flag", "q", "main.id", "main.st.packets", "main.st.errors",
                     "main.inline_member.a", "main.inline_member.b"]


def test_arrays_sized_by_defines_and_enums():
    e = engine("""
#define NDESC 8
#define DESC_BYTES (NDESC * sizeof(struct desc))
enum { CH_A, CH_B, CH_C, NUM_CH };
struct desc { __le64 addr; __le32 len; __le32 ctl; };
struct ring { struct desc d[NDESC]; u8 raw[DESC_BYTES]; u32 counters[NUM_CH][2];
              u8 page[PAGE_SIZE / 4]; u8 m[SZ_1K]; DECLARE_BITMAP(used, NDESC * 9); };
""")
    r = e.struct("ring")
    assert offsets(r) == {"d": (0, 128), "raw": (128, 128), "counters": (256, 24),
                          "page": (280, 1024), "m": (1304, 1024), "used": (2328, 16)}
    assert r.size == 2344
    assert r.member("counters").type_text == "u32[NUM_CH][2]"


def test_unions_and_anonymous_members():
    e = engine("""
union word { u8 b[3]; u32 w; u16 h; };
struct msg { u8 kind; union { u32 id; u64 key; }; struct { u8 x, y; }; u16 tail; };
""")
    u = e.struct("union word")
    assert (u.kind, u.size, u.align) == ("union", 4, 4)
    assert offsets(u) == {"b": (0, 3), "w": (0, 4), "h": (0, 2)}
    m = e.struct("msg")
    assert [f.name for f in m.fields] == ["kind", "", "", "tail"]
    assert (m.member("key").offset, m.member("y").offset, m.member("tail").offset) == (8, 17, 18)
    assert m.size == 24


def test_typedef_structs_and_typedef_arrays():
    e = engine("""
typedef struct { u16 a; u32 b; } pair_t;
typedef struct node { struct node *next; pair_t p; } node_t, *node_p;
typedef u8 mac_t[6];
struct holder { node_t n; node_p np; mac_t mac; pair_t pairs[2]; };
""")
    assert e.struct("pair_t").size == 8 and e.struct("pair_t").name == "pair_t"
    assert e.struct("node_t").size == 16
    assert offsets(e.struct("holder")) == {"n": (0, 16), "np": (16, 8), "mac": (24, 6),
                                           "pairs": (32, 16)}
    assert e.sizeof_type("node_p") == 8
    assert e.sizeof_type("mac_t") == 6
    assert e.sizeof_type("struct holder") == 48


def test_attributes_after_a_typedef_name_align_but_do_not_pad():
    e = engine("""
typedef u32 wide_t __aligned(8);
typedef struct { u8 c; } tag_t __attribute__((aligned(8)));
typedef struct { u8 c; } __aligned(8) padded_t;
typedef struct { u8 c; u32 i; } __packed packed_t;
struct user { u8 a; wide_t w; u8 b; tag_t t; u8 d; padded_t p; packed_t q; };
""")
    assert (e.sizeof_type("wide_t"), e.sizeof_type("tag_t"), e.sizeof_type("padded_t")) == (4, 1, 8)
    assert (e.struct("tag_t").size, e.struct("tag_t").align) == (1, 8)
    assert offsets(e.struct("user")) == {"a": (0, 1), "w": (8, 4), "b": (12, 1), "t": (16, 1),
                                         "d": (17, 1), "p": (24, 8), "q": (32, 5)}
    assert e.struct("user").size == 40


def test_bitfields_are_laid_out_and_marked_approximate():
    s = engine("struct ctl { u32 en:1, mode:3; u32 :0; u8 lane:4; u16 wide:12; u8 last; };").struct("ctl")
    assert s.approximate
    en, mode, lane, wide, last = (s.member(n) for n in ("en", "mode", "lane", "wide", "last"))
    assert (en.offset, en.bit_offset, en.bit_width) == (0, 0, 1)
    assert (mode.offset, mode.bit_offset, mode.bit_width) == (0, 1, 3)
    assert (lane.offset, lane.bit_width) == (4, 4)
    assert (wide.offset, wide.bit_offset, wide.size) == (4, 4, 2)  # fits the u16 at bytes 4-5
    assert last.offset == 6 and s.size == 8


def test_flexible_array_members():
    s = engine("struct pkt { u16 len; u8 flags; __le32 data[]; };").struct("pkt")
    data = s.member("data")
    assert (data.offset, data.size, data.flexible) == (4, 0, True)
    assert s.size == 4


def test_unknown_types_are_named_never_guessed():
    e = engine("""
struct inner { struct acme_widget w; };
struct outer { u32 a; struct inner in; u8 b; };
struct bound { u8 a[UNDEFINED_LEN]; };
struct self { struct self s; };
""")
    inner = e.struct("inner")
    assert inner.size is None
    assert inner.unknown == Unknown("type", "struct acme_widget", "w")
    assert str(inner.unknown) == "unknown type 'struct acme_widget' (member 'w')"
    outer = e.struct("outer")
    assert outer.unknown == Unknown("type", "struct acme_widget", "in.w")
    assert outer.member("a").offset == 0  # members before the unknown one keep their offsets
    assert outer.member("in").offset is None and outer.member("b") is None
    assert e.struct("bound").unknown == Unknown("constant", "UNDEFINED_LEN", "a")
    assert e.struct("self").unknown.kind == "recursive"
    assert e.sizeof_type("struct acme_widget") is None
    assert e.struct("never_declared") is None


def test_granule_overlap_with_unknown_members():
    e = engine("struct d { u8 buf[32] ____cacheline_aligned; u32 n; struct mystery m; };")
    s = e.struct("d")
    assert s.unknown.name == "struct mystery"
    # n lies in the buffer's line; the unknown member starts after n, perhaps in the same line
    assert granule_overlap(s, "buf", 64) is None
    far = engine("struct d { u8 buf[32] ____cacheline_aligned; u8 pad[32]; struct mystery m; };")
    assert [n.member for n in granule_overlap(far.struct("d"), "buf", 64)] == ["pad"]


def test_config_blocks_and_kernel_types_marked_approximate():
    e = engine("""
struct cfg { u32 a;
#ifdef CONFIG_FOO
	u32 b;
#endif
};
""", kernel_types=load_kernel_types().extended({"struct device": {"size": 752, "align": 8,
                                                                  "approximate": True}}))
    assert e.struct("cfg").approximate and e.struct("cfg").size == 8
    e2 = engine("struct p { struct device dev; u8 buf[8]; };",
                kernel_types=load_kernel_types().extended({"struct device": (752, 8)}))
    assert e2.struct("p").member("buf").offset == 752 and not e2.struct("p").approximate


def test_kernel_types_table_and_extension():
    table = load_kernel_types()
    assert table.get("struct mutex") == KernelType(32, 8)
    assert table.get("spinlock_t") == KernelType(4, 4)
    assert table.constants["ETH_ALEN"] == 6
    code = "struct w { struct widget w; struct mutex m; };"
    assert engine(code).struct("w").unknown.name == "struct widget"
    extended = table.extended({"struct widget": KernelType(12, 4), "struct mutex": (40, 8)})
    s = engine(code, kernel_types=extended).struct("w")
    assert offsets(s) == {"w": (0, 12), "m": (16, 40)}
    assert table.get("struct mutex").size == 32  # the original is unchanged


def test_kernel_type_table_validation():
    with pytest.raises(RuleFileError, match="power of two"):
        kernel_types_from_data({"types": {"x": {"size": 4, "align": 3}}}, "t.toml")
    with pytest.raises(RuleFileError, match="unknown keys"):
        kernel_types_from_data({"types": {"x": {"size": 4, "align": 4, "sise": 1}}}, "t.toml")
    with pytest.raises(RuleFileError, match="must be an integer"):
        kernel_types_from_data({"constants": {"N": "4"}}, "t.toml")


def test_damaged_declarations_are_unknown():
    s = engine("struct broken { u32 a; SOME_MACRO(x, y) z; u8 b; };").struct("broken")
    assert s.unknown is not None and s.unknown.kind == "parse"


def test_struct_in_a_local_header(tmp_path):
    (tmp_path / "regs.h").write_text(
        "#define NQUEUES 4\n"
        "#include \"common.h\"\n"
        "struct hw_queue { dma_addr_t ring; u32 head, tail; struct shared sh; };\n")
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "common.h").write_text("struct shared { u16 ver; u16 flags[2]; };\n")
    (tmp_path / "drv.c").write_text(
        "#include <linux/module.h>\n"
        "#include \"regs.h\"\n"
        "struct drv_priv { struct hw_queue q[NQUEUES]; u8 rx[32] ____cacheline_aligned; u32 irq; };\n")
    tables = load_macro_tables()
    src = read_source(tmp_path / "drv.c", str(tmp_path / "drv.c"), tables)
    without_dirs = LayoutEngine([src])
    assert without_dirs.struct("drv_priv").unknown == Unknown("type", "struct shared", "q.sh")
    e = LayoutEngine([src], include_dirs=[tmp_path / "inc"])
    q = e.struct("hw_queue")
    assert offsets(q) == {"ring": (0, 8), "head": (8, 4), "tail": (12, 4), "sh": (16, 6)}
    assert q.size == 24 and q.path.endswith("regs.h") and q.line == 3
    p = e.struct("drv_priv")
    assert offsets(p) == {"q": (0, 96), "rx": (128, 32), "irq": (160, 4)}
    assert [n.member for n in granule_overlap(p, "rx", 64)] == ["irq"]
    assert [l.name for l in e.declared_structs(src)] == ["struct drv_priv"]


# --- differential check against the compiler -----------------------------------------------

PRELUDE = """
#include <stddef.h>
#include <stdio.h>
typedef unsigned char u8; typedef unsigned short u16; typedef unsigned int u32;
typedef unsigned long long u64; typedef unsigned short __le16; typedef unsigned int __le32;
typedef unsigned long long __le64; typedef u64 dma_addr_t; typedef _Bool bool;
struct mutex { long owner; int wait_lock, osq; void *next, *prev; };
#define __packed __attribute__((packed))
#define __aligned(x) __attribute__((aligned(x)))
#define ____cacheline_aligned __attribute__((aligned(64)))
#define DECLARE_BITMAP(name, bits) unsigned long name[((bits) + 63) / 64]
"""

GCC_CASES = """
#define NQ 3
enum { NCH = 5 };
struct in { u16 a; u32 b; };
struct mix { u8 a, *b, c[4][2]; int x:3, :0; unsigned y:7; void (*cb)(int);
             struct { int q; } anon; union { u16 h; u32 w; }; struct in arr[NQ];
             struct mutex lock; u8 buf[NCH] ____cacheline_aligned; DECLARE_BITMAP(map, 65);
             u8 tail[]; };
struct pk { u8 a; u32 b; struct in c; } __packed;
struct pka { u8 a; u32 b; } __packed __aligned(4);
struct bits { u8 a:3; u8 b:6; u32 c:30; u32 d:4; u16 e; char f:1; long g:40; long h:40; };
struct pbits { u8 a:3; u32 b:30; u8 c; } __packed;
struct zero { char c; long :0; char d; int :4; char e; };
struct attrs { u8 a; struct { u8 x; } __aligned(8) s; u8 b; u64 c __packed; u8 d;
               u32 e __attribute__((packed, aligned(2))); __attribute__((aligned(32))) u8 f; };
union un { u8 a; u64 b; u8 c[13]; struct in d; };
typedef u8 mac_t[6];
struct td { mac_t a; mac_t b; u64 c; __le16 d; dma_addr_t e; bool f; long double g; };
typedef struct { char c; } wide_t __attribute__((aligned(8)));
typedef u32 al_u32 __aligned(8);
typedef struct { char c; } __aligned(8) wide2_t;
typedef struct { char c; int i; } __packed pk_t;
struct tds { char a; wide_t t; char b; al_u32 x; char d; wide2_t e; pk_t f; };
"""


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_layouts_match_gcc(tmp_path):
    e = engine(GCC_CASES)
    probes, expected = [], []
    for layout in e.declared_structs():
        assert layout.unknown is None, layout.name
        name = layout.name
        probes.append(f'printf("{name} %zu %zu\\n", sizeof({name}), _Alignof({name}));')
        expected.append(f"{name} {layout.size} {layout.align}")
        for path, leaf in layout.leaves():
            if path and leaf.bit_width is None:
                probes.append(f'printf("{name}.{path} %zu\\n", offsetof({name}, {path}));')
                expected.append(f"{name}.{path} {leaf.offset}")
    program = tmp_path / "probe.c"
    program.write_text(PRELUDE + GCC_CASES + "int main(void) {\n" + "\n".join(probes) + "\nreturn 0; }\n")
    subprocess.run(["gcc", "-w", "-o", str(tmp_path / "probe"), str(program)], check=True)
    got = subprocess.run([str(tmp_path / "probe")], capture_output=True, text=True, check=True)
    assert got.stdout.splitlines() == expected
