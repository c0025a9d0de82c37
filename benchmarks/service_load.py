"""The resident service under load, and the command line's repeated-query latency through it.

Two measurements, on loopback only, each bounded in requests and seconds:

1. ``POST /search`` p50 / p99 latency and queries/s from 1, 8 and 32 concurrent clients (each
   its own keep-alive connection, SciFact test queries in turn) against a server over the SciFact
   corpus (a saved ``Retriever``, built once into ``--workdir`` and reused); with ``--batching off on``
   a server without and one with query micro-batching, one after the other in the same run.
2. ``python -m retrieval search DIR "query"`` wall time per call, as a person runs it again and
   again: with ``--server URL``, through the folder's resident server (``--resident``; its cold
   start, spawn plus model load, reported apart), and in-process (``--no-server``, the anchor
   measured in the same run), on a codebase index of this repository's ``retrieval/`` folder.

    nice -n 10 python -m benchmarks.service_load --data-dir ../shared/data --json runs/service_load.json
    python -m benchmarks.service_load --skip-cli --batching off on --workdir runs/service-bench-full
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from itertools import islice
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
QUERY = "write a folder atomically"
# The client side of `search --server` alone: what the command costs once nothing on its path imports torch.
CLIENT_ONLY = (
    "import json, sys; from retrieval.service.client import ServiceClient; from retrieval.codebase.hits import format_hit; "
    "root = json.load(open(sys.argv[2] + '/codebase.json'))['root']; "
    "print('\\n'.join(format_hit(h, root) for h in ServiceClient(sys.argv[1]).search(sys.argv[3], k=5)))"
)


def read_jsonl(path: Path, n: int | None = None) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in islice(f, n)]


def build_scifact(data_dir: Path, out: Path, documents: int | None, quiet: bool) -> Path:
    """A saved Retriever over SciFact's corpus at ``out`` (built once: reused when it is there)."""
    if (out / "retriever.json").is_file():
        return out
    from retrieval import Retriever

    corpus = read_jsonl(data_dir / "scifact" / "corpus.jsonl", documents)
    retriever = Retriever(index="Flat", dtype="float32", show_progress=not quiet)
    retriever.add([{"id": d["_id"], "title": d.get("title", ""), "text": d["text"]} for d in corpus])
    return retriever.save(out)


def build_code_index(out: Path) -> Path:
    if not (out / "codebase.json").is_file():
        run([sys.executable, "-m", "retrieval", "index", str(REPO / "retrieval"), "--out", str(out), "--quiet"])
    return out


def run(command: list[str]) -> float:
    """Seconds one command takes; it must succeed."""
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def record(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.server.json"


def start_server(folder: Path, timeout: float = 600, options: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str]:
    record(folder).unlink(missing_ok=True)
    process = subprocess.Popen([sys.executable, "-m", "retrieval", "serve", str(folder), "--port", "0", "--idle-timeout", "300", "--quiet",
                                *options], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server of {folder} stopped (exit {process.returncode})")
        try:
            return process, json.loads(record(folder).read_text())["url"]
        except (OSError, ValueError):
            time.sleep(0.2)
    raise TimeoutError(f"no server for {folder} after {timeout} s")


def stop(folder: Path) -> None:
    """Stop the folder's server (SIGTERM: it checkpoints and removes its record) and wait for it."""
    try:
        pid = json.loads(record(folder).read_text())["pid"]
    except (OSError, ValueError):
        return
    os.kill(pid, 15)
    for _ in range(600):
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.1)


def load(url: str, queries: list[str], clients: int, requests: int, seconds: float, k: int) -> dict:
    """``clients`` threads with their own keep-alive connection send ``requests`` searches in all (or stop at ``seconds``)."""
    import httpx

    latencies, lock, counter = [], threading.Lock(), iter(range(requests))
    deadline = time.perf_counter() + seconds

    def client():
        with httpx.Client(base_url=url, timeout=120) as http:
            http.post("/search", json={"queries": queries[0], "k": k})  # connect and warm up, not counted
            barrier.wait()
            while time.perf_counter() < deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                start = time.perf_counter()
                http.post("/search", json={"queries": queries[i % len(queries)], "k": k}).raise_for_status()
                with lock:
                    latencies.append(time.perf_counter() - start)

    barrier = threading.Barrier(clients + 1)
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {"clients": clients, "requests": len(ms), "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "qps": len(ms) / wall}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process (all its threads) has used: what a search costs whatever the load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_rows(scifact: Path, queries: list[str], args, batching: str) -> list[dict]:
    """The load rows of one server setting (a server started for it, stopped after)."""
    options = ("--threads", str(args.threads)) if args.threads else ()
    if batching == "on":
        options += ("--batch-queries", "--batch-wait", str(args.batch_wait))
        options += ("--batch-workers", str(args.batch_workers)) if args.batch_workers else ()
    process, url = start_server(scifact, options=options)
    rows = []
    try:
        for clients in args.clients:
            cpu = cpu_seconds(process.pid)  # includes each client's uncounted warm-up search
            row = {"batching": batching, "options": " ".join(options), **load(url, queries, clients, args.requests, args.seconds, args.k)}
            row.update(server_cpu_ms=(cpu_seconds(process.pid) - cpu) * 1000 / (row["requests"] + clients), loadavg=os.getloadavg()[0])
            rows.append(row)
            print(f"batching {batching:>3}, {clients:>3} clients: {row['requests']} searches, p50 {row['p50_ms']:.1f} ms, "
                  f"p99 {row['p99_ms']:.1f} ms, {row['qps']:.1f} queries/s, server CPU {row['server_cpu_ms']:.0f} ms a search "
                  f"(load average {row['loadavg']:.1f})", flush=True)
    finally:
        process.terminate()
        process.wait(timeout=120)
    return rows


def report_batching(rows: list[dict]) -> None:
    """Batched vs unbatched queries/s and p50 at each client count measured both ways."""
    by = {(r["batching"], r["clients"]): r for r in rows}
    for (setting, clients), on in by.items():
        off = by.get(("off", clients))
        if setting == "on" and off:
            print(f"{clients:>3} clients: batching gives x{on['qps'] / off['qps']:.2f} the queries/s, "
                  f"p50 x{on['p50_ms'] / off['p50_ms']:.2f}, server CPU a search x{on['server_cpu_ms'] / off['server_cpu_ms']:.2f}", flush=True)


def cli_latency(index: Path, repeats: int, anchor_repeats: int) -> dict:
    """Seconds per ``search`` call: cold resident start, then p50 of resident, ``--server`` and in-process calls."""
    base = [sys.executable, "-m", "retrieval", "search", str(index), QUERY, "-k", "5"]
    stop(index)
    cold = run(base + ["--resident"])  # spawns the server and waits for its model
    resident = [run(base + ["--resident"]) for _ in range(repeats)]
    url = json.loads(record(index).read_text())["url"]
    server = [run(base + ["--server", url]) for _ in range(repeats)]
    client_only = [run([sys.executable, "-c", CLIENT_ONLY, url, str(index), QUERY]) for _ in range(repeats)]
    stop(index)
    in_process = [run(base + ["--no-server"]) for _ in range(anchor_repeats)]
    python = [run([sys.executable, "-c", "pass"]) for _ in range(repeats)]
    return {"cold_start_s": cold, "resident_p50_s": float(np.median(resident)), "server_p50_s": float(np.median(server)),
            "client_only_p50_s": float(np.median(client_only)), "in_process_p50_s": float(np.median(in_process)), "python_startup_p50_s": float(np.median(python)),
            "repeats": repeats, "anchor_repeats": anchor_repeats}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=Path("../shared/data"), help="folder holding scifact/ in BEIR layout")
    p.add_argument("--workdir", type=Path, default=REPO / "runs" / "service-bench", help="where the indexes are built once and reused")
    p.add_argument("--documents", type=int, default=None, help="SciFact documents indexed (default: all 5,183)")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32], help="concurrent clients of each load run")
    p.add_argument("--requests", type=int, default=300, help="searches per load run at most")
    p.add_argument("--seconds", type=float, default=60, help="seconds per load run at most")
    p.add_argument("--k", type=int, default=10, help="hits per search")
    p.add_argument("--batching", choices=["on", "off"], nargs="+", default=["on"],
                   help="server settings measured one after the other: 'on' batches concurrent queries' encoding, 'off' encodes each alone")
    p.add_argument("--batch-wait", type=float, default=0.0, metavar="MS", help="the batching server's --batch-wait")
    p.add_argument("--batch-workers", type=int, default=None, metavar="N", help="the batching server's --batch-workers (default: serve's)")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="every server's --threads, torch intra-op threads (default: serve's)")
    p.add_argument("--repeats", type=int, default=10, help="command-line calls per setting")
    p.add_argument("--anchor-repeats", type=int, default=3, help="in-process command-line calls (each loads the model)")
    p.add_argument("--skip-cli", action="store_true", help="measure the load only")
    p.add_argument("--skip-load", action="store_true", help="measure the command line only")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = {"load": [], "cli": None, "cores": os.cpu_count(), "loadavg_start": os.getloadavg()[0]}
    if not args.skip_load:
        scifact = build_scifact(args.data_dir, args.workdir / "scifact", args.documents, args.quiet)
        queries = [q["text"] for q in read_jsonl(args.data_dir / "scifact" / "queries.jsonl")]
        for batching in args.batching:
            result["load"] += load_rows(scifact, queries, args, batching)
        report_batching(result["load"])
    if not args.skip_cli:
        cli = result["cli"] = cli_latency(build_code_index(args.workdir / "code-index"), args.repeats, args.anchor_repeats)
        print(f"search --server p50 {cli['server_p50_s']:.2f} s, resident p50 {cli['resident_p50_s']:.2f} s "
              f"(cold start {cli['cold_start_s']:.1f} s), in-process p50 {cli['in_process_p50_s']:.2f} s "
              f"(x{cli['in_process_p50_s'] / cli['server_p50_s']:.0f} the --server path), client side alone p50 "
              f"{cli['client_only_p50_s']:.2f} s, bare python start {cli['python_startup_p50_s']:.2f} s")
    result["loadavg_end"] = os.getloadavg()[0]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
