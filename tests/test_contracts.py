"""Contracts and the registry load, validate, and report malformed files with path and line."""

from __future__ import annotations

import pytest

from dmalint.contracts.errors import RuleFileError
from dmalint.contracts.loader import load_contracts, load_registry, parse_contract_file, parse_registry


def test_builtin_rules_load():
    c = load_contracts()
    assert c.acquires["skb_frag_dma_map"].family == "page"
    assert c.releases["dma_unmap_page"].args["handle"] == 1
    assert c.constants["DMA_FROM_DEVICE"] == 2
    reg = load_registry()
    assert reg.by_code("DMA001").name == "unchecked-dma-mapping"
    assert reg.lookup("double-unmap").code == "DMA007"


def _into():
    return {"acquires": {}, "releases": {}, "checks": {}, "syncs": {}, "constants": {},
            "mmaps": {}, "buffers": {}, "cookie": None}


def test_adding_a_wrapper_is_a_data_change():
    into = _into()
    parse_contract_file("rules/api-ib.toml", """
family = "ib"
[[acquire]]
function = "ib_dma_map_single"
family = "single"
debug_type = "single"
args = { device = 0, cpu = 1, size = 2, direction = 3 }
""", into)
    assert into["acquires"]["ib_dma_map_single"].args["size"] == 2


def test_unknown_role_reports_line():
    text = 'family = "x"\n\n[[acquire]]\nfunction = "m"\nfamily = "single"\ndebug_type = "single"\nargs = { device = 0, bogus = 1 }\n'
    with pytest.raises(RuleFileError) as exc:
        parse_contract_file("rules/api-x.toml", text, _into())
    assert exc.value.line == 4 and "bogus" in exc.value.message
    assert str(exc.value).startswith("rules/api-x.toml:4:")


def test_toml_syntax_error_reports_line():
    with pytest.raises(RuleFileError) as exc:
        parse_contract_file("rules/api-y.toml", 'family = "y"\n[[acquire]\n', _into())
    assert exc.value.line == 2


def test_release_needs_handle():
    text = 'family = "x"\n[[release]]\nfunction = "u"\nfamily = "single"\ndebug_type = "single"\nargs = { device = 0 }\n'
    with pytest.raises(RuleFileError, match="'handle' or 'cpu'"):
        parse_contract_file("rules/api-x.toml", text, _into())


REG = """
[[diagnostic]]
code = "{code}"
name = "some-rule"
event = "leak"
severity = "warning"
confidence = "high"
group = "g"
summary = "s"
message = "{msg}"
[diagnostic.doc]
what = "w"
why = "y"
example = "e"
fix = "f"
"""


def test_registry_rejects_bad_code_and_unknown_fields():
    with pytest.raises(RuleFileError, match="DMA000"):
        parse_registry("r.toml", REG.replace("{code}", "DMA1").replace("{msg}", "m"))
    with pytest.raises(RuleFileError, match="does not carry"):
        parse_registry("r.toml", REG.replace("{code}", "DMA100").replace("{msg}", "{nonsense}"))
    ok = parse_registry("r.toml", REG.replace("{code}", "DMA100").replace("{msg}", "{handle} leaks"))
    assert ok.by_code("DMA100").message == "{handle} leaks"


def test_registry_docs_have_all_sections():
    for d in load_registry().diagnostics:
        assert d.doc.what and d.doc.why and d.doc.example and d.doc.fix


def test_cpu_view_is_declared_and_validated():
    c = load_contracts()
    assert c.acquires["dma_map_single"].cpu_view == "pointer"
    assert c.acquires["dma_map_page"].cpu_view == ""  # a struct page *: stores to it are not the data
    assert c.core.cpu_copies["memcpy"] == ((0,), (1,))
    text = ('family = "x"\n[[acquire]]\nfunction = "m"\nfamily = "single"\ndebug_type = "single"\n'
            'cpu_view = "page"\nargs = { device = 0, cpu = 1 }\n')
    with pytest.raises(RuleFileError, match="cpu_view") as exc:
        parse_contract_file("rules/api-x.toml", text, _into())
    assert exc.value.line == 3


def test_cpu_copies_must_list_indices():
    from dmalint.contracts.loader import parse_core
    with pytest.raises(RuleFileError, match="cpu_copies.memcpy"):
        parse_core("rules/core.toml", '[cpu_copies]\nmemcpy = { writes = ["dest"] }\n')
    assert parse_core("rules/core.toml", '[cpu_copies]\nmemset = { writes = [0] }\n') \
        .cpu_copies["memset"] == ((0,), ())


def test_member_macros_must_name_distinct_indices():
    from dmalint.contracts.loader import parse_core
    with pytest.raises(RuleFileError, match=r"member_stores.set_it must be \[object, member, value\]"):
        parse_core("rules/core.toml", "[member_stores]\nset_it = [0, 1]\n")
    with pytest.raises(RuleFileError, match="member_loads.get_it"):
        parse_core("rules/core.toml", "[member_loads]\nget_it = [1, 1]\n")
    core = parse_core("rules/core.toml", "[member_stores]\nset_it = [0, 1, 2]\n"
                                         "[member_loads]\nget_it = [0, 1]\n")
    assert core.member_stores == {"set_it": (0, 1, 2)} and core.member_loads == {"get_it": (0, 1)}


def test_buffer_may_name_several_arguments():
    c = load_contracts()
    assert c.buffers["usb_fill_control_urb"].args == (4, 3)  # data, then the setup packet
    assert c.buffers["usb_bulk_msg"].args == (2,)
    text = 'family = "x"\n[[buffer]]\nfunction = "f"\nargs = [1, "two"]\n'
    with pytest.raises(RuleFileError, match="'args'") as exc:
        parse_contract_file("rules/api-x.toml", text, _into())
    assert exc.value.line == 3


def test_each_family_names_its_own_check():
    """Messages name the check that tests the family's acquires: ib_dma_mapping_error() for
    the RDMA wrappers, dma_mapping_error() for every other family (a check listing no
    families)."""
    c = load_contracts()
    assert c.check_for("ib-single") == "ib_dma_mapping_error"
    assert c.check_for("ib-page") == "ib_dma_mapping_error"
    assert c.check_for("single") == "dma_mapping_error"
    assert c.check_for("page") == "dma_mapping_error"


def test_check_families_must_be_a_list_of_names():
    text = ('family = "x"\n[[check]]\nfunction = "x_mapping_error"\nfamilies = "x-single"\n'
            'args = { device = 0, handle = 1 }\n')
    with pytest.raises(RuleFileError, match="families must be a list") as exc:
        parse_contract_file("rules/api-x.toml", text, _into())
    assert exc.value.line == 3
