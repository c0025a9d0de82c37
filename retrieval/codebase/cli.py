"""``python -m retrieval index PATH --out DIR`` and ``python -m retrieval search DIR "query"``.

Index a codebase or a folder of documents (``.gitignore`` honoured; a second run re-embeds
only the files that changed), then search it: each hit prints as ``path:line  score  first
line``.
"""

from __future__ import annotations

from retrieval.cli import TRUST_HELP
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
    index.add_argument("--quiet", action="store_true", help="no progress bars")
    index.add_argument("--trust-remote-code", action="store_true", help=TRUST_HELP)


def add_search_arguments(search) -> None:
    search.add_argument("index_dir", metavar="DIR", help="index folder written by 'python -m retrieval index'")
    search.add_argument("query", help="what to look for, in words or code")
    search.add_argument("-k", "--top-k", type=int, default=10, help="number of hits (default: 10)")
    search.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    search.add_argument("--trust-remote-code", action="store_true", help=TRUST_HELP)


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
    search = commands.add_parser("search", help="search an index built by 'index'", description="Print the best chunks for a query as 'path:line  score  first line'.")
    add_search_arguments(search)
    search.set_defaults(run=run_search)


def run_index(args) -> int:
    from retrieval.codebase.index import index_codebase

    report = index_codebase(
        args.path, args.out, model=args.model, multi_vector=args.multi_vector, index=args.index, dtype=args.dtype,
        device=args.device, max_length=args.max_length, batch_size=args.batch_size, exclude=args.exclude,
        max_file_bytes=args.max_file_size, rebuild=args.rebuild, show_progress=not args.quiet,
        trust_remote_code=args.trust_remote_code,
    )
    print(report.summary())
    return 0


def run_search(args) -> int:
    from retrieval.codebase.index import format_hit, load_codebase

    if args.top_k < 1:
        raise ValueError(f"-k must be at least 1, not {args.top_k}")
    retriever, manifest = load_codebase(args.index_dir, device=args.device, trust_remote_code=args.trust_remote_code)
    for hit in retriever.search(args.query, k=args.top_k):
        print(format_hit(hit, manifest["root"]))
    return 0
