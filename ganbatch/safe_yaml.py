"""YAML with limits, for every YAML text a user hands to ganbatch (job files, `--set` values, keyframe files).

PyYAML's composer shares the node an alias (`*name`) refers to instead of copying it, so composing is linear in the
text; it is the readers walking the nodes afterwards (building job data, validating it) that expand every alias
again, and nested anchors ("billion laughs") make that exponential. `compose` therefore counts the nodes the text
expands to, once per distinct node (memoised, so counting stays linear), and refuses a text that expands past
MAX_NODES nodes, nests deeper than MAX_DEPTH, or holds an alias to a node that contains it, before anyone walks it.
`read_text` refuses files over a size limit without reading more than the limit. Everything is loaded with the
safe loader.
"""
import os
import re
import stat
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from ganbatch.limits import MAX_YAML_BYTES as MAX_JOB_BYTES
from ganbatch.limits import MAX_YAML_DEPTH as MAX_DEPTH
from ganbatch.limits import MAX_YAML_NODES as MAX_NODES


class YamlLimitError(ValueError):
    """A YAML text over one of the limits (size, expanded nodes, depth, recursive alias); the message says which."""


def read_text(path, limit: int = MAX_JOB_BYTES) -> str:
    """The UTF-8 text of a regular file of at most `limit` bytes; YamlLimitError for a larger or non-regular file
    (a FIFO or device could block or never end), OSError/UnicodeDecodeError when unreadable."""
    path = Path(path)
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise YamlLimitError("not a regular file")
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise YamlLimitError(f"the file is larger than {limit // 1024} KiB, the limit for job files")
    return data.decode("utf-8")


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def check_expansion(root: yaml.Node, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH) -> int:
    """The number of nodes `root` expands to (aliases counted as copies of what they name); YamlLimitError past
    `max_nodes` or `max_depth`, or for an alias inside the node it names. Iterative, each distinct node once."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # nodes whose subtree is being counted (the current path)
    stack: list[tuple[yaml.Node, bool, int]] = [(root, False, 0)]
    while stack:
        node, children_done, depth = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > max_nodes:
                raise YamlLimitError(f"it expands to more than {max_nodes:,} values (each alias `*name` repeats "
                                     "what it refers to); refused")
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise YamlLimitError("an alias refers to a list or mapping that contains it (a recursive structure)")
        if depth > max_depth:
            raise YamlLimitError(f"lists and mappings nest deeper than {max_depth} levels")
        open_nodes.add(key)
        stack.append((node, True, depth))
        stack.extend((child, False, depth + 1) for child in _children(node) if id(child) not in sizes)
    return sizes[id(root)]


_BRACKETS = re.compile(r"[\[\]{}]")


def _flow_depth(text: Union[str, bytes]) -> int:
    """The deepest nesting of `[`/`{` in the text (brackets inside quoted strings count too: an over-estimate).

    Checked before parsing because PyYAML's scanner is quadratic in flow nesting (thousands of `[` take seconds);
    block nesting needs indentation and stays cheap.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    depth = deepest = 0
    for match in _BRACKETS.finditer(text):
        depth = depth + 1 if match.group(0) in "[{" else max(0, depth - 1)
        deepest = max(deepest, depth)
    return deepest


def compose(text: Union[str, bytes], loader: Optional[yaml.SafeLoader] = None) -> Optional[yaml.Node]:
    """The root node of a one-document YAML text (None when empty), checked with check_expansion.

    `loader` (a SafeLoader over `text`) lets the caller keep using it to construct values; it is not disposed.
    Raises yaml.YAMLError for syntax errors and YamlLimitError for texts over the limits.
    """
    if _flow_depth(text) > MAX_DEPTH:
        raise YamlLimitError(f"lists and mappings nest deeper than {MAX_DEPTH} levels")
    loader = loader or yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except RecursionError:
        raise YamlLimitError(f"lists and mappings nest deeper than {MAX_DEPTH} levels") from None
    if root is not None:
        check_expansion(root)
    return root


def safe_load(text: Union[str, bytes]) -> Any:
    """`yaml.safe_load` within the limits of `compose` (YamlLimitError past them, yaml.YAMLError for syntax and
    for bytes that are not UTF-8)."""
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_JOB_BYTES:
        raise YamlLimitError(f"the text is larger than {MAX_JOB_BYTES // 1024} KiB")
    loader = yaml.SafeLoader(text)
    try:
        root = compose(text, loader)
        return None if root is None else loader.construct_document(root)
    finally:
        loader.dispose()


def describe_error(error: yaml.YAMLError) -> str:
    """A YAML error as one line, `line L, column C: problem (context)`, without the snippet of text PyYAML quotes
    (which may hold anything)."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or getattr(error, "reason", None) or "unreadable YAML"
    context = f" ({error.context})" if getattr(error, "context", None) else ""
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return " ".join(f"{where}{problem}{context}".split())
