"""The conformance zoo (built once per run) and the matrix of results it prints.

Set PERSONASCOPE_COMPAT_MD=docs/compatibility.md to also write the matrix there.
"""

import os
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from app.engine.registry import Registry
from tests.conformance.zoo import FAMILIES, SAE_KINDS, build_zoo

# (row, check) -> list of outcomes: "ok", "refused" (a 4xx, as documented) or "FAIL"
RESULTS: dict[tuple[str, str], list[str]] = defaultdict(list)
MODEL_CHECKS = ("one BOS", "end-of-turn stops", "hooks probed")
PAIR_CHECKS = ("activations", "add = reference", "clamp on target", "ablate zeroes")


def record(row: str, check: str, outcome: str) -> None:
    RESULTS[(row, check)].append(outcome)


@pytest.fixture(scope="session")
def zoo_config(tmp_path_factory) -> Path:
    return build_zoo(tmp_path_factory.mktemp("zoo"))


@pytest.fixture(scope="session")
def zoo(zoo_config) -> Registry:
    return Registry.from_file(zoo_config)


@pytest.fixture(scope="session")
def zoo_stops(zoo_config) -> dict:
    return yaml.safe_load((zoo_config.parent / "stops.yaml").read_text())


def _cell(outcomes: list[str]) -> str:
    if not outcomes:
        return "–"
    if "FAIL" in outcomes:
        return f"FAIL {outcomes.count('FAIL')}/{len(outcomes)}"
    if all(o == "refused" for o in outcomes):
        return "4xx (refused)"
    refused = outcomes.count("refused")
    return f"ok {outcomes.count('ok')}" + (f", 4xx {refused}" if refused else "")


def matrix() -> str:
    families = [f.name for f in FAMILIES] + ["llama-lora"]
    lines = ["Model families × checks (pairs: every SAE kind on that model)", ""]
    checks = MODEL_CHECKS + PAIR_CHECKS
    lines.append("| model | " + " | ".join(checks) + " |")
    lines.append("|---" * (len(checks) + 1) + "|")
    for fam in families:
        cells = [_cell(RESULTS.get((fam, c), [])) for c in checks]
        lines.append(f"| {fam} | " + " | ".join(cells) + " |")
    lines += ["", "SAE architectures × checks (over every model family)", ""]
    lines.append("| SAE | " + " | ".join(PAIR_CHECKS) + " |")
    lines.append("|---" * (len(PAIR_CHECKS) + 1) + "|")
    for kind in SAE_KINDS:
        cells = [_cell(RESULTS.get((f"sae:{kind}", c), [])) for c in PAIR_CHECKS]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not RESULTS:
        return
    text = matrix()
    terminalreporter.write_sep("=", "conformance matrix")
    terminalreporter.write_line(text)
    target = os.environ.get("PERSONASCOPE_COMPAT_MD")
    if target:
        path = Path(target)
        head, marker = "", "<!-- matrix -->"
        if path.exists() and marker in path.read_text():
            head = path.read_text().split(marker)[0]
        path.write_text(f"{head}{marker}\n{text}\n")


@pytest.fixture(autouse=True)
def one_thread():
    """The zoo's matrices are tiny: one thread beats two fighting over shared cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
