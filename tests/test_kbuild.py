"""`dmalint kbuild`: the command line kbuild's `cmd_checksrc` passes, parsed and run."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from dmalint.cli import main
from dmalint.kbuild import parse_compiler_args

# $(CHECK) $(CHECKFLAGS) $(c_flags) $< as scripts/Makefile.build of 6.1 expands it for an x86_64
# module (the shell has removed the quotes around KBUILD_BASENAME's value).
CHECKFLAGS = ["-D__linux__", "-Dlinux", "-D__STDC__", "-Dunix", "-D__unix__", "-Wbitwise",
              "-Wno-return-void", "-Wno-unknown-attribute", "--arch=x86", "-mlittle-endian",
              "-m64", "-D__x86_64__"]
C_FLAGS = ["-Wp,-MMD,drv/.d.o.d", "-nostdinc", "-I./arch/x86/include",
           "-I./arch/x86/include/generated", "-I./include", "-I", "./drv/extra",
           "-isystem", "/usr/lib/gcc/x86_64-linux-gnu/12/include",
           "-include", "./include/linux/kconfig.h", "-D__KERNEL__", "-fmacro-prefix-map=./=",
           "-Wall", "-Wundef", "-Werror=strict-prototypes", "-fno-strict-aliasing",
           "-fshort-wchar", "-fno-PIE", "-std=gnu11", "-mno-sse", "-mno-red-zone",
           "-mcmodel=kernel", "-mindirect-branch=thunk-extern", "-O2",
           "--param=allow-store-data-races=0", "-fstack-protector-strong", "-pg", "-mfentry",
           "-DCC_USING_FENTRY", "-mllvm", "-msan-disable-checks=1", "-o", "drv/d.o", "-DMODULE",
           '-DKBUILD_BASENAME="d"', '-DKBUILD_MODNAME="d"', "-D__KBUILD_MODNAME=kmod_d",
           "-UMODULE"]

D_C = """#include <linux/dma-mapping.h>

static int d_cmd(struct device *dev, struct d_priv *p, void *buf)
{
	dma_addr_t dma = dma_map_single(dev, buf, D_LEN, DMA_TO_DEVICE);

	if (dma_mapping_error(dev, dma))
		return -ENOMEM;
	dma_unmap_single(dev, dma, 64, DMA_TO_DEVICE);
	p->x = dma_map_single(dev, buf, 64, DMA_TO_DEVICE);
	return 0;
}
"""
DMA001 = ("drv/d.c:10:2: error: 'p->x' from dma_map_single() at line 10 is stored in 'p->x' "
          "without a dma_mapping_error() check [DMA001]")
DMA004 = ("drv/d.c:9:2: error: frees DMA memory with different size: dma_map_single() at line 5 "
          "mapped 'D_LEN', dma_unmap_single() releases '64' [DMA004]")


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A fake kernel tree (cwd, as kbuild runs the checker from the top)."""
    (tmp_path / "drv").mkdir()
    (tmp_path / "drv" / "d.c").write_text(D_C)
    (tmp_path / "include" / "linux").mkdir(parents=True)
    (tmp_path / "include" / "linux" / "kconfig.h").write_text(
        "#define __ARG_PLACEHOLDER_1 0,\n#define IS_ENABLED(option) __or(option)\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def kbuild(*extra: str, env=None):
    args = ["kbuild", *CHECKFLAGS, *C_FLAGS, *extra, "drv/d.c"]
    return CliRunner().invoke(main, args, env=env)


def test_parse_real_kbuild_arguments():
    a = parse_compiler_args(CHECKFLAGS + C_FLAGS + ["drv/d.c"])
    assert a.files == ["drv/d.c"]
    assert a.include_dirs == ["./arch/x86/include", "./arch/x86/include/generated", "./include",
                              "./drv/extra", "/usr/lib/gcc/x86_64-linux-gnu/12/include"]
    assert a.forced_includes == ["./include/linux/kconfig.h"]
    assert a.arch == "x86"
    assert {k: d.value for k, d in a.defines.items()} == {
        "__linux__": "1", "linux": "1", "__STDC__": "1", "unix": "1", "__unix__": "1",
        "__x86_64__": "1", "__KERNEL__": "1", "CC_USING_FENTRY": "1",
        "KBUILD_BASENAME": '"d"', "KBUILD_MODNAME": '"d"', "__KBUILD_MODNAME": "kmod_d"}
    assert not a.error_exit


def test_function_like_define_and_separate_arguments():
    a = parse_compiler_args(["-D", "SQ(x)=((x)*(x))", "-x", "c", "-MF", "dep.d", "-iquote",
                             "q", "-imacros", "m.h", "a.c", "b.c"])
    assert (a.defines["SQ"].params, a.defines["SQ"].value) == (("x",), "((x)*(x))")
    assert (a.files, a.include_dirs, a.forced_includes) == (["a.c", "b.c"], ["q"], ["m.h"])


def test_findings_on_stderr_sparse_style_exit_0(tree):
    r = kbuild()
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", DMA001 + "\n")


def test_defines_reach_the_analysis(tree):
    r = kbuild("-DD_LEN=128")
    assert r.stderr.splitlines() == [DMA004, DMA001]
    assert kbuild("-DD_LEN=64").stderr.splitlines() == [DMA001]
    (tree / "include" / "linux" / "d_len.h").write_text("#define D_LEN 256\n")
    r = kbuild("-include", "./include/linux/d_len.h")
    assert r.stderr.splitlines() == [DMA004, DMA001]


def test_error_exit_by_flag_or_environment(tree):
    assert kbuild("--error-exit").exit_code == 1
    assert kbuild(env={"DMALINT_KBUILD_ERROR": "1"}).exit_code == 1
    assert kbuild(env={"DMALINT_KBUILD_ERROR": "0"}).exit_code == 0


def test_configuration_applies(tree):
    (tree / ".dmalint.toml").write_text('ignore = ["DMA001"]\n')
    r = kbuild()
    assert (r.exit_code, r.stderr) == (0, "")


def test_arm64_granule_and_include_dirs(tree):
    (tree / "drv" / "extra").mkdir()
    (tree / "drv" / "extra" / "g.h").write_text(
        "struct g_tail {\n\tstruct device *dev;\n\tu32 flags;\n"
        "\tu8 data[16] ____cacheline_aligned;\n};\n")
    (tree / "drv" / "d.c").write_text(
        '#include <linux/dma-mapping.h>\n#include "g.h"\n\n'
        "static int g_tail_bad(struct g_tail *p)\n{\n"
        "\tdma_addr_t dma = dma_map_single(p->dev, p->data, sizeof(p->data), DMA_FROM_DEVICE);\n\n"
        "\tif (dma_mapping_error(p->dev, dma))\n\t\treturn -ENOMEM;\n"
        "\tdma_unmap_single(p->dev, dma, sizeof(p->data), DMA_FROM_DEVICE);\n\treturn 0;\n}\n")
    assert kbuild().stderr == ""  # x86: 64-byte granule
    r = kbuild("--arch=arm64")
    assert r.stderr == ("drv/d.c:6:19: warning: 'p->data' (g_tail.data, bytes 64-79) shares "
                        "128-byte cache lines with 'dev' (bytes 0-7), 'flags' (bytes 8-11); align "
                        "and pad it to ARCH_DMA_MINALIGN or allocate it on its own [DMA024]\n")


def test_no_file_is_a_usage_error():
    r = CliRunner().invoke(main, ["kbuild", "-O2", "-Wall"])
    assert (r.exit_code, r.stderr) == (2, "dmalint kbuild: error: no C file in the arguments\n")


def test_unreadable_file_is_reported_but_exit_0(tree):
    r = CliRunner().invoke(main, ["kbuild", "-O2", "drv/missing.c"])
    assert (r.exit_code, r.stderr) == (0, "drv/missing.c: error: dmalint: no such file or directory\n")
