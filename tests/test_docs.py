"""The documentation holds together: every relative link leads to a file, and every test a page cites exists."""

import re

import pytest

from conftest import REPO

PAGES = sorted([REPO / "README.md", REPO / "CONTRIBUTING.md", *(REPO / "docs").rglob("*.md")])
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_relative_link_leads_to_a_file(page):
    targets = [match.group(1) for match in LINK.finditer(page.read_text()) if "://" not in match.group(1)]
    missing = [target for target in targets if not (page.parent / target).exists()]
    assert not missing, f"{page.relative_to(REPO)} links to missing files: {missing}"


def test_every_test_a_page_cites_exists():
    defined = {match.group(1) for path in (REPO / "tests").glob("test_*.py")
               for match in re.finditer(r"^def (test_\w+)", path.read_text(), re.MULTILINE)}
    for page in PAGES:
        cited = set(re.findall(r"`(test_\w+)`", page.read_text()))
        assert cited <= defined, f"{page.relative_to(REPO)} cites tests that do not exist: {sorted(cited - defined)}"
