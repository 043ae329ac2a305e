"""The project's imports point one way: down the ranks of docs/ARCHITECTURE.md, with no cycle
between modules nor between packages.

Every import counts, nested (lazy) ones included: a lazy import hides a cycle from Python, not from
the reader.
"""

from __future__ import annotations

import ast
import collections
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOPS = ("microexp", "tfds_casme2", "configs")
# docs/ARCHITECTURE.md's layers, lowest first: a module imports its own layer or a lower one.
LAYERS = ("microexp", "microexp.vision", "microexp.data", "microexp.synthetic", "tfds_casme2",
          "microexp.loaders", "microexp.models", "microexp.train", "microexp.predict",
          "microexp.report", "configs")


def layer_rank(module: str) -> int:
  """The rank of the longest layer name that is `module` or a package above it."""
  best = max((layer for layer in LAYERS if module == layer or module.startswith(layer + ".")),
             key=len, default=None)
  if best is None:
    raise ValueError(f"{module} belongs to no layer of {LAYERS}")
  return LAYERS.index(best)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
  """'a -> b' for every import of a module from a higher layer."""
  return sorted(f"{m} (rank {layer_rank(m)}) -> {t} (rank {layer_rank(t)})"
                for m, targets in graph.items() for t in targets
                if layer_rank(t) > layer_rank(m))


def import_graph(root: pathlib.Path = ROOT) -> dict[str, set[str]]:
  """Module -> the project modules it imports (`pkg.sub` for `pkg/sub/__init__.py`)."""
  files = {}
  for top in TOPS:
    for path in (root / top).rglob("*.py"):
      name = ".".join(path.relative_to(root).with_suffix("").parts)
      files[name.removesuffix(".__init__")] = path

  def resolve(name: str) -> str | None:
    while name and name not in files:
      name = name.rpartition(".")[0]
    return name or None

  graph = collections.defaultdict(set)
  for module, path in files.items():
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
      else:
        continue
      for target in filter(None, map(resolve, names)):
        # A module importing its own package's __init__ is not a cycle of ideas.
        if target != module and not module.startswith(target + "."):
          graph[module].add(target)
    graph.setdefault(module, set())
  return dict(graph)


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
  """The same graph between packages (first two name parts: microexp.data, tfds_casme2.casme2)."""
  pkg = lambda m: ".".join(m.split(".")[:2])
  out = collections.defaultdict(set)
  for module, targets in graph.items():
    out[pkg(module)] |= {pkg(t) for t in targets if pkg(t) != pkg(module)}
  return dict(out)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """Strongly connected components with more than one node (Tarjan), each sorted."""
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in graph.get(v, ()):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        found.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return found


def test_the_walker_finds_a_cycle():
  assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
  assert package_graph({"x.p.m": {"x.q.n"}, "x.q.n": {"x.p.k"}}) == {"x.p": {"x.q"},
                                                                     "x.q": {"x.p"}}


def test_the_walker_sees_the_project():
  graph = import_graph()
  assert "microexp.loaders" in graph["microexp.train.engine"]  # a lazy import counts too
  assert "tfds_casme2.casme2.casme2_dataset_builder" in graph["microexp.loaders.casme2"]


def test_no_package_cycle():
  assert cycles(package_graph(import_graph())) == []


def test_no_module_cycle():
  assert cycles(import_graph()) == []


def test_the_layer_check_sees_an_upward_import():
  assert layer_rank("microexp.vision.flow") == 1 and layer_rank("microexp.registry") == 0
  assert layer_rank("tfds_casme2.casme2.casme2_dataset_builder") == 4
  assert upward_imports({"microexp.data.smic": {"microexp.vision.spotting", "microexp.train.x"},
                         "microexp.train.x": {"microexp.data.smic"}}) == [
      "microexp.data.smic (rank 2) -> microexp.train.x (rank 7)"]


def test_every_import_points_down_the_layers():
  assert upward_imports(import_graph()) == []


def test_every_module_has_a_layer():
  ranks = {module: layer_rank(module) for module in import_graph()}  # raises for a missing layer
  assert ranks["microexp.predict.run"] == 8 and ranks["configs.base"] == 10
