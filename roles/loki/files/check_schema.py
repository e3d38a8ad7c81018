"""Refuse schema periods that rewrite history: every period of the live config must stay,
unchanged and in order; new ones may only be appended.
Usage: python3 check_schema.py LIVE.json NEW.json (LIVE is missing on a first deploy)."""
import json
import sys


def periods(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return []


live, new = periods(sys.argv[1]), periods(sys.argv[2])
for index, period in enumerate(live):
    if index >= len(new):
        sys.exit(f"schema period from {period.get('from')} was removed: deployed periods must stay, "
                 "or Loki can no longer read the logs written under them")
    if new[index] != period:
        sys.exit(f"schema period from {period.get('from')} was edited (deployed {json.dumps(period)}, "
                 f"now {json.dumps(new[index])}): append a new period with a future 'from' date instead")
