"""``python -m retrieval encode CORPUS --out SHARDS`` and ``python -m retrieval build-index SHARDS --out DIR``.

Encode a corpus into embedding shards on Ray (local by default, a cluster with
``--ray-address``; a rerun encodes only the missing shards), then build a Retriever folder
from the shards in bounded memory.
"""

from __future__ import annotations

from retrieval.cli import TRUST_HELP


def add_encode_arguments(p) -> None:
    p.add_argument("corpus", metavar="CORPUS", help="a BEIR corpus.jsonl (or its folder), a folder of files (chunked as 'index' does), "
                   "a folder written by datasets' save_to_disk, or a dataset name datasets can load")
    p.add_argument("--out", required=True, metavar="SHARDS", help="shard folder: shards.json (the plan) and one shard-NNNNN/ folder per "
                   "finished shard; an existing one is resumed (only missing shards are encoded)")
    p.add_argument("--model", default=None, help="sentence-transformers hub id or folder (a PyLate ColBERT model with --multi-vector); "
                   "default: the offline all-MiniLM-L6-v2")
    p.add_argument("--multi-vector", action="store_true", help="ColBERT token vectors (.npy of tokens + doclens) instead of one vector per document")
    p.add_argument("--workers", type=int, default=2, help="Ray actors, one model each, one CPU each (one GPU each where the cluster has GPUs; "
                   "at most one per GPU); default 2")
    p.add_argument("--ray-address", default=None, metavar="ADDR", help="join a running Ray cluster (e.g. 127.0.0.1:6379, started with "
                   "'ray start --head'); default: start a local Ray in this process and stop it at the end")
    p.add_argument("--shard-size", type=int, default=None, metavar="ITEMS", help="documents per shard (default 10,000), or files per "
                   "shard for a folder (default 1,000); a resumed run must give the same")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"], help="model weights dtype; auto = bf16 "
                   "where the hardware runs it natively (default auto)")
    p.add_argument("--device", default=None, help="torch device in each actor (default: cuda if it has one, else cpu)")
    p.add_argument("--max-length", type=int, default=None, metavar="TOKENS", help="document (or chunk) length in tokens (default: the model's)")
    p.add_argument("--batch-size", type=int, default=None, help="maximum texts per encoding batch (also capped by a token budget)")
    p.add_argument("--split", default="train", help="split of a datasets dataset (default train)")
    p.add_argument("--exclude", action="append", default=None, metavar="PATTERN", help="gitignore-style pattern to leave out of a folder (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bars, no worker logs")
    p.add_argument("--trust-remote-code", action="store_true", help=TRUST_HELP)


def add_build_arguments(p) -> None:
    p.add_argument("shards", metavar="SHARDS", help="a complete shard folder written by 'encode'")
    p.add_argument("--out", required=True, metavar="DIR", help="Retriever folder to write (replaced atomically)")
    p.add_argument("--index", default="auto", metavar="FACTORY", help='FAISS factory string for single-vector shards: auto (default: '
                   'Flat up to 1M documents, above it IVF-PQ, e.g. "IVF4096_HNSW32,PQ48np" at 384 dimensions), Flat, HNSW32, '
                   '"IVF4096,PQ48np" (IVF lists merged on disk and memory-mapped; "np" skips PQ\'s slow polysemous training)')
    p.add_argument("--metric", default="cosine", choices=["cosine", "ip", "l2"], help="single-vector metric (default cosine)")
    p.add_argument("--train-size", type=int, default=None, metavar="VECTORS", help="vectors sampled to train IVF / PQ (default max(64 x lists, 65,536))")
    p.add_argument("--nbits", type=int, default=4, choices=[4, 6, 8, 16], help="token vectors: bits per stored dimension (default 4)")
    p.add_argument("--nlist", type=int, default=None, help="token vectors: centroids (default about 4 sqrt(tokens))")
    p.add_argument("--workers", type=int, default=1, help="Ray tasks for the per-shard adds (default 1: in this process, no Ray)")
    p.add_argument("--ray-address", default=None, metavar="ADDR", help="run the per-shard adds on this Ray cluster (the shard folder must be visible to it)")
    p.add_argument("--quiet", action="store_true", help="no worker logs")


def add_command(commands) -> None:
    """The ``encode`` and ``build-index`` subcommands."""
    encode = commands.add_parser(
        "encode", help="encode a corpus into embedding shards on Ray (resumable)",
        description="Stream CORPUS to a pool of Ray actors (one model each) and write its embeddings as shards in SHARDS, "
        "each atomically and checksummed. Run it again after a crash: only the shards that are missing are encoded.",
    )
    add_encode_arguments(encode)
    encode.set_defaults(run=run_encode)
    build = commands.add_parser(
        "build-index", help="build a Retriever folder from embedding shards in bounded memory",
        description="Train the index on a sample of the shards, add them shard by shard (IVF lists merged on disk), and write a "
        "Retriever folder (index, documents, model reference) that Retriever.load opens.",
    )
    add_build_arguments(build)
    build.set_defaults(run=run_build)


def run_encode(args) -> int:
    from retrieval.scale.encode import encode_corpus

    report = encode_corpus(
        args.corpus, args.out, model=args.model, multi_vector=args.multi_vector, workers=args.workers, address=args.ray_address,
        shard_size=args.shard_size, dtype=args.dtype, device=args.device, max_length=args.max_length, batch_size=args.batch_size,
        exclude=args.exclude, split_name=args.split, quiet=args.quiet, trust_remote_code=args.trust_remote_code,
    )
    print(report.summary())
    return 0


def run_build(args) -> int:
    from retrieval.scale.build import build_index

    out, summary = build_index(
        args.shards, args.out, factory=args.index, metric=args.metric, train_size=args.train_size, nbits=args.nbits,
        nlist=args.nlist, workers=args.workers, address=args.ray_address, quiet=args.quiet,
    )
    print(f"{summary['documents']} documents from {summary['shards']} shards in {summary['seconds']:.1f} s, "
          f"{summary['bytes'] / 2**20:.1f} MiB\nindex written to {out}")
    return 0
