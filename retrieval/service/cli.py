"""``python -m retrieval serve DIR``: the resident HTTP service over a saved retriever or an index folder.

Bound to 127.0.0.1 unless told otherwise; listening on any other address without ``--api-key``
is refused at start, because writes would then be open to the network. Heavy imports (torch,
FastAPI, uvicorn) happen in :func:`run_serve`, not when the command line is parsed, so every
other command (and the client side of ``search``) starts without them.
"""

from __future__ import annotations

import os
import sys

from retrieval.cli import TRUST_HELP
from retrieval.service.batching import MAX_BATCH


def add_serve_arguments(serve) -> None:
    serve.add_argument("folder", metavar="DIR", help="a folder saved by Retriever.save (served read-write) or written by 'python -m retrieval index' (read-only, reloaded when re-indexed)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only; any other needs --api-key)")
    serve.add_argument("--port", type=int, default=8765, help="TCP port; 0 picks a free one, written to the server record beside DIR (default: 8765)")
    serve.add_argument("--api-key", default=os.environ.get("RETRIEVAL_API_KEY"), help="key that writes (POST/DELETE /documents) must send as the X-API-Key header (default: $RETRIEVAL_API_KEY; required unless --host is loopback)")
    serve.add_argument("--idle-timeout", type=float, default=None, metavar="SECONDS", help="stop after this many seconds without a request (default: never)")
    serve.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    serve.add_argument("--quiet", action="store_true", help="log warnings only (no per-start banner)")
    serve.add_argument("--trust-remote-code", action="store_true", help=TRUST_HELP)
    serve.add_argument("--batch-queries", dest="batching", action="store_true", help="encode concurrent searches' queries in shared forward passes, one torch thread each, a pass per core at once (default: each search its own; measured: half the server CPU per search at 8-32 clients, queries/s x0.92-1.65 on a loaded 2-core machine, BENCHMARKS.md 'Resident service')")
    serve.add_argument("--batch-wait", type=float, default=0.0, metavar="MS", help="with --batch-queries: milliseconds a shared pass waits for more queries after the first (default: 0, only those already waiting)")
    serve.add_argument("--max-batch", type=int, default=MAX_BATCH, metavar="N", help=f"with --batch-queries: most queries per shared pass (default: {MAX_BATCH})")
    serve.add_argument("--batch-workers", type=int, default=None, metavar="N", help="with --batch-queries: shared passes that may run at once (default: one per core)")
    serve.add_argument("--threads", type=int, default=None, metavar="N", help="torch intra-op threads per forward pass (default: 1 with --batch-queries, else torch's, one per core)")


def add_command(commands) -> None:
    """The ``serve`` subcommand."""
    serve = commands.add_parser(
        "serve",
        help="serve a saved retriever or index folder over HTTP (model loaded once)",
        description="Load DIR once and answer POST /search, POST and DELETE /documents, GET /health and GET /stats "
        "(OpenAPI docs at /docs). Acknowledged writes survive a crash (write-ahead log beside DIR, replayed at start). "
        "'python -m retrieval search DIR ...' finds a running server through its record beside DIR.",
    )
    add_serve_arguments(serve)
    serve.set_defaults(run=run_serve)


def run_serve(args) -> int:
    from retrieval.service.folder import find_folder
    from retrieval.service.server import LOOPBACK, serve

    if args.host not in LOOPBACK and not args.api_key:
        raise ValueError(f"--host {args.host} listens beyond this machine: give --api-key (or $RETRIEVAL_API_KEY) so writes need it")
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be 0-65535, not {args.port}")
    if args.idle_timeout is not None and args.idle_timeout <= 0:
        raise ValueError(f"--idle-timeout must be positive, not {args.idle_timeout}")
    if args.batch_wait < 0 or min(args.max_batch, args.batch_workers or 1, args.threads or 1) < 1:
        raise ValueError("--batch-wait must be >= 0 and --max-batch, --batch-workers and --threads >= 1")
    folder = find_folder(args.folder)

    def ready(url: str) -> None:
        mode = "read-write" if folder.writable else "read-only"
        print(f"serving {folder.path} ({mode}) at {url} (docs: {url}/docs)", file=sys.stderr, flush=True)

    return serve(folder, host=args.host, port=args.port, api_key=args.api_key, idle_timeout=args.idle_timeout,
                 device=args.device, trust_remote_code=args.trust_remote_code, quiet=args.quiet, on_ready=ready,
                 threads=args.threads or (1 if args.batching else None),
                 batching={"batching": args.batching, "batch_wait_ms": args.batch_wait, "max_batch": args.max_batch,
                           "batch_workers": args.batch_workers or os.cpu_count() or 1})
