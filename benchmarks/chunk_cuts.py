"""Where chunks of an oversized unit begin: at a statement of the unit's body, or inside a statement or inner block.

Reads code sets built with ``python -m evaluation.codeset --corpus chunks`` (their ``codeset.json``
names the source folder) and, for every unit cut into several chunks (consecutive chunks with
the same path and title), classifies the first line of each continuation piece with the parse
(:func:`retrieval.chunking.treesitter.line_levels`): a line that starts a statement of the unit's
body (the shallowest level after its header) is a clean cut; a deeper level is a cut inside a
statement or an inner block (the loop cut from its header); level 0 is a line no syntax node
starts (the middle of an expression). Run it on a set built before and after a chunker change:

    python -m benchmarks.chunk_cuts go-stdlib-chunks-linesplit go-stdlib-chunks
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def split_units(rows: list[dict]) -> list[list[dict]]:
    """The chunk metadata of each unit, in order: consecutive rows with the same path and title form one unit."""
    groups, previous = [], None
    for row in rows:
        m = row["metadata"]
        same = previous is not None and (previous["metadata"]["path"], previous["title"]) == (m["path"], row["title"])
        if same and m["start"] > previous["metadata"]["end"] and m["kind"] != "module":
            groups[-1].append(m)
        else:
            groups.append([m])
        previous = row
    return [g for g in groups if len(g) > 1]


def classify(levels, unit: list[dict]) -> tuple[int, int]:
    """``(inside, no_node)``: continuation pieces of ``unit`` starting deeper than its body's statements, and at level 0."""
    span = [levels[i - 1] for i in range(unit[0]["start"], unit[-1]["end"] + 1)]
    top = min((x for x in span if x), default=0)
    header = next((i for i, x in enumerate(span) if x == top), 0)
    body = min((x for x in span[header + 1 :] if x), default=0)
    inside = no_node = 0
    for m in unit[1:]:
        level = levels[m["start"] - 1]
        no_node += level == 0
        inside += level == 0 or level > body
    return inside, no_node


def measure(codeset: Path) -> dict:
    from retrieval.chunking.structural import language_for

    source = Path(json.loads((codeset / "codeset.json").read_text(encoding="utf-8"))["source"])
    with open(codeset / "corpus.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    levels, pieces, inside, no_node = {}, 0, 0, 0
    units = split_units(rows)
    for unit in units:
        path = unit[0]["path"]
        if path not in levels:
            levels[path] = language_for(path).units((source / path).read_text(encoding="utf-8"))[0].breaks
        a, b = classify(levels[path], unit)
        pieces, inside, no_node = pieces + len(unit) - 1, inside + a, no_node + b
    return {"set": codeset.name, "chunks": len(rows), "units_split": len(units), "continuation_pieces": pieces,
            "inside_statement_or_block": inside, "at_no_syntax_node": no_node}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sets", nargs="+", help="code-set names under --data-dir (built with --corpus chunks)")
    p.add_argument("--data-dir", type=Path, default=Path("runs/codesets"), help="folder holding the sets")
    args = p.parse_args(argv)
    for name in args.sets:
        r = measure(args.data_dir / name)
        print(f"{r['set']}: {r['chunks']} chunks; {r['units_split']} units split into {r['continuation_pieces']} continuation "
              f"pieces: {r['inside_statement_or_block']} start inside a statement or inner block "
              f"({r['at_no_syntax_node']} at a line no syntax node starts)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
