# SPDX-License-Identifier: GPL-2.0
"""A real program's work for procft's tests: JSON, zlib and SHA-256 over
a growing data set; prints one deterministic line per round."""
import hashlib
import json
import sys
import zlib

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 40
data = [{"id": i, "name": "item%d" % i, "vals": [i * j % 97 for j in range(24)]}
        for i in range(400)]
for r in range(rounds):
    text = json.dumps(data, sort_keys=True).encode()
    packed = zlib.compress(text, 6)
    back = json.loads(zlib.decompress(packed))
    digest = hashlib.sha256(json.dumps(back, sort_keys=True).encode()).hexdigest()
    print(r, len(text), len(packed), digest, flush=True)
    data[r % len(data)]["vals"].append(r)
