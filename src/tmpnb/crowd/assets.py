"""The static files a notebook page references, as a browser would fetch them: ``<script src>`` and
``<link href>`` under the visitor's own path, deduplicated and bounded."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

# <link rel> values a browser fetches while loading a page (not "canonical", "alternate", ...).
FETCHED_RELS = frozenset({"stylesheet", "icon", "shortcut", "preload", "modulepreload", "manifest"})


class _AssetParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): v for k, v in attrs if v}
        if tag == "script" and "src" in values:
            self.found.append(values["src"])
        elif tag == "link" and "href" in values:
            rels = set(values.get("rel", "").lower().split())
            if rels & FETCHED_RELS:
                self.found.append(values["href"])


def static_assets(page_html: str, page_url: str, user_path: str, limit: int = 50) -> list[str]:
    """Absolute URLs of the scripts and stylesheets of ``page_html`` that lie under ``user_path``
    on the page's own origin, in page order, without duplicates, at most ``limit`` of them."""
    parser = _AssetParser()
    parser.feed(page_html)
    parser.close()
    origin = urlsplit(page_url)
    urls: list[str] = []
    for ref in parser.found:
        absolute = urljoin(page_url, ref.strip())
        parts = urlsplit(absolute)
        if (parts.scheme, parts.netloc) != (origin.scheme, origin.netloc):
            continue  # another site: a crowd test never sends traffic there
        if not parts.path.startswith(user_path):
            continue
        absolute = parts._replace(fragment="").geturl()
        if absolute not in urls:
            urls.append(absolute)
        if len(urls) >= limit:
            break
    return urls
