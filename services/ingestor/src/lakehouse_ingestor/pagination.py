"""Walking the pages of one query: page numbers, next links, cursors, or a single page.

A :class:`Paginator` turns a query (URL and parameters) into the first page's request and, given
a page's parsed document, the next page's request or None. Fields are dotted paths
(``links.next``, ``meta.cursor``; a number indexes a list), looked up by :func:`lookup`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from lakehouse_common.contracts import (
    CursorPagination,
    NextLinkPagination,
    NoPagination,
    PageNumberPagination,
)

_MISSING = object()


def lookup(doc: Any, path: str) -> Any:
    """The value at a dotted ``path`` in a parsed JSON document, or None when any step is missing."""
    node = doc
    for part in path.split("."):
        if isinstance(node, dict):
            node = node.get(part, _MISSING)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
        if node is _MISSING:
            return None
    return node


class PageShapeError(ValueError):
    """A page lacks what the pagination needs (an items list, an integer count)."""


@dataclass(frozen=True)
class PageRequest:
    url: str
    params: tuple[tuple[str, str], ...]
    number: int


class Paginator(ABC):
    items_field: str | None

    def first(self, url: str, params: tuple[tuple[str, str], ...]) -> PageRequest:
        return PageRequest(url, params, 0)

    @abstractmethod
    def next(self, request: PageRequest, doc: Any) -> PageRequest | None:
        """The request of the page after ``request`` (whose answer is ``doc``), or None at the end."""

    def items(self, doc: Any) -> list[Any] | None:
        """The page's items (None when the pagination names no items field)."""
        if self.items_field is None:
            return None
        found = lookup(doc, self.items_field)
        if not isinstance(found, list):
            kind = "missing" if found is None else type(found).__name__
            raise PageShapeError(f"the page has no list at {self.items_field!r} ({kind})")
        return found

    def found(self, doc: Any) -> int | None:
        """How many results the whole query has, when the API says."""
        return None


def _int_at(doc: Any, path: str | None) -> int | None:
    if path is None:
        return None
    value = lookup(doc, path)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise PageShapeError(f"{path!r} must be an integer, got {value!r}")
    return int(value)


def _without(params: tuple[tuple[str, str], ...], *names: str) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in params if k not in names)


class SinglePage(Paginator):
    def __init__(self, spec: NoPagination) -> None:
        self.items_field = spec.items_field

    def next(self, request: PageRequest, doc: Any) -> PageRequest | None:
        return None


class PageNumbers(Paginator):
    """``page``/``per_page`` parameters; stops at ``pages``, at an empty or short page, or at the cap."""

    def __init__(self, spec: PageNumberPagination) -> None:
        self.spec = spec
        self.items_field = spec.items_field

    @property
    def reachable(self) -> int | None:
        return self.spec.reachable

    @property
    def max_pages(self) -> int | None:
        return None if self.spec.max_results is None else self.spec.max_results // self.spec.per_page

    def _request(self, url: str, params: tuple[tuple[str, str], ...], number: int) -> PageRequest:
        spec = self.spec
        base = _without(params, spec.page_param, spec.per_page_param)
        paged = (*base, (spec.page_param, str(spec.first_page + number)), (spec.per_page_param, str(spec.per_page)))
        return PageRequest(url, paged, number)

    def first(self, url: str, params: tuple[tuple[str, str], ...]) -> PageRequest:
        return self._request(url, params, 0)

    def found(self, doc: Any) -> int | None:
        return _int_at(doc, self.spec.found_field)

    def pages(self, doc: Any) -> int | None:
        """How many pages this query has for the client, the cap applied."""
        pages = _int_at(doc, self.spec.pages_field)
        found = self.found(doc)
        if pages is None and found is not None:
            pages = math.ceil(found / self.spec.per_page)
        if pages is not None and self.max_pages is not None:
            pages = min(pages, self.max_pages)
        return pages

    def next(self, request: PageRequest, doc: Any) -> PageRequest | None:
        items = self.items(doc) or []
        number = request.number + 1
        pages = self.pages(doc)
        if not items:
            return None
        if pages is not None and number >= pages:
            return None
        if pages is None and len(items) < self.spec.per_page:
            return None
        if self.max_pages is not None and number >= self.max_pages:
            return None
        return self._request(request.url, request.params, number)


class NextLinks(Paginator):
    def __init__(self, spec: NextLinkPagination) -> None:
        self.spec = spec
        self.items_field = spec.items_field

    def next(self, request: PageRequest, doc: Any) -> PageRequest | None:
        link = lookup(doc, self.spec.next_field)
        if link is None or link == "":
            return None
        if not isinstance(link, str):
            raise PageShapeError(f"{self.spec.next_field!r} must be a URL string, got {link!r}")
        # The link carries the whole query; resolve a relative one against the page it came from.
        return PageRequest(urljoin(request.url, link), (), request.number + 1)


class Cursors(Paginator):
    def __init__(self, spec: CursorPagination) -> None:
        self.spec = spec
        self.items_field = spec.items_field

    def first(self, url: str, params: tuple[tuple[str, str], ...]) -> PageRequest:
        return PageRequest(url, _without(params, self.spec.cursor_param), 0)

    def next(self, request: PageRequest, doc: Any) -> PageRequest | None:
        if self.spec.has_more_field is not None and not lookup(doc, self.spec.has_more_field):
            return None
        cursor = lookup(doc, self.spec.cursor_field)
        if cursor is None or cursor == "":
            return None
        if isinstance(cursor, (dict, list)):
            raise PageShapeError(f"{self.spec.cursor_field!r} must be a string or a number, got {cursor!r}")
        params = (*_without(request.params, self.spec.cursor_param), (self.spec.cursor_param, str(cursor)))
        return PageRequest(request.url, params, request.number + 1)


def paginator_for(spec: NoPagination | PageNumberPagination | NextLinkPagination | CursorPagination) -> Paginator:
    if isinstance(spec, PageNumberPagination):
        return PageNumbers(spec)
    if isinstance(spec, NextLinkPagination):
        return NextLinks(spec)
    if isinstance(spec, CursorPagination):
        return Cursors(spec)
    return SinglePage(spec)
