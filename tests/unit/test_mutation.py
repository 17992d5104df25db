"""The mutation check (tests/mutation.py) still points at the write path, and its mutants are the changes it says."""

from __future__ import annotations

import ast

from tests import mutation

SOURCE = '''\
class Store:
    def promote(self, name, expected, deadline):
        """Docstring: never mutated."""
        if name == expected and not self.lost:
            self.move(name, deadline + 1)
            logger.info("moved")
            return True
        return None


def elsewhere(x):
    return x == 2
'''


def test_every_target_is_found_in_the_layer() -> None:
    """A function renamed or moved without updating ``TARGETS`` fails here, not silently in ``make mutation``."""
    found, missing = mutation.find_targets(mutation.ROOT)

    assert missing == []
    assert len(found) == sum(map(len, mutation.TARGETS.values()))


def test_mutants_change_one_thing_inside_the_target_only() -> None:
    (function,) = [node for name, node in mutation.functions_in(ast.parse(SOURCE)) if name == "Store.promote"]
    mutants = list(mutation.mutants_of("store.py", "Store.promote", function, SOURCE))
    changes = {(m.line, m.operator): m.diff(SOURCE).splitlines()[-1] for m in mutants}

    assert changes == {
        (4, "Eq->NotEq"): "+        if (name != expected) and not self.lost:",
        (4, "And->Or"): "+        if (name == expected or not self.lost):",
        (4, "drop not"): "+        if name == expected and (self.lost):",
        (5, "delete call"): "+            pass",
        (5, "Add->Sub"): "+            self.move(name, (deadline - 1))",
        (5, "1+1"): "+            self.move(name, deadline + (2))",
        (5, "1-1"): "+            self.move(name, deadline + (0))",
        (7, "return None"): "+            return None",
        (7, "True->False"): "+            return (False)",
    }, "log lines, docstrings, `return None` and other functions are left alone"
    for mutant in mutants:
        compile(mutant.source, "store.py", "exec")
