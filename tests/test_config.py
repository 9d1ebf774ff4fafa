"""Configuration: finding the file, rule selection, severities, macros, include dirs, the
granule, excluded paths, validation errors, and the cache key."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from dmalint.cache import tool_key
from dmalint.cli import main
from dmalint.config import Config, find_config_file, load_config, read_config
from dmalint.contracts.loader import load_registry
from dmalint.runner import default_cache_options
from dmalint.select import enabled_codes

# DMA001 on line 9 (foo_map), DMA009 on line 15 (foo_check).
TWO = """#include <linux/dma-mapping.h>

struct foo_priv {
	dma_addr_t x;
};

static void foo_map(struct device *dev, struct foo_priv *p, void *buf)
{
	p->x = dma_map_single(dev, buf, 64, DMA_TO_DEVICE);
}

static int foo_check(struct device *dev, struct foo_priv *p, void *buf)
{
	dma_addr_t dma = dma_map_single(dev, buf, 64, DMA_TO_DEVICE);
	if (!dma)
		return -EIO;
	p->x = dma;
	return 0;
}
"""
DMA001 = "9:2: error: 'p->x' from dma_map_single() at line 9 is stored in 'p->x' without a dma_mapping_error() check [DMA001]"
DMA009 = ("15:7: error: 'dma' does not detect a failed dma_map_single() (line 14): a failed "
          "mapping is DMA_MAPPING_ERROR, not 0; test it with dma_mapping_error() [DMA009]")

# The struct of fixtures/memory/granule128.c in a header of another directory: DMA024 needs
# both the header (include-dirs) and a 128-byte granule.
GRANULE_HEADER = """struct g_tail {
	struct device *dev;
	u32 flags;
	u8 data[16] ____cacheline_aligned;
};
"""
GRANULE_C = """#include <linux/dma-mapping.h>
#include "g.h"

static int g_tail_bad(struct g_tail *p)
{
	dma_addr_t dma = dma_map_single(p->dev, p->data, sizeof(p->data), DMA_FROM_DEVICE);

	if (dma_mapping_error(p->dev, dma))
		return -ENOMEM;
	dma_unmap_single(p->dev, dma, sizeof(p->data), DMA_FROM_DEVICE);
	return 0;
}
"""
DMA024 = ("src/g.c:6:19: warning: 'p->data' (g_tail.data, bytes 64-79) shares 128-byte cache "
          "lines with 'dev' (bytes 0-7), 'flags' (bytes 8-11); align and pad it to "
          "ARCH_DMA_MINALIGN or allocate it on its own [DMA024]")


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A repository root (.git bounds the search) holding drv/two.c; cwd is the root."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "drv").mkdir()
    (tmp_path / "drv" / "two.c").write_text(TWO)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def check(*args: str):
    return CliRunner().invoke(main, ["check", "-j", "1", "--no-cache", *args])


def lines(r) -> list[str]:
    return r.stdout.splitlines()


# --- finding the file ------------------------------------------------------------------------

def test_found_by_walking_up_from_the_first_path(tree):
    (tree / ".dmalint.toml").write_text('ignore = ["DMA009"]\n')
    assert find_config_file(tree / "drv" / "two.c") == tree / ".dmalint.toml"
    r = check("drv/two.c")
    assert (r.exit_code, lines(r)) == (1, [f"drv/two.c:{DMA001}"])


def test_search_stops_at_the_repository_root(tree):
    (tree.parent / ".dmalint.toml").write_text('ignore = ["ALL"]\n')  # outside the repository
    try:
        assert find_config_file(tree / "drv") is None
        assert lines(check("drv")) == [f"drv/two.c:{DMA001}", f"drv/two.c:{DMA009}"]
    finally:
        (tree.parent / ".dmalint.toml").unlink()


def test_pyproject_tool_table_and_precedence(tree):
    (tree / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.dmalint]\n'
                                        'select = ["DMA009"]\n')
    assert find_config_file(tree / "drv") == tree / "pyproject.toml"
    assert lines(check("drv")) == [f"drv/two.c:{DMA009}"]
    # A pyproject.toml without [tool.dmalint] is passed over; .dmalint.toml wins in one directory.
    (tree / "drv" / "pyproject.toml").write_text('[project]\nname = "y"\n')
    assert find_config_file(tree / "drv") == tree / "pyproject.toml"
    (tree / ".dmalint.toml").write_text('select = ["DMA001"]\n')
    assert find_config_file(tree / "drv") == tree / ".dmalint.toml"


def test_explicit_config_and_isolated(tree):
    (tree / ".dmalint.toml").write_text('select = ["DMA001"]\n')
    (tree / "other.toml").write_text('select = ["DMA009"]\n')
    assert lines(check("--config", "other.toml", "drv")) == [f"drv/two.c:{DMA009}"]
    assert lines(check("--isolated", "drv")) == [f"drv/two.c:{DMA001}", f"drv/two.c:{DMA009}"]
    r = check("--config", "missing.toml", "drv")
    assert (r.exit_code, r.stderr) == (2, "dmalint: error: missing.toml: no such configuration file\n")
    r = check("--config", "other.toml", "--isolated", "drv")
    assert (r.exit_code, r.stderr) == (2, "dmalint: error: --config and --isolated exclude each other\n")


# --- rule selection and severities ------------------------------------------------------------

def test_selectors_by_code_name_group_and_prefix():
    reg = load_registry()
    assert enabled_codes([(("unchecked-dma-mapping",), ())], reg) == {"DMA001"}
    assert enabled_codes([(("DMA00",), ("DMA001", "DMA002"))], reg) == \
        {"DMA003", "DMA004", "DMA005", "DMA006", "DMA007", "DMA008", "DMA009"}
    assert enabled_codes([(("pool",), ())], reg) == {"DMA013", "DMA014"}
    # The more specific selector wins within a layer, whichever list it is in.
    assert enabled_codes([(("DMA001",), ("streaming",))], reg) == {"DMA001"}
    # A later layer's select starts again; its ignore alone only removes.
    assert enabled_codes([(("DMA001",), ()), (("DMA009",), ())], reg) == {"DMA009"}
    assert enabled_codes([(("DMA001", "DMA009"), ()), (None, ("DMA009",))], reg) == {"DMA001"}


def test_flags_override_the_file(tree):
    (tree / ".dmalint.toml").write_text('select = ["DMA001"]\n')
    assert lines(check("--select", "invalid-mapping-error-test", "drv")) == [f"drv/two.c:{DMA009}"]
    assert lines(check("--select", "DMA001,DMA009", "--ignore", "DMA001", "drv")) == \
        [f"drv/two.c:{DMA009}"]
    r = check("--ignore", "DMA001", "drv")
    assert (r.exit_code, r.stdout) == (0, "")


def test_severity_overrides(tree):
    (tree / ".dmalint.toml").write_text('[severity]\nunchecked-dma-mapping = "note"\n'
                                        'streaming = "warning"\n')
    assert lines(check("drv")) == [f"drv/two.c:{DMA001.replace('error', 'note', 1)}",
                                   f"drv/two.c:{DMA009.replace('error', 'warning', 1)}"]
    data = json.loads(check("--format", "json", "drv").stdout)
    assert [(f["code"], f["severity"]) for f in data["findings"]] == \
        [("DMA001", "note"), ("DMA009", "warning")]


# --- what the analysis sees: macros, include dirs, the granule -------------------------------

def test_macro_tables_extend_the_builtin_ones(tree):
    (tree / "drv" / "two.c").unlink()
    (tree / "drv" / "m.c").write_text(
        "static void m(struct device *dev, struct foo_priv *p, void *buf)\n"
        "{\n"
        "\tmydrv_each_slot(p, i) {\n"
        "\t\tp->x = dma_map_single(dev, buf, 64, DMA_TO_DEVICE);\n"
        "\t}\n"
        "}\n")
    assert lines(check("drv")) == []
    (tree / ".dmalint.toml").write_text('[macros]\niterators = ["mydrv_each_slot"]\n')
    assert lines(check("drv")) == [
        "drv/m.c:4:3: error: 'p->x' from dma_map_single() at line 4 is stored in 'p->x' "
        "without a dma_mapping_error() check [DMA001]"]


def test_user_string_functions(tree):
    (tree / "drv" / "two.c").unlink()
    (tree / "drv" / "s.c").write_text(
        "static void s(struct device *dev, struct foo_priv *p, void *buf)\n"
        "{\n"
        "\tlog(\"at \" MYDRV_STR(__LINE__) \": map\");\n"
        "\tp->x = dma_map_single(dev, buf, 64, DMA_TO_DEVICE);\n"
        "}\n")
    assert "function s() not analysed" in check("drv").stderr
    (tree / ".dmalint.toml").write_text('[macros]\nstring_functions = ["MYDRV_STR"]\n')
    assert lines(check("drv")) == [
        "drv/s.c:4:2: error: 'p->x' from dma_map_single() at line 4 is stored in 'p->x' "
        "without a dma_mapping_error() check [DMA001]"]


def test_include_dirs_and_granule(tree):
    (tree / "inc").mkdir()
    (tree / "inc" / "g.h").write_text(GRANULE_HEADER)
    (tree / "src").mkdir()
    (tree / "src" / "g.c").write_text(GRANULE_C)
    assert check("--dma-granule", "128", "src").stdout == ""  # the header is not found
    (tree / ".dmalint.toml").write_text('include-dirs = ["inc"]\ndma-granule = 128\n')
    assert lines(check("src")) == [DMA024]
    assert check("--dma-granule", "64", "src").stdout == ""  # the flag wins over the file
    r = check("--dma-granule", "100", "src")
    assert r.exit_code == 2 and "100 is not a power of two >= 8" in r.stderr


def test_cache_key_includes_the_configuration(tree, tmp_path):
    plain = tool_key(default_cache_options(Config()))
    assert tool_key(default_cache_options(Config(dma_granule=128))) != plain
    assert tool_key(default_cache_options(Config(macros={"iterators": ["x"]}))) != plain
    assert tool_key(default_cache_options(Config(include_dirs=("/inc",)))) != plain
    # End to end: a cached run at granule 64 does not answer a run at 128.
    (tree / "inc").mkdir()
    (tree / "inc" / "g.h").write_text(GRANULE_HEADER)
    (tree / "src").mkdir()
    (tree / "src" / "g.c").write_text(GRANULE_C)
    (tree / ".dmalint.toml").write_text('include-dirs = ["inc"]\n')
    cached = ["check", "-j", "1", "--cache-dir", str(tmp_path / "cache"), "src"]
    assert CliRunner().invoke(main, cached).stdout == ""
    (tree / ".dmalint.toml").write_text('include-dirs = ["inc"]\ndma-granule = 128\n')
    assert CliRunner().invoke(main, cached).stdout.splitlines() == [DMA024]


# --- excluded paths --------------------------------------------------------------------------

def test_exclude_patterns(tree):
    (tree / "drv" / "sub").mkdir()
    (tree / "drv" / "sub" / "two.c").write_text(TWO)
    (tree / "drv" / "two_test.c").write_text(TWO)
    (tree / ".dmalint.toml").write_text('select = ["DMA001"]\nexclude = ["drv/sub/", "*_test.c"]\n')
    assert lines(check("drv")) == [f"drv/two.c:{DMA001}"]
    # A file named explicitly is excluded too (pre-commit and kbuild name files).
    assert lines(check("drv/two_test.c", "drv/sub/two.c")) == []
    cfg = read_config(tree / ".dmalint.toml")
    assert cfg.is_excluded(tree / "drv" / "sub")
    assert cfg.is_excluded(tree / "drv" / "sub" / "deeper" / "x.c")
    assert cfg.is_excluded(tree / "a" / "b_test.c")
    assert not cfg.is_excluded(tree / "drv" / "two.c")
    assert not cfg.is_excluded(tree.parent / "drv" / "sub" / "x.c")  # outside the config's tree


def test_jobs_and_file_timeout_are_read(tree):
    (tree / ".dmalint.toml").write_text("jobs = 1\nfile-timeout = 0\n")
    cfg = load_config(["drv"])
    assert (cfg.jobs, cfg.file_timeout) == (1, 0.0)
    assert cfg.with_flags(jobs=2).jobs == 2


# --- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ('select = ["DMA001"]\ndma_granule = 128\n',
     ".dmalint.toml:2: unknown key 'dma_granule' (did you mean 'dma-granule'?); known keys: "
     "select, ignore, severity, macros, include-dirs, dma-granule, page-size, exclude, "
     "file-timeout, jobs"),
    ('ignore = [\n  "DMA001",\n  "DMA999",\n]\n',
     ".dmalint.toml:3: ignore: 'DMA999' matches no rule (see 'dmalint rules')"),
    ('select = ["no-such-rule"]\n',
     ".dmalint.toml:1: select: unknown rule 'no-such-rule': expected a code (DMA001), a code "
     "prefix (DMA00), a rule name (unchecked-dma-mapping), a group (coherent, memory, pool, "
     "scatter-gather, streaming, sync) or ALL"),
    ('[severity]\nDMA001 = "fatal"\n',
     ".dmalint.toml:2: severity of 'DMA001' must be one of error, warning, note, not 'fatal'"),
    ('dma-granule = 100\n', ".dmalint.toml:1: 'dma-granule' must be a power of two >= 8, not 100"),
    ('page-size = "4k"\n', ".dmalint.toml:1: 'page-size' must be a power of two >= 1024, not '4k'"),
    ('jobs = 0\n', ".dmalint.toml:1: 'jobs' must be an integer >= 1, not 0"),
    ('file-timeout = -1\n', ".dmalint.toml:1: 'file-timeout' must be a number of seconds >= 0 (0: no limit)"),
    ('exclude = "build"\n', ".dmalint.toml:1: 'exclude' must be a list of strings"),
    ('include-dirs = ["nope"]\n', ".dmalint.toml:1: include-dirs: 'nope' is not a directory (relative to {root})"),
    ('[macros]\nattributs = ["__x"]\n',
     ".dmalint.toml:2: unknown key 'macros.attributs'; known keys: attributes, "
     "attribute_functions, iterators, declarators, iterator_cursors, string_functions"),
    ('select = []\njobs = = 1\n', ".dmalint.toml:2: invalid TOML: Invalid value"),
])
def test_bad_files_are_one_clear_line_and_exit_2(tree, text, message):
    (tree / ".dmalint.toml").write_text(text)
    r = check("drv")
    assert r.exit_code == 2
    assert r.stdout == ""
    assert r.stderr == f"dmalint: error: {message.format(root=tree)}\n"


def test_bad_pyproject_table_names_the_line_in_pyproject(tree):
    (tree / "pyproject.toml").write_text('[project]\nname = "x"\nselect = 1\n\n[tool.dmalint]\n'
                                        'select = 1\n')
    r = check("drv")
    assert (r.exit_code, r.stderr) == (2, "dmalint: error: pyproject.toml:6: 'select' must be a list of strings\n")


def test_bad_flag_selector(tree):
    r = check("--ignore", "DMA001,bogus", "drv")
    assert r.exit_code == 2
    assert r.stderr.startswith("dmalint: error: --ignore: unknown rule 'bogus': expected a code")


def test_cache_sees_a_changed_header_of_the_include_dirs(tree, tmp_path):
    (tree / "inc").mkdir()
    (tree / "inc" / "g.h").write_text(GRANULE_HEADER)
    (tree / "src").mkdir()
    (tree / "src" / "g.c").write_text(GRANULE_C)
    (tree / ".dmalint.toml").write_text('include-dirs = ["inc"]\ndma-granule = 128\n')
    cached = ["check", "-j", "1", "--cache-dir", str(tmp_path / "cache"), "src"]
    assert CliRunner().invoke(main, cached).stdout.splitlines() == [DMA024]
    # The buffer moves to its own 128-byte line: the cached finding must not come back.
    (tree / "inc" / "g.h").write_text(GRANULE_HEADER.replace("____cacheline_aligned",
                                                             "__aligned(128)"))
    assert CliRunner().invoke(main, cached).stdout == ""
