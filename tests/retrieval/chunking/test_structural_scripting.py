"""Tree-sitter structure of scripting languages: JavaScript, TypeScript (and TSX), Ruby, PHP, Bash, SQL.

Each case is a small file written the way such files are written (JSDoc, ``export``, arrow
functions assigned to names, Ruby and PHP doc comments), and the units expected of it:
``(kind, qualified name, first line, last line, first line of the doc comment)``.
"""

import textwrap

import pytest

from retrieval.chunking.structural import chunk_files, language_for

CASES = [
    pytest.param(
        "src/a.js",
        r"""
        import { helper } from "./helper.js";

        /**
         * Clamp a number between two bounds.
         *
         * @param {number} value the input
         * @returns {number}
         */
        export function clamp(value, low, high) {
          return Math.min(Math.max(value, low), high);
        }

        /** A queue of pending jobs. */
        class JobQueue extends Base {
          /** Add a job at the end of the queue. */
          push(job) {
            this.jobs.push(job);
          }
        }

        /** Debounce calls to fn. */
        const debounce = (fn, wait) => {
          let timer;
          return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), wait); };
        };

        // Not a doc comment.
        module.exports.parse = function (text) {
          return JSON.parse(text);
        };
        """,
        [
            ('function', 'clamp', 3, 11, 'Clamp a number between two bounds.'),
            ('class', 'JobQueue', 13, 19, 'A queue of pending jobs.'),
            ('method', 'JobQueue.push', 15, 18, 'Add a job at the end of the queue.'),
            ('function', 'debounce', 21, 25, 'Debounce calls to fn.'),
            ('function', 'module.exports.parse', 28, 30, ''),
        ],
        id="javascript",
    ),
    pytest.param(
        "src/a.ts",
        r"""
        /** Options of a retry loop. */
        export interface RetryOptions {
          attempts: number;
          delayMs: number;
        }

        export type Handler = (event: string) => void;

        /**
         * Retry an async operation.
         */
        export async function retry<T>(op: () => Promise<T>, options: RetryOptions): Promise<T> {
          for (let i = 0; ; i++) {
            try { return await op(); } catch (e) { if (i >= options.attempts) throw e; }
          }
        }

        export namespace Geometry {
          /** A point in the plane. */
          export class Point {
            constructor(public x: number, public y: number) {}

            /** Distance to another point. */
            distance(other: Point): number {
              return Math.hypot(this.x - other.x, this.y - other.y);
            }
          }
        }

        export enum Color { Red, Green }
        """,
        [
            ('interface', 'RetryOptions', 1, 5, 'Options of a retry loop.'),
            ('type', 'Handler', 7, 7, ''),
            ('function', 'retry', 9, 16, 'Retry an async operation.'),
            ('namespace', 'Geometry', 18, 28, ''),
            ('class', 'Point', 19, 27, 'A point in the plane.'),
            ('method', 'Point.constructor', 21, 21, ''),
            ('method', 'Point.distance', 23, 26, 'Distance to another point.'),
            ('enum', 'Color', 30, 30, ''),
        ],
        id="typescript",
    ),
    pytest.param(
        "src/a.tsx",
        r"""
        import React from "react";

        /** A button that counts its clicks. */
        export function Counter({ label }: { label: string }) {
          const [count, setCount] = React.useState(0);
          return <button onClick={() => setCount(count + 1)}>{label}: {count}</button>;
        }
        """,
        [
            ('function', 'Counter', 3, 7, 'A button that counts its clicks.'),
        ],
        id="tsx",
    ),
    pytest.param(
        "src/a.rb",
        r"""
        require "json"

        # Helpers for HTTP responses.
        module Http
          # A parsed response.
          class Response
            # Build a response from a status and a body.
            def initialize(status, body)
              @status = status
              @body = body
            end

            # Whether the status is 2xx.
            def ok?
              (200..299).cover?(@status)
            end

            def self.parse(text)
              new(200, JSON.parse(text))
            end
          end
        end
        """,
        [
            ('module', 'Http', 3, 22, 'Helpers for HTTP responses.'),
            ('class', 'Http.Response', 5, 21, 'A parsed response.'),
            ('method', 'Http.Response.initialize', 7, 11, 'Build a response from a status and a body.'),
            ('method', 'Http.Response.ok?', 13, 16, 'Whether the status is 2xx.'),
            ('method', 'Http.Response.parse', 18, 20, ''),
        ],
        id="ruby",
    ),
    pytest.param(
        "src/a.php",
        r"""
        <?php

        namespace App\Models;

        /**
         * A registered user.
         */
        class User extends Model
        {
            /**
             * The full name of the user.
             *
             * @return string
             */
            public function fullName(): string
            {
                return $this->first . ' ' . $this->last;
            }
        }

        /**
         * Format a price in cents.
         */
        function format_price(int $cents): string
        {
            return number_format($cents / 100, 2);
        }

        interface Shape { public function area(): float; }
        """,
        [
            ('class', 'User', 5, 19, 'A registered user.'),
            ('method', 'User.fullName', 10, 18, 'The full name of the user.'),
            ('function', 'format_price', 21, 27, 'Format a price in cents.'),
            ('interface', 'Shape', 29, 29, ''),
        ],
        id="php",
    ),
    pytest.param(
        "src/a.sh",
        r"""
        #!/usr/bin/env bash
        set -euo pipefail

        # Print a message to stderr and exit.
        die() {
          echo "$*" >&2
          exit 1
        }

        function build_all {
          make -j4
        }

        build_all || die "build failed"
        """,
        [
            ('function', 'die', 4, 8, 'Print a message to stderr and exit.'),
            ('function', 'build_all', 10, 12, ''),
        ],
        id="bash",
    ),
    pytest.param(
        "src/a.sql",
        r"""
        -- Users of the shop.
        CREATE TABLE users (
          id INTEGER PRIMARY KEY,
          name TEXT NOT NULL
        );

        -- Orders placed by users.
        CREATE TABLE orders (
          id INTEGER PRIMARY KEY,
          user_id INTEGER REFERENCES users(id)
        );

        CREATE VIEW big_orders AS
        SELECT * FROM orders WHERE id > 100;

        SELECT name FROM users;
        """,
        [
            ('table', 'users', 1, 5, 'Users of the shop.'),
            ('table', 'orders', 7, 11, 'Orders placed by users.'),
            ('view', 'big_orders', 13, 14, ''),
        ],
        id="sql",
    ),
]


def walk(units):
    for unit in units:
        yield unit
        yield from walk(unit.children)


def text_of(language: str) -> tuple[str, str]:
    case = next(c for c in CASES if c.id == language)
    return case.values[0], textwrap.dedent(case.values[1]).lstrip("\n")


@pytest.mark.parametrize(("path", "source", "expected"), CASES)
def test_scripting_language_units(path, source, expected):
    units = language_for(path).units(textwrap.dedent(source).lstrip("\n"))
    assert [(u.kind, u.name, u.start, u.end, u.docstring.split("\n")[0]) for u in walk(units[0].children)] == expected


def test_jsdoc_is_the_docstring_and_leaves_the_code():
    path, text = text_of("javascript")
    clamp = language_for(path).units(text)[0].children[0]
    assert clamp.docstring == "Clamp a number between two bounds.\n\n@param {number} value the input\n@returns {number}"
    assert clamp.code.startswith("export function clamp(value, low, high) {") and "/**" not in clamp.code
    assert clamp.signature == "function clamp(value, low, high)" and clamp.doc_span == (3, 8)


def test_scripting_chunks_fit_and_keep_their_names():
    files = [text_of(language) for language in ("typescript", "ruby", "php")]
    chunks = chunk_files(files, lambda texts: [len(t.split()) + 2 for t in texts], 40)
    names = {(c.path, c.name) for c in chunks}
    assert {("src/a.ts", "Point.distance"), ("src/a.rb", "Http.Response.ok?"), ("src/a.php", "User.fullName")} <= names
    assert {c.language for c in chunks} == {"typescript", "ruby", "php"}
    distance = next(c for c in chunks if c.name == "Point.distance")
    assert distance.signature == "distance(other: Point): number" and distance.docstring == "Distance to another point."
