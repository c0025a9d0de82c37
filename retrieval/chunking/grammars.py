"""The tree-sitter languages: grammar package, file extensions, and one query per language.

Each query captures a definition under the name of its kind (``@function``, ``@class``...)
and, where the grammar has one, its name (``@name``) or a Go method's receiver type
(``@receiver``); :mod:`retrieval.chunking.treesitter` does the rest the same way for every
language (nesting, qualified names, doc comments, spans). A table rather than a class per
language: 20 languages in one screen, and a new one is a row. The grammars are the
individual PyPI wheels (``tree-sitter-python``...), which bundle the compiled parser:
``tree-sitter-language-pack`` 1.x downloads grammars at run time, which this toolkit must
not do (no network on the machines it runs on).

``doc`` is a regular expression a comment must match to be a doc comment (JSDoc/Javadoc/KDoc
``/**``, Rust and C# ``///``, Go's and C's any comment, Ruby's ``#``), or ``"python"`` for
docstrings. ``depth`` caps nesting for data files (a key per top-level entry and its
children, not one per leaf). ``root`` names the whole-file unit.
"""

from __future__ import annotations

_JS = """
(function_declaration name: (_) @name) @function
(generator_function_declaration name: (_) @name) @function
(class_declaration name: (_) @name) @class
(method_definition name: (_) @name) @method
(variable_declarator name: (identifier) @name value: [(arrow_function) (function_expression) (generator_function)]) @function
(variable_declarator name: (identifier) @name value: (class)) @class
(assignment_expression left: [(member_expression) (identifier)] @name right: [(arrow_function) (function_expression)]) @function
"""

_TS = _JS + """
(abstract_class_declaration name: (_) @name) @class
(interface_declaration name: (_) @name) @interface
(enum_declaration name: (_) @name) @enum
(type_alias_declaration name: (_) @name) @type
(internal_module name: (_) @name) @namespace
"""

_C = """
(function_definition) @function
(struct_specifier name: (_) @name body: (_)) @struct
(union_specifier name: (_) @name body: (_)) @struct
(enum_specifier name: (_) @name body: (_)) @enum
(type_definition type: [(struct_specifier body: (_)) (union_specifier body: (_))] declarator: (_) @name) @struct
(type_definition type: (enum_specifier body: (_)) declarator: (_) @name) @enum
"""

_CPP = _C + """
(class_specifier name: (_) @name body: (_)) @class
(namespace_definition name: (_) @name) @namespace
"""

JSDOC = r"^/\*\*(?![*/])"
ANY_C_COMMENT = r"^/[/*]"
HASH = r"^#(?!!)"

LANGUAGES: dict[str, dict] = {
    "python": {
        "grammar": ("tree_sitter_python", "language"), "extensions": (".py", ".pyi", ".pyw"), "doc": "python",
        "query": """
            (function_definition name: (_) @name) @function
            (class_definition name: (_) @name) @class
        """,
    },
    "javascript": {"grammar": ("tree_sitter_javascript", "language"), "extensions": (".js", ".mjs", ".cjs", ".jsx"),
                   "doc": JSDOC, "query": _JS},
    "typescript": {"grammar": ("tree_sitter_typescript", "language_typescript"), "extensions": (".ts", ".mts", ".cts"),
                   "doc": JSDOC, "query": _TS},
    "tsx": {"grammar": ("tree_sitter_typescript", "language_tsx"), "extensions": (".tsx",), "doc": JSDOC, "query": _TS},
    "go": {
        "grammar": ("tree_sitter_go", "language"), "extensions": (".go",), "doc": ANY_C_COMMENT,
        "query": """
            (function_declaration name: (_) @name) @function
            (method_declaration
              receiver: (parameter_list (parameter_declaration type: [
                (type_identifier) @receiver (pointer_type (type_identifier) @receiver)
                (generic_type (type_identifier) @receiver) (pointer_type (generic_type (type_identifier) @receiver))]))
              name: (_) @name) @method
            (type_spec name: (_) @name type: (struct_type)) @struct
            (type_spec name: (_) @name type: (interface_type)) @interface
            (type_spec name: (_) @name) @type
        """,
    },
    "rust": {
        "grammar": ("tree_sitter_rust", "language"), "extensions": (".rs",), "doc": r"^(///(?!/)|/\*\*(?![*/]))",
        "query": """
            (function_item name: (_) @name) @function
            (struct_item name: (_) @name) @struct
            (union_item name: (_) @name) @struct
            (enum_item name: (_) @name) @enum
            (trait_item name: (_) @name) @trait
            (impl_item type: (_) @name) @impl
            (mod_item name: (_) @name body: (_)) @module
            (macro_definition name: (_) @name) @macro
        """,
    },
    "java": {
        "grammar": ("tree_sitter_java", "language"), "extensions": (".java",), "doc": JSDOC,
        "query": """
            (class_declaration name: (_) @name) @class
            (record_declaration name: (_) @name) @class
            (interface_declaration name: (_) @name) @interface
            (annotation_type_declaration name: (_) @name) @interface
            (enum_declaration name: (_) @name) @enum
            (method_declaration name: (_) @name) @method
            (constructor_declaration name: (_) @name) @method
        """,
    },
    "c": {"grammar": ("tree_sitter_c", "language"), "extensions": (".c", ".h"), "doc": ANY_C_COMMENT, "query": _C},
    "cpp": {"grammar": ("tree_sitter_cpp", "language"), "doc": ANY_C_COMMENT, "query": _CPP,
            "extensions": (".cc", ".cpp", ".cxx", ".c++", ".hh", ".hpp", ".hxx", ".h++", ".ipp", ".inl")},
    "csharp": {
        "grammar": ("tree_sitter_c_sharp", "language"), "extensions": (".cs",), "doc": r"^///(?!/)",
        "query": """
            (class_declaration name: (_) @name) @class
            (record_declaration name: (_) @name) @class
            (struct_declaration name: (_) @name) @struct
            (interface_declaration name: (_) @name) @interface
            (enum_declaration name: (_) @name) @enum
            (namespace_declaration name: (_) @name) @namespace
            (method_declaration name: (_) @name) @method
            (constructor_declaration name: (_) @name) @method
        """,
    },
    "ruby": {
        "grammar": ("tree_sitter_ruby", "language"), "extensions": (".rb", ".rake", ".gemspec"), "doc": HASH,
        "query": """
            (method name: (_) @name) @function
            (singleton_method name: (_) @name) @function
            (class name: (_) @name) @class
            (module name: (_) @name) @module
        """,
    },
    "php": {
        "grammar": ("tree_sitter_php", "language_php"), "extensions": (".php", ".phtml"), "doc": JSDOC,
        "query": """
            (function_definition name: (_) @name) @function
            (class_declaration name: (_) @name) @class
            (interface_declaration name: (_) @name) @interface
            (trait_declaration name: (_) @name) @trait
            (enum_declaration name: (_) @name) @enum
            (method_declaration name: (_) @name) @method
            (namespace_definition name: (_) @name body: (_)) @namespace
        """,
    },
    "kotlin": {
        "grammar": ("tree_sitter_kotlin", "language"), "extensions": (".kt", ".kts"), "doc": JSDOC,
        "query": """
            (class_declaration) @class
            (object_declaration) @object
            (function_declaration) @function
        """,
    },
    "swift": {
        "grammar": ("tree_sitter_swift", "language"), "extensions": (".swift",), "doc": r"^(///(?!/)|/\*\*(?![*/]))",
        "query": """
            (class_declaration name: (_) @name) @class
            (protocol_declaration name: (_) @name) @interface
            (function_declaration name: (_) @name) @function
            (init_declaration) @method
        """,
    },
    "scala": {
        "grammar": ("tree_sitter_scala", "language"), "extensions": (".scala", ".sc"), "doc": JSDOC,
        "query": """
            (class_definition name: (_) @name) @class
            (object_definition name: (_) @name) @object
            (trait_definition name: (_) @name) @trait
            (enum_definition name: (_) @name) @enum
            (function_definition name: (_) @name) @function
        """,
    },
    "bash": {
        "grammar": ("tree_sitter_bash", "language"), "extensions": (".sh", ".bash", ".zsh"), "doc": HASH,
        "query": "(function_definition name: (_) @name) @function",
    },
    "sql": {
        "grammar": ("tree_sitter_sql", "language"), "extensions": (".sql",), "doc": r"^(--|/\*)",
        "query": """
            (create_table (object_reference) @name) @table
            (create_view (object_reference) @name) @view
            (create_function (object_reference) @name) @function
        """,
    },
    "html": {
        "grammar": ("tree_sitter_html", "language"), "extensions": (".html", ".htm", ".xhtml"), "doc": r"^<!--",
        "root": "document",
        "query": """
            (script_element) @script
            (style_element) @style
            (element (start_tag (attribute (attribute_name) @_attr (quoted_attribute_value (attribute_value) @name)))
              (#eq? @_attr "id")) @element
        """,
    },
    "css": {
        "grammar": ("tree_sitter_css", "language"), "extensions": (".css",), "doc": r"^/\*", "root": "document",
        "query": """
            (rule_set (selectors) @name) @rule
            (media_statement . (_) @name) @media
            (keyframes_statement (keyframes_name) @name) @keyframes
        """,
    },
    "json": {
        "grammar": ("tree_sitter_json", "language"), "extensions": (".json", ".jsonc"), "doc": None,
        "root": "document", "depth": 2,
        "query": "(pair key: (string (string_content) @name) value: [(object) (array)]) @key",
    },
    "yaml": {
        "grammar": ("tree_sitter_yaml", "language"), "extensions": (".yaml", ".yml"), "doc": HASH,
        "root": "document", "depth": 2,
        "query": "(block_mapping_pair key: (_) @name value: (block_node)) @key",
    },
    "toml": {
        "grammar": ("tree_sitter_toml", "language"), "extensions": (".toml",), "doc": HASH, "root": "document",
        "query": """
            (table . [(bare_key) (dotted_key) (quoted_key)] @name) @table
            (table_array_element . [(bare_key) (dotted_key) (quoted_key)] @name) @table
        """,
    },
}

# Kinds whose definitions hold others (a class's methods); any other definition keeps what it encloses.
CONTAINERS = frozenset({"class", "struct", "interface", "enum", "trait", "impl", "module", "namespace", "object",
                        "extension", "actor", "protocol", "key", "table", "element", "media"})
# Containers in which a function is a method.
CLASSES = frozenset({"class", "struct", "interface", "enum", "trait", "impl", "object", "extension", "actor", "protocol"})
# Nodes that wrap one definition: its span and doc comment are theirs (decorators, ``export``, a Go ``type``).
WRAPPERS = frozenset({"decorated_definition", "export_statement", "template_declaration", "type_declaration",
                      "lexical_declaration", "variable_declaration", "expression_statement", "ambient_declaration",
                      "statement"})
# Siblings that belong to the definition after them (Rust ``#[derive]``), between it and its doc comment.
ATTACHED = frozenset({"attribute_item"})
