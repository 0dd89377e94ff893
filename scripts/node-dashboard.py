#!/usr/bin/env python3
"""Writes deploy/grafana/dashboards/usher-node.json, the single-node dashboard, from the fleet
dashboard (usher-fleet.json): the same panels, each query narrowed to the node picked in an
`instance` variable. The fleet dashboard is the one to edit; run this afterwards
(`python3 scripts/node-dashboard.py`). `--check` exits 1 if usher-node.json is out of date
(tests/observability.rs runs it)."""

import copy
import json
import re
import sys
from pathlib import Path

DASHBOARDS = Path(__file__).resolve().parent.parent / "deploy/grafana/dashboards"
NODE = '{instance=~"$instance"}'
METRIC = re.compile(r'\b(usher_[a-z0-9_]+|up)\b(\{)?')


def narrow(expr: str) -> str:
    """Adds the instance matcher to every selector of `expr`."""

    def one(m: re.Match) -> str:
        name, brace = m.group(1), m.group(2)
        if brace:
            return f'{name}{{instance=~"$instance", '
        return name + NODE

    return METRIC.sub(one, expr)


def node_dashboard(fleet: dict) -> dict:
    node = copy.deepcopy(fleet)
    node["uid"] = "usher-node"
    node["title"] = "usher node"
    node["description"] = "One usher node (pick it in `instance`): " + fleet["description"].split(": ", 1)[-1]
    variables = node["templating"]["list"]
    variables.insert(
        1,
        {
            "name": "instance",
            "label": "node",
            "type": "query",
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "query": {"query": "label_values(usher_ready, instance)", "refId": "instances"},
            "definition": "label_values(usher_ready, instance)",
            "refresh": 2,
            "includeAll": False,
            "multi": False,
            "sort": 1,
        },
    )
    for panel in node["panels"]:
        for target in panel.get("targets", []):
            target["expr"] = narrow(target["expr"])
    return node


def main() -> int:
    fleet = json.loads((DASHBOARDS / "usher-fleet.json").read_text())
    text = json.dumps(node_dashboard(fleet), indent=2) + "\n"
    path = DASHBOARDS / "usher-node.json"
    if "--check" in sys.argv:
        if not path.exists() or path.read_text() != text:
            print(f"{path} is out of date: run python3 scripts/node-dashboard.py", file=sys.stderr)
            return 1
        return 0
    path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
