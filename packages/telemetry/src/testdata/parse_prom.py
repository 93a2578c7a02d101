"""Parse Prometheus text exposition from stdin with the Prometheus project's own Python client
parser (Debian python3-prometheus-client) and print the families as JSON (label order kept)."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

families = []
for f in text_string_to_metric_families(sys.stdin.read()):
    families.append({
        "name": f.name,
        "type": f.type,
        "help": f.documentation,
        "samples": [
            {"name": s.name, "labels": [[k, v] for k, v in s.labels.items()], "value": s.value}
            for s in f.samples
        ],
    })
json.dump(families, sys.stdout)
