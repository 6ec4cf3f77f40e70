"""The demo page's text is readable: every pair of text and background colour it uses meets WCAG 2.x AA
(4.5:1), in the dark scheme and in the light one, computed from ``demo.css`` itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = (Path(__file__).parents[2] / "src" / "keyturn" / "server" / "demo" / "demo.css").read_text()
AA = 4.5

_RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")
_LIGHT = re.compile(r"@media\s*\(prefers-color-scheme:\s*light\)\s*\{((?:[^{}]*\{[^{}]*\})*)\s*\}")


def _declarations(body: str) -> dict[str, str]:
    pairs = (d.split(":", 1) for d in body.split(";") if ":" in d)
    return {name.strip(): value.strip() for name, value in pairs}


def rules(css: str) -> dict[str, dict[str, str]]:
    """Each selector (of a comma list, too) and its declarations, later rules adding to earlier ones."""
    found: dict[str, dict[str, str]] = {}
    for selectors, body in _RULE.findall(css):
        for selector in selectors.split(","):
            found.setdefault(" ".join(selector.split()), {}).update(_declarations(body))
    return found


def palette(scheme: str) -> dict[str, str]:
    """The custom properties in force in ``scheme``: the root's, and in light the media block's over them."""
    light = _LIGHT.search(CSS)
    assert light is not None, "demo.css has no light-scheme block"
    values = rules(_LIGHT.sub("", CSS))[":root"]
    if scheme == "light":
        values = {**values, **rules(light.group(1))[":root"]}
    return {k: v for k, v in values.items() if k.startswith("--")}


def colour(value: str, scheme: str) -> str:
    """A ``#rrggbb`` (or ``#rgb``) colour, with ``var(--x)`` resolved in ``scheme``."""
    while (var := re.fullmatch(r"var\((--[\w-]+)\)", value)) is not None:
        value = palette(scheme)[var.group(1)]
    if re.fullmatch(r"#[0-9a-fA-F]{3}", value):
        value = "#" + "".join(c * 2 for c in value[1:])
    assert re.fullmatch(r"#[0-9a-fA-F]{6}", value), f"not a colour this test reads: {value}"
    return value.lower()


def luminance(hex_colour: str) -> float:
    """WCAG 2.x relative luminance."""

    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


# (selector, the surface behind it when the rule sets no background of its own)
TEXT = [
    ("body", "var(--bg)"),
    (".tagline", "var(--bg)"),
    ("footer", "var(--bg)"),
    (".hint", "var(--card)"),
    ("label", "var(--card)"),
    ("input", None),
    ("button", None),
    ("button.quiet", "var(--card)"),
    ('button[aria-pressed="true"]', None),
    (".counts", "var(--card)"),
    (".badge.active", None),
    (".badge.degraded", None),
    (".badge.ended", None),
    (".badge.signed_out", None),
    (".gauge .label", "var(--card)"),
    ("#timeline time", "var(--card)"),
    ("#timeline .refreshed", "var(--card)"),
    ("#timeline .degraded", "var(--card)"),
    ("#timeline .session_ended", "var(--card)"),
    ("#timeline .failed", "var(--card)"),
    (".error", "var(--card)"),
    (".notice", None),
]


def pair(selector: str, surface: str | None) -> tuple[str, str]:
    """The text and background colour of ``selector``; inherited text colour is the page's."""
    declared = rules(_LIGHT.sub("", CSS))
    own = declared[selector]
    text = own.get("color") or declared["body"]["color"]
    background = own.get("background") or surface
    if background == "transparent":
        background = surface
    assert background is not None, f"{selector}: no background declared and none given"
    return text, background


@pytest.mark.parametrize("scheme", ["dark", "light"])
@pytest.mark.parametrize(("selector", "surface"), TEXT, ids=[s for s, _ in TEXT])
def test_text_meets_aa_contrast(selector: str, surface: str | None, scheme: str) -> None:
    """WCAG AA asks 4.5:1 for text; the dark scheme's buttons were 2.0:1 and its badges 2.5:1."""
    text, background = pair(selector, surface)

    ratio = contrast(colour(text, scheme), colour(background, scheme))

    assert ratio >= AA, f"{selector} in {scheme}: {ratio:.2f}:1"


def test_the_checker_measures_what_wcag_does() -> None:
    """Black on white is 21:1, white on white 1:1, and the old white-on-accent button failed."""
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#ffffff", "#ffffff") == pytest.approx(1.0)
    assert contrast("#ffffff", "#4cc2ff") < AA
