"""Language structure by tree-sitter: one engine for every language of :mod:`retrieval.chunking.grammars`.

:class:`TreeSitterLanguage` parses a file, runs its language's query (one C-level pass that
finds every definition, instead of a Python walk over every node: a walk visits each
expression of a large literal), and turns the captured definitions into the
:class:`~retrieval.chunking.units.Unit` tree the chunker cuts:

- nesting by byte ranges: a definition inside a container (class, struct, impl, namespace,
  key...) is its child, named ``Container.name``; one inside a function stays part of the
  function (as Python's ``ast`` chunker did: a closure is read with its parent); a function
  whose container is class-like is a ``method``; a Go method is named after its receiver
  (``Cache.Get``), C++'s ``Vec2::scale`` becomes ``Vec2.scale``;
- a definition's span starts at its decorators, its ``export``, its attributes and the doc
  comment right above it (no blank line between); the doc comment, cleaned of its markers
  (``/** * */``, ``///``, ``//``, ``#``, C#'s ``<summary>``), is the unit's docstring and
  is left out of its ``code``; Python's docstring is the string opening the body;
- the whole file is a ``module`` unit (``document`` for markup and data) whose children are
  the top-level definitions: the lines between them (imports, constants, top-level code) are
  grouped into the chunks between definitions by :func:`retrieval.chunking.structural.structural_chunks`.

Tree-sitter recovers from syntax errors; a file mostly made of error nodes (more than
:data:`MAX_ERROR_SHARE` of its bytes: another dialect, a template) raises
:class:`~retrieval.chunking.units.UnparsableError` so the caller falls back to line windows,
and ``units(text, strict=True)`` leaves out every definition with an error inside (the
code-set builder keeps only code that parses, as CodeSearchNet did; per definition rather
than per file, because glibc's macros leave an error somewhere in 63% of its ``string/``,
``stdlib/`` and ``libio/`` files).

:func:`line_levels` ranks every line by the depth of the syntax node that starts it, so the
chunker can cut a unit too long for the model between statements rather than inside one.

Parsers are not thread-safe, so each thread gets its own (:class:`threading.local`); the
compiled languages and queries are shared (read-only).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import textwrap
import threading
import warnings
from dataclasses import dataclass, field

import tree_sitter

from retrieval.chunking.grammars import ATTACHED, CLASSES, CONTAINERS, LANGUAGES, WRAPPERS
from retrieval.chunking.units import Unit, UnparsableError, split_lines, without_docstring

MAX_ERROR_SHARE = 0.5  # more of a file in error nodes than this: read it as plain text
NAME_NODES = ("identifier", "type_identifier", "simple_identifier", "constant", "name", "word", "field_identifier")
SIGNATURE_CHARS = 200
UNQUALIFIED = frozenset({"namespace", "media"})  # containers whose name does not prefix their members'


@dataclass
class _Def:
    """A captured definition while the tree is built."""

    node: tree_sitter.Node
    kind: str
    name: str
    children: list = field(default_factory=list)


def _last_row(node: tree_sitter.Node) -> int:
    """The 0-based last row of a node; one that ends with its newline (column 0) ends on the row before."""
    end = node.end_point
    return end.row - 1 if end.column == 0 and end.row > node.start_point.row else end.row


def _text(node: tree_sitter.Node) -> str:
    return node.text.decode("utf-8", errors="replace")


def _declarator_name(node: tree_sitter.Node) -> tree_sitter.Node | None:
    """A C/C++ function's name: the innermost ``declarator`` (``*f``, ``f(...)``, ``ns::f``)."""
    inner = node.child_by_field_name("declarator")
    while inner is not None and (deeper := inner.child_by_field_name("declarator")) is not None:
        inner = deeper
    return inner


def clean_name(text: str) -> str:
    """One line, ``::`` and ``\\`` as ``.``, generic parameters dropped (``Vec<T>`` -> ``Vec``)."""
    text = " ".join(text.split())
    text = re.sub(r"<[^<>]*>", "", re.sub(r"<[^<>]*>", "", text))  # two levels of nesting suffice for names
    return text.replace("::", ".").replace("\\", ".").strip(" \"'")


def clean_comment(texts: list[str]) -> str:
    """The text of a doc comment (one node per line comment, or one block) without its markers."""
    lines = []
    for text in texts:
        text = text.strip()
        if text.startswith("/*"):
            body = re.sub(r"\*+/$", "", re.sub(r"^/\*+!?", "", text))
            lines += [re.sub(r"^\s*\*(?!/) ?", "", line) for line in body.split("\n")]
        elif text.startswith("<!--"):
            lines += text.removeprefix("<!--").removesuffix("-->").split("\n")
        else:
            lines += [re.sub(r"^\s*(//[/!]?|#+|--) ?", "", line) for line in text.split("\n")]
    doc = inspect.cleandoc("\n".join(lines))
    if "<summary>" in doc:  # C# XML documentation: the summary is the description
        doc = inspect.cleandoc(doc.split("<summary>", 1)[1].split("</summary>", 1)[0])
    if "</" in doc or "/>" in doc:
        doc = re.sub(r"<see(also)? cref=\"([^\"]*)\"\s*/>", r"\2", doc)
        doc = re.sub(r"</?(para|c|code|b|i|p|br|remarks|returns|value)\s*/?>", "", doc)
    return doc.strip()


def line_levels(root: tree_sitter.Node, lines: list[str]) -> list[int]:
    """Per line, the depth of the shallowest named node that starts it (at its first non-blank column), 0 if none.

    The places to cut a unit too long for the model, best first: a function body's statements
    before the statements of a loop inside it, those before the arguments of a call spread over
    lines. A node that starts where its first child starts (a Python ``block``, a statement around
    a call) adds no depth. Only nodes spanning several lines are entered (a node on one line starts no later
    line), and no string or comment, so the walk costs about one visit per line.
    """
    indent = [len(line.encode("utf-8")) - len(line.lstrip().encode("utf-8")) for line in lines]
    levels = [0] * len(lines)
    stack = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        for child in node.named_children:
            row, end = child.start_point.row, child.end_point.row
            if row < len(levels) and child.start_point.column == indent[row] and not 0 < levels[row] <= depth + 1:
                levels[row] = depth + 1
            if end > row and "string" not in child.type and "comment" not in child.type:
                # a node that starts where its first child does (a Python block, a statement around a call)
                # adds no depth: the first statement of a body ranks with the statements after it
                first = child.named_child(0) if child.named_child_count else None
                stack.append((child, depth if first is not None and first.start_byte == child.start_byte else depth + 1))
    return levels


class TreeSitterLanguage:
    """A language of :data:`retrieval.chunking.grammars.LANGUAGES`, read by its tree-sitter grammar and query."""

    def __init__(self, name: str):
        spec = LANGUAGES[name]
        self.name = name
        self.extensions: tuple[str, ...] = spec["extensions"]
        module, function = spec["grammar"]
        self.language = tree_sitter.Language(getattr(importlib.import_module(module), function)())
        self.query = tree_sitter.Query(self.language, spec["query"])
        self.errors = tree_sitter.Query(self.language, "(ERROR) @error")
        self.doc = spec["doc"] if spec["doc"] in (None, "python") else re.compile(spec["doc"])
        self.root_kind = spec.get("root", "module")
        self.depth = spec.get("depth")
        self._local = threading.local()

    def _parse(self, data: bytes) -> tree_sitter.Tree:
        parser = getattr(self._local, "parser", None)
        if parser is None:
            parser = self._local.parser = tree_sitter.Parser(self.language)
        return parser.parse(data)

    def units(self, text: str, *, strict: bool = False) -> list[Unit]:
        """The module unit of ``text`` with its definitions as children (none for an empty file).

        Raises
        ------
        UnparsableError
            The file is mostly syntax errors.
        """
        text = text.replace("\r\n", "\n").replace("\r", "\n")  # tree-sitter rows end at \n only
        lines = split_lines(text)
        if not lines:
            return []
        data = text.encode("utf-8")
        root = self._parse(data).root_node
        if root.has_error:
            self._check_errors(root, len(data))
        top = self._definitions(root, skip_errors=strict)
        module_doc, doc_span, code = "", (), "\n".join(lines)
        if self.doc == "python" and (string := self._python_docstring(root)) is not None:
            module_doc, doc_span, code = self._python_doc_and_code(string, lines, 1, len(lines), dedent=False)
        children = tuple(self._unit(d, lines, "") for d in top)
        breaks = tuple(line_levels(root, lines))
        return [Unit(self.root_kind, "", 1, len(lines), module_doc, code, children, "", doc_span, breaks)]

    def _check_errors(self, root: tree_sitter.Node, size: int) -> None:
        spans = sorted((n.start_byte, n.end_byte) for n in tree_sitter.QueryCursor(self.errors).captures(root).get("error", []))
        covered, reach = 0, 0
        for start, end in spans:  # error nodes nest: count each byte once
            start = max(start, reach)
            if end > start:
                covered, reach = covered + end - start, end
        if size and covered / size > MAX_ERROR_SHARE:
            raise UnparsableError(f"not valid {self.name}: {100 * covered / size:.0f}% of the file is syntax errors")

    # -- definitions ---------------------------------------------------------------------------

    def _definitions(self, root: tree_sitter.Node, skip_errors: bool = False) -> list[_Def]:
        """The captured definitions as a forest: containers hold what they enclose, functions keep it."""
        found: dict[tuple[int, int, str], tuple[int, _Def]] = {}
        for pattern, captures in tree_sitter.QueryCursor(self.query).matches(root):
            kind = next(k for k in captures if k not in ("name", "receiver") and not k.startswith("_"))
            node = captures[kind][0]
            key = (node.start_byte, node.end_byte, node.type)
            if key in found and found[key][0] <= pattern:
                continue  # the first pattern that matches a node decides its kind (Go: struct before type)
            name = self._name(node, captures.get("name"), kind)
            if receiver := captures.get("receiver"):
                name = f"{clean_name(_text(receiver[0]))}.{name}"
            found[key] = (pattern, _Def(node, self._kind(node, kind), name))
        roots: list[_Def] = []
        stack: list[_Def] = []
        for d in sorted((d for _, d in found.values()), key=lambda d: (d.node.start_byte, -d.node.end_byte)):
            while stack and stack[-1].node.end_byte <= d.node.start_byte:
                stack.pop()
            parent = stack[-1] if stack else None
            if parent is not None and parent.kind not in CONTAINERS:
                continue  # inside a function: part of it
            if parent is not None and (_last_row(parent.node), parent.node.start_point.row) == (_last_row(d.node), d.node.start_point.row):
                continue  # the same lines as its container (``typedef struct s {...} s_t;``)
            if self.depth and len(stack) >= self.depth:
                continue
            if skip_errors and d.node.has_error:
                continue  # its lines stay in the unit around it
            if parent is not None and d.kind == "function" and parent.kind in CLASSES:
                d.kind = "method"
            (parent.children if parent else roots).append(d)
            stack.append(d)
        return roots

    @staticmethod
    def _kind(node: tree_sitter.Node, kind: str) -> str:
        """Swift's ``class_declaration`` holds structs, enums, extensions; Kotlin's holds interfaces."""
        declared = node.child_by_field_name("declaration_kind")
        if declared is not None:
            return _text(declared)
        if kind == "class" and any(c.type == "interface" for c in node.children):
            return "interface"
        return kind

    @staticmethod
    def _name(node: tree_sitter.Node, captured: list | None, kind: str) -> str:
        target = captured[0] if captured else node.child_by_field_name("name") or _declarator_name(node)
        if target is None:
            target = next((c for c in node.named_children if c.type in NAME_NODES), None)
        if target is None:
            return "init" if node.type == "init_declaration" else ""
        return clean_name(_text(target))

    # -- units ---------------------------------------------------------------------------------

    def _unit(self, d: _Def, lines: list[str], prefix: str) -> Unit:
        outer = d.node
        while (parent := outer.parent) is not None and parent.type in WRAPPERS and not any(
            c.type == outer.type and c != outer for c in parent.named_children
        ):
            outer = parent
        start, end = outer.start_point.row + 1, _last_row(outer) + 1
        while end > start and (not lines[end - 1].strip() or (self.doc == "python" and lines[end - 1].lstrip().startswith("#"))):
            end -= 1  # blank lines a TOML table owns; comments tree-sitter-python gives the block before them
        qualname = f"{prefix}{d.name}" if d.name else prefix.rstrip(".")
        inner = "" if d.kind in UNQUALIFIED else f"{qualname}." if qualname else prefix  # Class.method, not Ns.Class.method
        children = tuple(self._unit(c, lines, inner) for c in d.children)
        signature = self._signature(d.node)
        if self.doc == "python":
            string = self._python_docstring(d.node)
            if string is None:
                return Unit(d.kind, qualname, start, end, "", textwrap.dedent("\n".join(lines[start - 1 : end])), children, signature)
            doc, doc_span, code = self._python_doc_and_code(string, lines, start, end)
            return Unit(d.kind, qualname, start, end, doc, code, children, signature, doc_span)
        comments, first = self._doc_comments(outer)
        doc_rows = {r for c in comments for r in range(c.start_point.row, _last_row(c) + 1)}
        code = textwrap.dedent("\n".join(line for row, line in enumerate(lines[first - 1 : end], first - 1) if row not in doc_rows))
        docstring = clean_comment([_text(c) for c in comments]) if comments else ""
        doc_span = (comments[0].start_point.row + 1, _last_row(comments[-1]) + 1) if comments else ()
        return Unit(d.kind, qualname, min(first, start), end, docstring, code, children, signature, doc_span)

    def _doc_comments(self, node: tree_sitter.Node) -> tuple[list[tuple], int]:
        """The doc comment nodes right above ``node`` (with attributes between), and the unit's first line."""
        first = node.start_point.row
        comments = []
        while node.prev_named_sibling is None and node.parent is not None and node.parent.start_byte == node.start_byte:
            node = node.parent  # Ruby: a class body starts with its first definition; the comment is the body's sibling
        sibling = node.prev_named_sibling
        while sibling is not None and _last_row(sibling) >= first - 1:
            if sibling.type in ATTACHED:
                first = sibling.start_point.row
            elif "comment" in sibling.type and self.doc is not None and self.doc.match(_text(sibling).lstrip()):
                before = sibling.prev_sibling
                if before is not None and before.end_point.row == sibling.start_point.row and "comment" not in before.type:
                    break  # a trailing comment of the code before
                comments.insert(0, sibling)
                first = sibling.start_point.row
            else:
                break
            sibling = sibling.prev_named_sibling
        return comments, first + 1

    @staticmethod
    def _signature(node: tree_sitter.Node) -> str:
        """The header of a definition: its text up to its body, on one line."""
        body = node.child_by_field_name("body")
        end = body.start_byte if body is not None and body.start_byte > node.start_byte else None
        text = node.text[: end - node.start_byte] if end else node.text.split(b"\n", 1)[0]
        for child in node.children:  # a comment between the header and the body (Ruby) is not part of it
            if "comment" in child.type and (end is None or child.start_byte < end):
                text = text.replace(child.text, b"")
        header = " ".join(text.decode("utf-8", errors="replace").split()).rstrip("{:= ")
        return header[:SIGNATURE_CHARS]

    @staticmethod
    def _python_docstring(node: tree_sitter.Node) -> tree_sitter.Node | None:
        """The expression statement holding the docstring of a module, class or function, if any."""
        body = node if node.type == "module" else node.child_by_field_name("body")
        first = next((c for c in body.named_children if c.type != "comment"), None) if body is not None else None
        if first is None or first.type != "expression_statement" or first.named_child_count != 1:
            return None
        if first.named_children[0].type not in ("string", "concatenated_string"):
            return None
        return first

    @staticmethod
    def _python_doc_and_code(statement: tree_sitter.Node, lines: list[str], start: int, end: int,
                             dedent: bool = True) -> tuple[str, tuple[int, int], str]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # invalid escape sequences in old code
                value = ast.literal_eval(_text(statement))
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            value = None
        s, e = statement.start_point, statement.end_point
        kept = without_docstring(lines, start, end, (s.row + 1, s.column, e.row + 1, e.column))
        code = "\n".join(kept)
        if not isinstance(value, str):  # an f-string or bytes: not a docstring, as for Python itself
            code = "\n".join(lines[start - 1 : end])
            return "", (), textwrap.dedent(code) if dedent else code
        return inspect.cleandoc(value), (s.row + 1, e.row + 1), textwrap.dedent(code) if dedent else code


_CACHE: dict[str, TreeSitterLanguage] = {}
_LOCK = threading.Lock()


def tree_sitter_language(name: str) -> TreeSitterLanguage:
    """The language ``name`` of the table, built once (loading a grammar and compiling its query: milliseconds)."""
    with _LOCK:
        if name not in _CACHE:
            _CACHE[name] = TreeSitterLanguage(name)
        return _CACHE[name]
