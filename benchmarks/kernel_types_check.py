"""Check rules/kernel_types.toml against a real kernel build, or measure new types.

    python benchmarks/kernel_types_check.py --common DIR --build DIR [--probe 'struct foo' ...]

DIR are a distribution's kernel header packages (Debian: `apt-get download
linux-headers-6.1.0-N-common linux-headers-6.1.0-N-amd64`, unpacked with `dpkg -x`): the first
holds include/ and arch/, the second the configuration and the generated headers.  Every table
entry (and every --probe type or --constant) is compiled into a probe file the way the kernel
builds asm-offsets: gcc -S, the values read from the assembly, nothing run.  A classifier reads
the headers to flag types whose size depends on configuration options (see Classifier).

Prints mismatches (and table entries that should be marked approximate), or the measured values
of --probe types as TOML lines ready for rules/kernel_types.toml.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from dmalint.cdecl import DeclFile, base_type, derive, member_declarations
from dmalint.contracts.loader import load_macro_tables
from dmalint.layout import load_kernel_types
from dmalint.source import read_source

# Options the table's header fixes (a production build): conditionals on them are not reported,
# and members under `#ifdef OFF_OPTION` (or `#ifndef ON_OPTION`) are not followed.
ASSUMED_OFF = {
    "CONFIG_DEBUG_LOCK_ALLOC", "CONFIG_LOCKDEP", "CONFIG_DEBUG_SPINLOCK", "CONFIG_DEBUG_MUTEXES",
    "CONFIG_DEBUG_RWSEMS", "CONFIG_PREEMPT_RT", "CONFIG_DEBUG_WW_MUTEX_SLOWPATH",
    "CONFIG_GENERIC_ATOMIC64", "CONFIG_DEBUG_OBJECTS_WORK", "CONFIG_DEBUG_OBJECTS_TIMERS",
    "CONFIG_DEBUG_KOBJECT_RELEASE", "CONFIG_DEBUG_PREEMPT", "CONFIG_LOCK_STAT",
}
ASSUMED_ON = {
    "CONFIG_SMP", "CONFIG_64BIT", "CONFIG_X86_64", "CONFIG_ARCH_DMA_ADDR_T_64BIT",
    "CONFIG_PHYS_ADDR_T_64BIT",
}
# Options that change no size on x86-64 (the member fills padding): see the table's comments.
NO_SIZE_CHANGE = {"CONFIG_MUTEX_SPIN_ON_OWNER", "CONFIG_RWSEM_SPIN_ON_OWNER",
                  "CONFIG_NEED_SG_DMA_LENGTH", "CONFIG_PCI_P2PDMA"}
ASSUMED = ASSUMED_OFF | ASSUMED_ON | NO_SIZE_CHANGE
_SKIPPED_BRANCH = re.compile(rb"^[ \t]*#[ \t]*(ifdef|ifndef|if)[ \t]+(?:defined\s*\(?|IS_ENABLED\s*\()?\s*(CONFIG_\w+)\)?\s*$")
_DEFINITION = re.compile(rb"\b(struct|union)\s+(\w+)\s*\{")
_TYPEDEF_NAME = re.compile(rb"\btypedef\b[^;]*?(?:\(\s*\*\s*(\w+)\s*\)[^;]*|\b(\w+)\s*(?:\[[^\]]*\]\s*)*);")
_AFTER_BRACE = re.compile(rb"\}\s*(\w+)\s*;")  # `typedef struct {...} name;`
_DIRECTIVE = re.compile(rb"^[ \t]*#[ \t]*(if|ifdef|ifndef|elif|else|endif)\b([^\n]*)", re.M)
# Macros whose value is set by the configuration or the architecture: a body using one has a
# configuration-dependent size even without #if.
VALUE_MACROS = re.compile(rb"\b(CONFIG_\w+|NR_CPUS|MAX_NUMNODES|ARCH_KMALLOC_MINALIGN|ARCH_DMA_MINALIGN|"
                          rb"IIO_DMA_MINALIGN|CRYPTO_MINALIGN|NR_IRQS|PAGE_SIZE|PAGE_SHIFT|"
                          rb"MAX_ORDER|NR_CPUS_BITS|____cacheline_internodealigned_in_smp)\b")


class Classifier:
    """Which kernel types depend on configuration options beyond ASSUMED.  For a type and the
    types it embeds (not those it points to): the #if blocks around its definition, the #if
    lines inside it, configuration-valued macros it uses, and definitions under arch/ (reported
    as ARCH:name).  Headers are searched in the order given: pass include/ before arch/."""

    def __init__(self, roots: list[Path]) -> None:
        self.files: dict[str, list[Path]] = {}
        for root in roots:
            for path in sorted(root.rglob("*.h")):
                data = path.read_bytes()
                names = {f"{m.group(1).decode()} {m.group(2).decode()}" for m in _DEFINITION.finditer(data)}
                names |= {(m.group(1) or m.group(2) or b"").decode() for m in _TYPEDEF_NAME.finditer(data)}
                names |= {m.group(1).decode() for m in _AFTER_BRACE.finditer(data)}
                for name in names - {""}:
                    self.files.setdefault(name, []).append(path)
        self.tables = load_macro_tables()
        self.parsed: dict[Path, DeclFile] = {}
        self.memo: dict[str, set[str]] = {}

    def options(self, name: str, depth: int = 0) -> set[str]:
        """Symbols (CONFIG_ options beyond ASSUMED, configuration-valued macros) that can change
        the type's layout; {'?'} when the definition was not found."""
        if name in self.memo or depth > 16:
            found = self.memo.get(name, set())
            return found - {"?"} if depth else found
        self.memo[name] = set()
        found: set[str] = set()
        decl_file = next((f for f in map(self._parse, self.files.get(name, ()))
                          if name in f.tags or name in f.typedefs), None)
        if decl_file is None:
            found = {"?"}
        elif "/arch/" in str(decl_file.disk):
            found = {"ARCH:" + name}  # defined per architecture: x86-64 and arm64 may differ
        elif name in decl_file.tags:
            found = self._record_options(decl_file.tags[name], decl_file, depth)
        else:
            typedef, declarator = decl_file.typedefs[name]
            found = _enclosing(decl_file.src.raw, typedef.start_byte)
            spec = typedef.child_by_field_name("type")
            ctype = derive(base_type(spec, decl_file), declarator, decl_file)[1]
            while ctype.kind == "array":
                found |= _value_macros(decl_file.src.raw, typedef.start_byte, typedef.end_byte)
                ctype = ctype.of
            if ctype.kind == "record":
                found |= self._record_options(ctype.node, decl_file, depth)
            elif ctype.kind == "name" and ctype.name:
                found |= self.options(ctype.name, depth + 1)
        self.memo[name] = found
        return found - {"?"} if depth else found

    def _parse(self, path: Path) -> DeclFile:
        if path not in self.parsed:
            self.parsed[path] = DeclFile.build(read_source(path, str(path), self.tables), path)
        return self.parsed[path]

    def _record_options(self, spec, decl_file, depth: int) -> set[str]:
        raw = decl_file.src.raw
        body = spec.child_by_field_name("body")
        found = _enclosing(raw, spec.start_byte)
        text = raw[body.start_byte:body.end_byte]
        for m in _DIRECTIVE.finditer(text):
            found |= {x.decode() for x in re.findall(rb"CONFIG_\w+", m.group(2))} - ASSUMED
        found |= _value_macros(raw, body.start_byte, body.end_byte)
        skipped = _skipped_ranges(text, body.start_byte)
        for inner in self._embedded(spec, decl_file, skipped):
            found |= self.options(inner, depth + 1)
        return found

    def _embedded(self, spec, decl_file, skipped) -> list[str]:
        """Named types a record contains by value (through nested and anonymous records)."""
        out: list[str] = []
        stack = [spec]
        while stack:
            record = stack.pop()
            body = record.child_by_field_name("body")
            if body is None:
                continue
            for _anon, declarator, _w, _a, decl in member_declarations(body, decl_file.src):
                if any(lo <= decl.start_byte < hi for lo, hi in skipped):
                    continue
                base = base_type(decl.child_by_field_name("type"), decl_file)
                ctype = derive(base, declarator, decl_file)[1] if declarator is not None else base
                while ctype.kind == "array":
                    ctype = ctype.of
                if ctype.kind == "record":
                    stack.append(ctype.node)
                elif ctype.kind == "name" and ctype.name:
                    out.append(ctype.name)
        return out


HEADERS = """
linux/kbuild.h linux/types.h linux/kernel.h linux/device.h linux/netdevice.h linux/skbuff.h
linux/interrupt.h linux/workqueue.h linux/hrtimer.h linux/scatterlist.h linux/idr.h
linux/completion.h linux/rhashtable-types.h linux/notifier.h linux/regulator/consumer.h
linux/etherdevice.h linux/mii.h linux/phy.h linux/phylink.h linux/u64_stats_sync.h linux/spi/spi.h
linux/i2c.h linux/usb.h linux/usb/gadget.h linux/usb/composite.h linux/usb/ch9.h linux/usb/phy.h
linux/can/dev.h linux/iio/iio.h linux/iio/trigger.h linux/gpio/driver.h linux/hid.h
linux/platform_device.h linux/pci.h linux/clk.h linux/clk-provider.h linux/kfifo.h
linux/miscdevice.h linux/cdev.h linux/ptp_clock_kernel.h linux/input.h linux/leds.h
linux/firmware.h linux/dmaengine.h linux/dma-mapping.h linux/if_vlan.h linux/ethtool.h
linux/in6.h linux/if_ether.h linux/pm_qos.h linux/wait.h linux/timer.h linux/mutex.h
linux/spinlock.h linux/rwsem.h linux/semaphore.h linux/llist.h linux/rbtree.h linux/xarray.h
linux/kref.h linux/refcount.h linux/atomic.h linux/cpumask.h linux/compat.h
linux/mod_devicetable.h linux/poll.h linux/fs.h linux/debugfs.h linux/extcon-provider.h
linux/power_supply.h linux/rtc.h linux/mfd/core.h linux/regmap.h linux/irq.h linux/irqdomain.h
linux/irq_work.h linux/mdio.h linux/mdio-bitbang.h linux/sfp.h linux/watchdog.h linux/tty.h
linux/serial_core.h linux/usb/serial.h linux/usb/usbnet.h linux/usb/cdc.h linux/usb/hcd.h
linux/usb/otg.h linux/usb/role.h linux/usb/typec.h linux/usb/typec_altmode.h linux/usb/ch11.h
linux/hwmon.h linux/thermal.h linux/pinctrl/consumer.h linux/reset.h linux/nvmem-consumer.h
linux/i2c-mux.h linux/i2c-algo-bit.h linux/iio/buffer.h linux/iio/buffer_impl.h
linux/iio/buffer-dma.h linux/iio/sysfs.h linux/iio/sw_trigger.h linux/iio/imu/adis.h
linux/iio/adc/ad_sigma_delta.h linux/iio/common/st_sensors.h linux/hid-sensor-hub.h
linux/platform_data/cros_ec_sensorhub.h linux/iio/common/cros_ec_sensors_core.h linux/fb.h
linux/pwm.h linux/auxiliary_bus.h linux/mtd/mtd.h linux/hw_random.h linux/filter.h
linux/virtio_net.h linux/if_macvlan.h linux/phy_fixed.h linux/ppp_channel.h linux/kthread.h
linux/configfs.h linux/sched.h linux/seq_file.h linux/uuid.h linux/ieee80211.h
net/devlink.h net/switchdev.h net/page_pool.h net/xdp.h net/mac80211.h net/cfg80211.h
net/ieee80211_radiotap.h net/dsa.h net/pkt_cls.h net/flow_offload.h net/ip.h net/ipv6.h
net/gro_cells.h net/dst.h net/sock.h net/inet_sock.h net/ip_tunnels.h net/macsec.h
net/fib_notifier.h net/ip_fib.h net/netlink.h net/genetlink.h net/sch_generic.h
media/v4l2-device.h media/v4l2-subdev.h media/v4l2-ctrls.h media/v4l2-fh.h media/v4l2-dev.h
media/v4l2-ioctl.h media/v4l2-mem2mem.h media/v4l2-async.h media/v4l2-fwnode.h
media/v4l2-common.h media/videobuf2-v4l2.h media/videobuf2-core.h media/videobuf2-memops.h
media/media-device.h media/media-entity.h media/dvb_frontend.h media/dvbdev.h media/dmxdev.h
media/dvb_demux.h media/dvb_net.h media/dvb_ca_en50221.h media/dvb_ringbuffer.h
media/rc-core.h media/cec.h media/cec-notifier.h media/tuner.h media/tuner-types.h
media/v4l2-event.h media/tveeprom.h media/v4l2-jpeg.h media/v4l2-h264.h media/v4l2-vp9.h
media/videobuf2-dma-contig.h media/v4l2-dv-timings.h media/v4l2-mediabus.h
sound/core.h sound/pcm.h sound/control.h linux/can/rx-offload.h linux/usb/tcpci.h
linux/usb/tcpm.h linux/usb/typec_dp.h linux/parman.h linux/hdlcdrv.h media/drv-intf/tea575x.h
linux/crc8.h linux/mroute.h linux/timecounter.h linux/eeprom_93cx6.h linux/usb/pd.h
"""


def _enclosing(raw: bytes, offset: int) -> set[str]:
    """CONFIG_ options (beyond ASSUMED) of the #if blocks open at offset."""
    stack: list[bytes] = []
    for m in _DIRECTIVE.finditer(raw, 0, offset):
        kind = m.group(1)
        if kind in (b"if", b"ifdef", b"ifndef"):
            stack.append(m.group(2))
        elif kind in (b"elif", b"else") and stack:
            stack[-1] = stack[-1] + b" " + m.group(2)
        elif kind == b"endif" and stack:
            stack.pop()
    return {x.decode() for cond in stack for x in re.findall(rb"CONFIG_\w+", cond)} - ASSUMED


def _value_macros(raw: bytes, start: int, end: int) -> set[str]:
    """Configuration-valued macros used outside directives in raw[start:end]."""
    text = _DIRECTIVE.sub(b"", raw[start:end])
    return {m.decode() for m in VALUE_MACROS.findall(text)} - ASSUMED


def _skipped_ranges(raw: bytes, base: int) -> list[tuple[int, int]]:
    """Byte ranges of `#ifdef OFF_OPTION` / `#ifndef ON_OPTION` first branches in a body."""
    out, stack, pos = [], [], 0
    for line in raw.split(b"\n"):
        stripped = line.strip()
        m = _SKIPPED_BRANCH.match(line)
        if stripped.startswith(b"#") and re.match(rb"#\s*if", stripped):
            skip = bool(m) and ((m.group(1) != b"ifndef" and m.group(2).decode() in ASSUMED_OFF)
                                or (m.group(1) == b"ifndef" and m.group(2).decode() in ASSUMED_ON))
            stack.append((skip, pos))
        elif stripped.startswith(b"#") and re.match(rb"#\s*(else|elif|endif)", stripped) and stack:
            skip, start = stack[-1]
            if skip:
                out.append((base + start, base + pos))
            if re.match(rb"#\s*endif", stripped):
                stack.pop()
            else:
                stack[-1] = (False, pos)
        pos += len(line) + 1
    return out


def probe_source(entries: list[tuple[str, str]], headers: list[str]) -> str:
    lines = [f"#include <{h}>" for h in headers]
    lines.append("void dmalint_probe(void) {")
    for i, (kind, name) in enumerate(entries):
        if kind == "type":
            lines.append(f"DEFINE(s{i}, sizeof({name})); DEFINE(a{i}, __alignof__({name}));")
        else:
            lines.append(f"DEFINE(c{i}, {name});")
    lines.append("}")
    return "\n".join(lines) + "\n"


def compile_probe(entries, headers, common: Path, build: Path) -> tuple[dict, set[int]]:
    """Values by entry index, and the entries gcc could not compile (dropped, then retried)."""
    gcc_include = subprocess.run(["gcc", "-print-file-name=include"], capture_output=True,
                                 text=True).stdout.strip()
    flags = ["-nostdinc", "-isystem", gcc_include,
             f"-I{common}/arch/x86/include", f"-I{build}/arch/x86/include/generated",
             f"-I{common}/include", f"-I{build}/include", f"-I{common}/arch/x86/include/uapi",
             f"-I{build}/arch/x86/include/generated/uapi", f"-I{common}/include/uapi",
             f"-I{build}/include/generated/uapi",
             "-include", f"{common}/include/linux/compiler-version.h",
             "-include", f"{common}/include/linux/kconfig.h",
             "-include", f"{common}/include/linux/compiler_types.h",
             "-D__KERNEL__", "-DMODULE", "-DKBUILD_MODNAME=\"probe\"", "-DKBUILD_BASENAME=\"probe\"",
             "-std=gnu11", "-fno-strict-aliasing", "-m64", "-mno-red-zone", "-mcmodel=kernel",
             "-fno-PIE", "-mfentry", "-DCC_USING_FENTRY", "-O2", "-w", "-S", "-o", "-"]
    failed: set[int] = set()
    headers = [h for h in headers if (common / "include" / h).exists()]
    workdir = tempfile.TemporaryDirectory()
    probe = Path(workdir.name) / "probe.c"
    for _ in range(50):
        live = [(i, e) for i, e in enumerate(entries) if i not in failed]
        probe.write_text(probe_source([e for _, e in live], headers))
        run = subprocess.run(["gcc", *flags, str(probe)], capture_output=True, text=True)
        if run.returncode == 0:
            values = {}
            for m in re.finditer(r"->([sac])(\d+) \$?(-?\d+) ", run.stdout):
                values[(m.group(1), live[int(m.group(2))][0])] = int(m.group(3))
            return values, failed
        first_line = len(headers) + 2
        bad = {int(m.group(1)) - first_line
               for m in re.finditer(rf"{re.escape(str(probe))}:(\d+):\d+: error", run.stderr)}
        bad = {live[b][0] for b in bad if 0 <= b < len(live)}
        if not bad:
            sys.exit("probe failed outside the entries:\n" + run.stderr[:3000])
        failed |= bad
    sys.exit("too many failing entries")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--common", type=Path, required=True)
    ap.add_argument("--build", type=Path, required=True)
    ap.add_argument("--probe", action="append", default=[], help="a type to measure")
    ap.add_argument("--constant", action="append", default=[], help="a constant to measure")
    ap.add_argument("--probe-file", type=Path, help="types to measure, one per line")
    ap.add_argument("--constant-file", type=Path, help="constants to measure, one per line")
    args = ap.parse_args()
    headers = HEADERS.split()
    if args.probe_file:
        args.probe += [t.strip() for t in args.probe_file.read_text().splitlines() if t.strip()]
    if args.constant_file:
        args.constant += [c.strip() for c in args.constant_file.read_text().splitlines() if c.strip()]
    if args.probe or args.constant:
        entries = [("type", t) for t in args.probe] + [("const", c) for c in args.constant]
        values, failed = compile_probe(entries, headers, args.common, args.build)
        classifier = Classifier([args.common / "include", args.common / "arch/x86/include"])
        for i, (kind, name) in enumerate(entries):
            if i in failed:
                print(f"# {name}: does not compile with the probe headers")
            elif kind == "type":
                options = sorted(classifier.options(name))
                approx = ", approximate = true" if options else ""
                note = f"  # {', '.join(options[:4])}{' ...' if len(options) > 4 else ''}" if options else ""
                print(f'"{name}" = {{ size = {values[("s", i)]}, align = {values[("a", i)]}{approx} }}{note}')
            else:
                print(f"{name} = {values[('c', i)]}")
        return 0
    table = load_kernel_types()
    entries = [("type", name) for name in table.types] + [("const", c) for c in table.constants]
    values, failed = compile_probe(entries, headers, args.common, args.build)
    classifier = Classifier([args.common / "include", args.common / "arch/x86/include"])
    bad = 0
    for i, (kind, name) in enumerate(entries):
        if i in failed:
            print(f"not compiled: {name}")
            continue
        if kind == "type":
            want = table.types[name]
            got = (values[("s", i)], values[("a", i)])
            if (want.size, want.align) != got:
                bad += 1
                print(f"MISMATCH {name}: table {want.size}/{want.align}, build {got[0]}/{got[1]}")
            options = classifier.options(name)
            if options == {"?"}:
                print(f"note: {name}: definition not found by the classifier (a macro?); check by hand")
            elif options and not want.approximate:
                bad += 1
                print(f"NOT MARKED APPROXIMATE {name}: depends on {', '.join(sorted(options))}")
            elif want.approximate and not options:
                print(f"note: {name} is marked approximate; the classifier finds no option")
        elif table.constants[name] != values[("c", i)]:
            bad += 1
            print(f"MISMATCH {name}: table {table.constants[name]}, build {values[('c', i)]}")
    print(f"{len(entries)} entries, {len(failed)} not compiled, {bad} problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
