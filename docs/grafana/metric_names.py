#!/usr/bin/env python3
"""Prints every metric name the Grafana dashboard's PromQL uses, one per line,
sorted, without duplicates.

    docs/grafana/metric_names.py [DASHBOARD.json]

The default dashboard is lopower-dashboard.json next to this script. The
names come from every panel target's `expr` (rows' nested panels included)
and from the template variables' queries (`label_values(METRIC, label)` and
`query_result(EXPR)`), so the list can be compared with a real scrape.
"""

import json
import pathlib
import re
import sys

# Words of PromQL that look like names but are not metrics.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
            "and", "or", "unless", "offset", "inf", "nan", "atan2"}

NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names one PromQL expression selects."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers (Grafana's $variables live here too)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    names = set()
    for m in NAME.finditer(text):
        before = text[m.start() - 1] if m.start() > 0 else ""
        if before == "$" or before.isdigit() or before == ".":
            continue  # a Grafana variable, or the exponent/unit of a number
        if text[m.end():].lstrip().startswith("("):
            continue  # a function or an aggregation
        if m.group(0).lower() in KEYWORDS:
            continue
        names.add(m.group(0))
    return names


def variable_names(query) -> set[str]:
    """The metric names a template variable's query uses."""
    if isinstance(query, dict):
        query = query.get("query", "")
    if not isinstance(query, str):
        return set()
    q = query.strip()
    m = re.fullmatch(r"label_values\(\s*(.*?)\s*,\s*[A-Za-z_][A-Za-z0-9_]*\s*\)", q, re.S)
    if m:
        return metric_names(m.group(1))
    m = re.fullmatch(r"query_result\((.*)\)", q, re.S)
    if m:
        return metric_names(m.group(1))
    return set()  # label_values(label), label_names(), metrics(regex): no metric selected


def panels(items):
    for p in items or []:
        yield p
        yield from panels(p.get("panels"))


def main() -> int:
    path = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).with_name("lopower-dashboard.json")
    dashboard = json.loads(path.read_text())
    names = set()
    for p in panels(dashboard.get("panels")):
        for t in p.get("targets") or []:
            if t.get("expr"):
                names |= metric_names(t["expr"])
    for v in (dashboard.get("templating") or {}).get("list") or []:
        names |= variable_names(v.get("query"))
    for n in sorted(names):
        print(n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
