"""``python -m retrieval index PATH --out DIR [--watch]`` and ``python -m retrieval search DIR "query"``.

Index a codebase or a folder of documents (``.gitignore`` honoured; a second run re-embeds
only the chunks whose text changed; ``--watch`` keeps doing so as files change), then search
it like grep with meaning: each hit prints as ``path:line  Class.method  score`` and a few lines
of the unit's signature and doc (:mod:`retrieval.codebase.hits`), or as JSON lines with
``--json``; ``--path/--lang/--kind/--code-only/--grep`` filter inside the search
(:mod:`retrieval.codebase.search`).
"""

from __future__ import annotations

import json
import sys

from retrieval.cli import TRUST_HELP, add_workers_arguments
from retrieval.codebase.files import MAX_BYTES


def add_index_arguments(index) -> None:
    index.add_argument("path", metavar="PATH", help="the folder to index")
    index.add_argument("--out", required=True, metavar="DIR", help="index folder: created, or updated when it already indexes PATH (replaced atomically)")
    index.add_argument("--model", default=None, help="sentence-transformers hub id or local folder (a PyLate ColBERT model with --multi-vector); default: the offline all-MiniLM-L6-v2, or the model of the existing index")
    index.add_argument("--multi-vector", action="store_const", const=True, default=None, help="ColBERT token vectors in the multi-vector FAISS index instead of one vector per chunk (a plain encoder gets PyLate's untrained projection)")
    index.add_argument("--index", default=None, metavar="FACTORY", help='single-vector FAISS factory string: Flat (exact, default), HNSW32, "IVF256,Flat" ...; may change between runs without re-embedding')
    index.add_argument("--dtype", default=None, choices=["auto", "float32", "bfloat16", "float16"], help="model weights dtype; auto = bf16 where the hardware runs it natively (default: auto, or the existing index's)")
    index.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    index.add_argument("--max-length", type=int, default=None, metavar="TOKENS", help="chunk length in tokens, title included (default and maximum: the model's maximum length)")
    index.add_argument("--batch-size", type=int, default=None, help="maximum chunks per encoding batch (default: 256 single-vector, 32 ColBERT; also capped by a token budget)")
    index.add_argument("--exclude", action="append", default=None, metavar="PATTERN", help="gitignore-style pattern relative to PATH to leave out, e.g. site-packages/ (repeatable; default: the existing index's)")
    index.add_argument("--max-file-size", type=int, default=None, metavar="BYTES", help=f"skip larger files as too-large (default: {MAX_BYTES:,})")
    index.add_argument("--rebuild", action="store_true", help="ignore the existing index in --out and embed everything again; settings not given keep their previous values, and model, --multi-vector, dtype and length may change")
    index.add_argument("--watch", action="store_true", help="after indexing, keep watching PATH and update the index whenever files change (only chunks whose text changed are re-embedded); Ctrl-C stops")
    index.add_argument("--interval", type=float, default=1.0, metavar="SECONDS", help="with --watch: seconds between looks at the files (default: 1)")
    add_workers_arguments(index, "chunks")
    index.add_argument("--quiet", action="store_true", help="no progress bars (and with --watch, no line per update)")
    index.add_argument("--trust-remote-code", action="store_true", help=TRUST_HELP)


def add_search_arguments(search) -> None:
    search.add_argument("index_dir", metavar="DIR", help="index folder written by 'python -m retrieval index'")
    search.add_argument("query", help="what to look for, in words or code")
    search.add_argument("-k", "--top-k", type=int, default=10, help="number of hits at most (default: 10); hits far below the best are left out unless --all")
    search.add_argument("--path", default=None, metavar="GLOB", help="only files matching this glob relative to the indexed folder ('src/**', '**/*.go'), or under this folder / this file ('retrieval/codebase')")
    search.add_argument("--lang", action="append", default=None, metavar="LANG", help="only chunks in these languages: python, go, markdown ... (repeatable or comma-separated)")
    search.add_argument("--kind", action="append", default=None, metavar="KIND", help="only chunks of these kinds: function, method, class, module, section ... (repeatable or comma-separated)")
    search.add_argument("--code-only", action="store_true", help="leave out prose (Markdown, reStructuredText, plain text): by default docs and code are ranked together")
    search.add_argument("--grep", default=None, metavar="REGEX", help="only chunks in which this Python regular expression matches, then ranked by meaning ('(?i)' for case-insensitive)")
    search.add_argument("--mode", default=None, choices=["dense", "lexical", "hybrid"], help="dense (the model), lexical (BM25 on identifier-split code tokens) or hybrid (both fused; default where the index has a lexical index)")
    search.add_argument("--json", action="store_true", help="one JSON object per hit and line (path, line, start_line, end_line, symbol, kind, language, score, snippet), for editors and agents")
    search.add_argument("--lines", type=int, default=3, metavar="N", help="lines of signature and doc shown under each hit (default: 3; 0: the header line only)")
    search.add_argument("--all", action="store_true", help="keep every hit up to -k, also those far below the best (and no 'no good match' line)")
    search.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    search.add_argument("--trust-remote-code", action="store_true", help=TRUST_HELP)
    search.add_argument("--server", default=None, metavar="URL", help="answer through the server at URL ('python -m retrieval serve DIR') instead of loading the model here")
    search.add_argument("--resident", action="store_true", help="answer through DIR's resident server, started when none runs (it keeps the model loaded and stops after 10 idle minutes); default: a running one is always used, and one is started when the command runs in a terminal")
    search.add_argument("--no-server", action="store_true", help="load the index and model in this process (6-9 s), even when DIR's resident server runs")


def add_command(commands) -> None:
    """The ``index`` and ``search`` subcommands."""
    index = commands.add_parser(
        "index",
        help="index the text files of a folder (again: only changed files are re-embedded)",
        description="Walk PATH (honouring .gitignore; binary, huge and non-UTF-8 files are skipped and counted), cut each "
        "file by its language structure (Python definitions, Markdown sections, line windows otherwise) into chunks "
        "of at most the model's length, embed them and save the index in --out. Run it again to bring the index up "
        "to date: unchanged files are not re-embedded, and every setting not given keeps its previous value.",
    )
    add_index_arguments(index)
    index.set_defaults(run=run_index)
    search = commands.add_parser(
        "search", help="search an index built by 'index'",
        description="Print the best chunks for a query as 'path:line  Class.method  score' followed by a few lines of "
        "the unit's signature and doc (--json: one JSON object per hit). Filters apply inside the search. When even "
        "the best hit scores low, a 'no good match' line goes to stderr.")
    add_search_arguments(search)
    search.set_defaults(run=run_search)


def run_index(args) -> int:
    from retrieval.codebase.index import index_codebase

    options = dict(
        model=args.model, multi_vector=args.multi_vector, index=args.index, dtype=args.dtype,
        device=args.device, max_length=args.max_length, batch_size=args.batch_size, exclude=args.exclude,
        max_file_bytes=args.max_file_size, rebuild=args.rebuild, show_progress=not args.quiet,
        trust_remote_code=args.trust_remote_code, workers=args.workers, ray_address=args.ray_address,
    )
    if args.watch:
        return _watch(args, options)
    print(index_codebase(args.path, args.out, **options).summary())
    return 0


def _watch(args, options: dict) -> int:
    """``index --watch``: the first pass's summary, then one line per update, until Ctrl-C."""
    import time

    from retrieval.codebase.watch import watch_codebase

    if args.interval <= 0:
        raise ValueError(f"--interval must be positive, not {args.interval}")
    first = []

    def report(r) -> None:
        if not first:
            first.append(r)
            print(r.summary(), f"\nwatching {args.path} (Ctrl-C stops)", flush=True)
        elif not args.quiet:
            print(f"{time.strftime('%H:%M:%S')} {r.summary().splitlines()[0]}", flush=True)

    try:
        watch_codebase(args.path, args.out, interval=args.interval, on_update=report, **{**options, "show_progress": False})
    except KeyboardInterrupt:
        print(f"stopped; the index at {args.out} is current as of the last update")
    return 0


def run_search(args) -> int:
    from retrieval.codebase.search import run_query, where_filter
    from retrieval.service.resident import outer_description, pick_server

    if args.top_k < 1:
        raise ValueError(f"-k must be at least 1, not {args.top_k}")
    if args.lines < 0:
        raise ValueError(f"--lines must be 0 or more, not {args.lines}")
    if args.no_server and (args.server or args.resident):
        raise ValueError("--no-server contradicts --server and --resident")
    url = None if args.no_server else pick_server(args.index_dir, server=args.server, start=args.resident or None,
                                                  device=args.device, trust_remote_code=args.trust_remote_code)
    if url is None:
        from retrieval.codebase.index import load_codebase  # torch and the model: only on this path

        retriever, manifest = load_codebase(args.index_dir, device=args.device, trust_remote_code=args.trust_remote_code)
    else:  # a server keeps the model loaded: a repeated query costs one request, not a 6-9 s model load
        from retrieval.service.client import ServiceClient

        retriever, manifest = ServiceClient(url), outer_description(args.index_dir, "codebase.json")
    where = where_filter(retriever, path=args.path, lang=args.lang, kind=args.kind, code_only=args.code_only, grep=args.grep)
    hits, warning, _ = run_query(retriever, args.query, args.top_k, mode=args.mode, where=where, floor=not args.all)
    print_hits(args, hits, manifest["root"], warning)
    return 0


def print_hits(args, hits, root, warning: str | None) -> None:
    """The hits as ``--json`` lines or as text blocks; the warning (no good match) on stderr."""
    from retrieval.codebase.hits import format_hit, hit_record

    if warning:
        print(warning, file=sys.stderr)
    for hit in hits:
        print(json.dumps(hit_record(hit, root, max(args.lines, 1)), ensure_ascii=False) if args.json else format_hit(hit, root, lines=args.lines))
