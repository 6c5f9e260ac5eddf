"""Parse Prometheus text exposition from stdin with the reference parser (prometheus_client) and
print every sample as JSON lines: {"name", "type", "labels", "value"}. Exits non-zero on any
parse error, so the host's output is checked by the same code Prometheus' Python client uses."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        print(json.dumps({"name": s.name, "type": family.type, "labels": s.labels, "value": s.value}))
