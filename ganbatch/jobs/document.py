"""A job before validation: its plain data and, for every value, where it came from (manifest line or CLI option).

`read_manifest` builds one from a YAML file, keeping the line of each key and list item; `JobDocument.set` lays CLI
values and `--set` overrides over it, so an error can always name the line or option that produced the bad value.
"""
import copy
from collections.abc import Mapping
from pathlib import Path as FilePath
from typing import Any, Union

import yaml

from ganbatch import safe_yaml
from ganbatch.jobs.paths import Path, format_path
from ganbatch.jobs.problems import ManifestError, Origin, Problem

_JOB_SHAPE = "a job is a mapping with a `kind:` key"


class JobDocument:
    """Job data (dicts, lists, scalars) plus the origin of every value; origins of sub-paths fall back to parents."""

    def __init__(self, data: dict, origins: Mapping[Path, Origin]):
        self.data = data
        self._origins = dict(origins)

    @classmethod
    def empty(cls, origin: Origin) -> "JobDocument":
        """A document with no values yet (a command run without a manifest)."""
        return cls({}, {(): origin})

    def origin(self, path: Path) -> Origin:
        """Where the value at `path` (or its closest given parent) came from."""
        while path not in self._origins:
            path = path[:-1]
        return self._origins[path]

    def set(self, path: Path, value: Any, origin: Origin) -> None:
        """Put `value` at `path`, creating missing mappings; a list index may be an existing item or the next one.

        Raises ValueError (naming the path, never the value) when the path runs through a scalar or past a list end.
        """
        container = self.data
        for depth, part in enumerate(path):
            if isinstance(container, dict):
                part = str(part)
                present = part in container
            elif isinstance(container, list) and isinstance(part, int):
                if part > len(container):
                    where = format_path(path[:depth])
                    raise ValueError(f"{where} has {len(container)} items; [{part}] is past its end")
                present = part < len(container)
                if not present:
                    container.append(None)
            else:
                shape = "a list (use an index)" if isinstance(container, list) else "not a mapping"
                raise ValueError(f"{format_path(path[:depth])} is {shape}")
            if depth == len(path) - 1:
                container[part] = copy.deepcopy(value)
            else:
                if not present or container[part] is None:
                    container[part] = [] if isinstance(path[depth + 1], int) else {}
                container = container[part]
        normalised = tuple(p if isinstance(p, int) else str(p) for p in path)
        self._origins = {p: o for p, o in self._origins.items() if p[: len(normalised)] != normalised}
        self._origins[normalised] = origin


def read_manifest(file: Union[str, FilePath]) -> tuple[JobDocument, list[Problem]]:
    """Parse a YAML manifest into a JobDocument, plus problems found while reading (duplicate keys, odd keys).

    Raises ManifestError for unreadable files, files over the limits of ganbatch.safe_yaml (size, values
    after alias expansion, nesting) and YAML syntax errors (file:line:column: the parser's problem; the offending
    text is not echoed). Keys are kept as written (`12:` is the key '12'); merge keys (`<<:`) work.
    """
    source = str(file)
    try:
        text = safe_yaml.read_text(file)
    except safe_yaml.YamlLimitError as error:
        raise ManifestError([Problem(Origin(source), (), f"cannot read the file: {error}")]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ManifestError([Problem(Origin(source), (), f"cannot read the file ({type(error).__name__})")]) from None
    loader = yaml.SafeLoader(text)
    try:
        root = safe_yaml.compose(text, loader)
    except safe_yaml.YamlLimitError as error:
        raise ManifestError([Problem(Origin(source), (), f"refused: {error}")]) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        problem = getattr(error, "problem", None) or getattr(error, "reason", None) or "unreadable YAML"
        context = f" ({error.context})" if getattr(error, "context", None) else ""
        origin = Origin(source, mark.line + 1, mark.column + 1) if mark else Origin(source)
        raise ManifestError([Problem(origin, (), f"YAML syntax error: {problem}{context}")]) from None
    finally:
        loader.dispose()
    if root is None:
        raise ManifestError([Problem(Origin(source, 1), (), f"the file is empty; {_JOB_SHAPE}")])
    builder = _NodeReader(source, loader)
    data = builder.read(root, ())
    if not isinstance(data, dict):
        raise ManifestError([Problem(builder.origins[()], (), f"{_JOB_SHAPE}, not a list or value")])
    return JobDocument(data, builder.origins), builder.problems


class _NodeReader:
    """Turns composed YAML nodes into plain data, recording the line of every key and list item."""

    def __init__(self, source: str, loader: yaml.SafeLoader):
        self.source = source
        self.loader = loader
        self.origins: dict[Path, Origin] = {}
        self.problems: list[Problem] = []
        self._flattened: set[int] = set()  # mappings already checked and merged (an alias visits a node again)

    def _origin(self, node: yaml.Node) -> Origin:
        return Origin(self.source, node.start_mark.line + 1)

    def read(self, node: yaml.Node, path: Path) -> Any:
        self.origins.setdefault(path, self._origin(node))
        if isinstance(node, yaml.MappingNode):
            if id(node) not in self._flattened:
                self._flattened.add(id(node))
                self._check_keys(node, path)
                self.loader.flatten_mapping(node)  # merged (`<<:`) entries first, so the mapping's own keys win
            data: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    self.origins[path + (key_node.value,)] = self._origin(key_node)
                    data[key_node.value] = self.read(value_node, path + (key_node.value,))
            return data
        if isinstance(node, yaml.SequenceNode):
            return [self.read(item, path + (index,)) for index, item in enumerate(node.value)]
        return self.loader.construct_object(node, deep=True)

    def _check_keys(self, node: yaml.MappingNode, path: Path) -> None:
        """Report keys that are not plain names, and keys given twice in one mapping."""
        first_line: dict[str, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(Problem(self._origin(key_node), path, "keys must be plain names"))
            elif key_node.tag != "tag:yaml.org,2002:merge":
                line = key_node.start_mark.line + 1
                if key_node.value in first_line:
                    where = path + (key_node.value,)
                    message = f"duplicate key (first at line {first_line[key_node.value]})"
                    self.problems.append(Problem(Origin(self.source, line), where, message))
                first_line.setdefault(key_node.value, line)
