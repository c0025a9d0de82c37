"""Tree-sitter structure of compiled languages: Go, Rust, Java, C, C++, C#, Kotlin, Swift, Scala.

Each case is a small file written the way such files are written (doc comments, attributes,
receivers, namespaces), and the units expected of it: ``(kind, qualified name, first line,
last line, first line of the doc comment)``.
"""

import textwrap

import pytest

from retrieval.chunking.structural import language_for, structural_chunks

CASES = [
    pytest.param(
        "src/a.go",
        r"""
        // Package cache keeps recently used values.
        package cache

        import "sync"

        // Cache is a fixed-size LRU cache.
        // It is safe for concurrent use.
        type Cache struct {
        	mu    sync.Mutex
        	items map[string]string
        }

        // Getter reads values.
        type Getter interface {
        	Get(key string) (string, bool)
        }

        // New returns an empty cache holding at most size items.
        func New(size int) *Cache {
        	return &Cache{items: make(map[string]string, size)}
        }

        // Get returns the value stored under key.
        func (c *Cache) Get(key string) (string, bool) {
        	c.mu.Lock()
        	defer c.mu.Unlock()
        	v, ok := c.items[key]
        	return v, ok
        }
        """,
        [
            ('struct', 'Cache', 6, 11, 'Cache is a fixed-size LRU cache.'),
            ('interface', 'Getter', 13, 16, 'Getter reads values.'),
            ('function', 'New', 18, 21, 'New returns an empty cache holding at most size items.'),
            ('method', 'Cache.Get', 23, 29, 'Get returns the value stored under key.'),
        ],
        id="go",
    ),
    pytest.param(
        "src/a.rs",
        r"""
        //! A tiny tokenizer.

        use std::fmt;

        /// A token of the input.
        #[derive(Debug, Clone)]
        pub struct Token {
            pub text: String,
        }

        /// Kinds of tokens.
        pub enum Kind {
            Word,
            Number,
        }

        impl Token {
            /// Make a token from text.
            pub fn new(text: &str) -> Self {
                Token { text: text.to_string() }
            }
        }

        impl fmt::Display for Token {
            fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "{}", self.text)
            }
        }

        /// Split text at whitespace.
        pub fn tokenize(text: &str) -> Vec<Token> {
            text.split_whitespace().map(Token::new).collect()
        }

        pub trait Visitor {
            /// Visit one token.
            fn visit(&mut self, token: &Token);
        }

        mod tests {
            fn helper() {}
        }
        """,
        [
            ('struct', 'Token', 5, 9, 'A token of the input.'),
            ('enum', 'Kind', 11, 15, 'Kinds of tokens.'),
            ('impl', 'Token', 17, 22, ''),
            ('method', 'Token.new', 18, 21, 'Make a token from text.'),
            ('impl', 'Token', 24, 28, ''),
            ('method', 'Token.fmt', 25, 27, ''),
            ('function', 'tokenize', 30, 33, 'Split text at whitespace.'),
            ('trait', 'Visitor', 35, 38, ''),
            ('module', 'tests', 40, 42, ''),
            ('function', 'tests.helper', 41, 41, ''),
        ],
        id="rust",
    ),
    pytest.param(
        "src/A.java",
        r"""
        package org.example.util;

        import java.util.List;

        /**
         * Utilities for lists of strings.
         */
        public final class Strings {
            private Strings() {}

            /**
             * Join the items with a separator.
             *
             * @param items the items
             * @return the joined text
             */
            @Deprecated
            public static String join(List<String> items, String sep) {
                return String.join(sep, items);
            }

            /** A pair of strings. */
            public record Pair(String left, String right) {}

            interface Visitor {
                void visit(String s);
            }
        }
        """,
        [
            ('class', 'Strings', 5, 28, 'Utilities for lists of strings.'),
            ('method', 'Strings.Strings', 9, 9, ''),
            ('method', 'Strings.join', 11, 20, 'Join the items with a separator.'),
            ('class', 'Strings.Pair', 22, 23, 'A pair of strings.'),
            ('interface', 'Strings.Visitor', 25, 27, ''),
            ('method', 'Strings.Visitor.visit', 26, 26, ''),
        ],
        id="java",
    ),
    pytest.param(
        "src/a.c",
        r"""
        #include <stddef.h>

        /* A growable buffer of bytes.  */
        struct buffer {
          char *data;
          size_t len;
        };

        /* Return the length of the string S,
           not counting the final NUL.  */
        size_t
        my_strlen (const char *s)
        {
          const char *p = s;
          while (*p)
            p++;
          return p - s;
        }

        // Allocate a buffer of N bytes.
        static struct buffer *buffer_new(size_t n) {
          return NULL;
        }

        typedef struct { int x, y; } point;
        """,
        [
            ('struct', 'buffer', 3, 7, 'A growable buffer of bytes.'),
            ('function', 'my_strlen', 9, 18, 'Return the length of the string S,'),
            ('function', 'buffer_new', 20, 23, 'Allocate a buffer of N bytes.'),
            ('struct', 'point', 25, 25, ''),
        ],
        id="c",
    ),
    pytest.param(
        "src/a.cpp",
        r"""
        #include <vector>

        namespace geo {

        /// A 2-D vector.
        class Vec2 {
         public:
          /// Length of the vector.
          double length() const { return std::sqrt(x * x + y * y); }

         private:
          double x, y;
        };

        /**
         * Sum of all vectors.
         */
        template <typename T>
        T sum(const std::vector<T>& items) {
          T total{};
          for (const auto& v : items) total += v;
          return total;
        }

        }  // namespace geo

        // Scale a vector in place.
        void geo::Vec2::scale(double f) {
          x *= f;
        }
        """,
        [
            ('namespace', 'geo', 3, 25, ''),
            ('class', 'Vec2', 5, 13, 'A 2-D vector.'),
            ('method', 'Vec2.length', 8, 9, 'Length of the vector.'),
            ('function', 'sum', 15, 23, 'Sum of all vectors.'),
            ('function', 'geo.Vec2.scale', 27, 30, 'Scale a vector in place.'),
        ],
        id="cpp",
    ),
    pytest.param(
        "src/a.cs",
        r"""
        using System;

        namespace Shop.Billing
        {
            /// <summary>
            /// Computes invoice totals.
            /// </summary>
            public class InvoiceCalculator
            {
                /// <summary>Total of the lines, tax included.</summary>
                /// <param name="lines">The invoice lines.</param>
                [Obsolete]
                public decimal Total(Line[] lines)
                {
                    return 0m;
                }

                public InvoiceCalculator() { }
            }

            public interface ITaxRule { decimal Rate { get; } }

            public struct Money { public decimal Amount; }
        }
        """,
        [
            ('namespace', 'Shop.Billing', 3, 24, ''),
            ('class', 'InvoiceCalculator', 5, 19, 'Computes invoice totals.'),
            ('method', 'InvoiceCalculator.Total', 10, 16, 'Total of the lines, tax included.'),
            ('method', 'InvoiceCalculator.InvoiceCalculator', 18, 18, ''),
            ('interface', 'ITaxRule', 21, 21, ''),
            ('struct', 'Money', 23, 23, ''),
        ],
        id="csharp",
    ),
    pytest.param(
        "src/a.kt",
        r"""
        package com.example

        /**
         * A user of the service.
         */
        data class User(val name: String, val age: Int) {
            /** Whether the user is an adult. */
            fun isAdult(): Boolean {
                return age >= 18
            }
        }

        /** Greets people. */
        object Greeter {
            fun greet(user: User) = "Hello, ${user.name}"
        }

        /**
         * Parse a user from "name:age".
         */
        fun parseUser(text: String): User {
            val (name, age) = text.split(":")
            return User(name, age.toInt())
        }

        interface Repository {
            fun find(id: Int): User?
        }
        """,
        [
            ('class', 'User', 3, 11, 'A user of the service.'),
            ('method', 'User.isAdult', 7, 10, 'Whether the user is an adult.'),
            ('object', 'Greeter', 13, 16, 'Greets people.'),
            ('method', 'Greeter.greet', 15, 15, ''),
            ('function', 'parseUser', 18, 24, 'Parse a user from "name:age".'),
            ('interface', 'Repository', 26, 28, ''),
            ('method', 'Repository.find', 27, 27, ''),
        ],
        id="kotlin",
    ),
    pytest.param(
        "src/a.swift",
        r"""
        import Foundation

        /// A stack of values.
        struct Stack<Element> {
            var items: [Element] = []

            /// Push a value on top.
            mutating func push(_ item: Element) {
                items.append(item)
            }
        }

        /// Things that can be drawn.
        protocol Drawable {
            func draw()
        }

        class Canvas {
            init() {}

            /// Clear the canvas.
            func clear() {
                print("clear")
            }
        }

        /// Add two numbers.
        func add(_ a: Int, _ b: Int) -> Int {
            return a + b
        }

        extension Canvas: Drawable {
            func draw() {}
        }

        enum Direction { case north, south }
        """,
        [
            ('struct', 'Stack', 3, 11, 'A stack of values.'),
            ('method', 'Stack.push', 7, 10, 'Push a value on top.'),
            ('protocol', 'Drawable', 13, 16, 'Things that can be drawn.'),
            ('class', 'Canvas', 18, 25, ''),
            ('method', 'Canvas.init', 19, 19, ''),
            ('method', 'Canvas.clear', 21, 24, 'Clear the canvas.'),
            ('function', 'add', 27, 30, 'Add two numbers.'),
            ('extension', 'Canvas', 32, 34, ''),
            ('method', 'Canvas.draw', 33, 33, ''),
            ('enum', 'Direction', 36, 36, ''),
        ],
        id="swift",
    ),
    pytest.param(
        "src/a.scala",
        r"""
        package example

        /** A bank account. */
        class Account(val owner: String) {
          private var balance = 0

          /** Deposit an amount of money. */
          def deposit(amount: Int): Unit = {
            balance += amount
          }
        }

        /** Companion helpers. */
        object Account {
          def apply(owner: String): Account = new Account(owner)
        }

        trait Logger {
          def log(msg: String): Unit
        }

        /** Sum a list of numbers. */
        def total(xs: List[Int]): Int =
          xs.sum
        """,
        [
            ('class', 'Account', 3, 11, 'A bank account.'),
            ('method', 'Account.deposit', 7, 10, 'Deposit an amount of money.'),
            ('object', 'Account', 13, 16, 'Companion helpers.'),
            ('method', 'Account.apply', 15, 15, ''),
            ('trait', 'Logger', 18, 20, ''),
            ('function', 'total', 22, 24, 'Sum a list of numbers.'),
        ],
        id="scala",
    ),
]


def walk(units):
    for unit in units:
        yield unit
        yield from walk(unit.children)


def source_of(language: str) -> tuple[str, str]:
    case = next(c for c in CASES if c.id == language)
    return case.values[0], textwrap.dedent(case.values[1]).lstrip("\n")


@pytest.mark.parametrize(("path", "source", "expected"), CASES)
def test_compiled_language_units(path, source, expected):
    units = language_for(path).units(textwrap.dedent(source).lstrip("\n"))
    assert [u.kind for u in units] == ["module"]
    assert [(u.kind, u.name, u.start, u.end, u.docstring.split("\n")[0]) for u in walk(units[0].children)] == expected


def test_doc_comments_leave_the_code_and_attributes_stay():
    path, text = source_of("rust")
    token = language_for(path).units(text)[0].children[0]
    assert token.code.startswith("#[derive(Debug, Clone)]\npub struct Token {") and "A token" not in token.code
    assert token.doc_span == (5, 5) and token.signature == "pub struct Token"
    path, text = source_of("csharp")
    total = {u.name: u for u in walk(language_for(path).units(text))}["InvoiceCalculator.Total"]
    assert total.docstring == "Total of the lines, tax included."  # the <summary>, not the <param> tags
    assert total.code.startswith("[Obsolete]\npublic decimal Total(Line[] lines)")
    path, text = source_of("java")
    join = {u.name: u for u in walk(language_for(path).units(text))}["Strings.join"]
    assert join.docstring.startswith("Join the items with a separator.\n\n@param items the items")
    assert join.code.startswith("@Deprecated\npublic static String join(") and "/**" not in join.code


def test_go_chunks_carry_names_signatures_and_doc_comments():
    path, text = source_of("go")
    chunks = structural_chunks(path, text)
    assert [(c.kind, c.name, c.start, c.end) for c in chunks] == [
        ("struct", "Cache", 1, 11),  # a header of at most GLUE_LINES lines (package, import) joins the first unit
        ("interface", "Getter", 13, 16),
        ("function", "New", 18, 21),
        ("method", "Cache.Get", 23, 29),
    ]
    get = chunks[-1]
    assert get.language == "go" and get.signature == "func (c *Cache) Get(key string) (string, bool)"
    assert get.docstring == "Get returns the value stored under key." and get.text.startswith("// Get returns")
