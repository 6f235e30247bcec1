#!/usr/bin/python3
"""Query a JSON-lines log (one event object per line, key "message").

  jsonlog.py field FILE MESSAGE_REGEX FIELD [N]   FIELD of the Nth (1st) match
  jsonlog.py count FILE MESSAGE_REGEX [FIELD VALUE]
  jsonlog.py where FILE MESSAGE_REGEX FIELD VALUE OUT

A line matches when its "message" matches the regex (re.search) and, where
given, its FIELD equals VALUE. Values are printed, and compared, in JSON form
for non-strings (null, true, 5, 0.427) and as-is for strings. Lines that are
not JSON objects (e.g. a library's own output) are skipped. Prints "" (field,
where) or 0 (count) when nothing matches; exits 2 on a usage error.
"""
import json
import re
import sys


def text(v):
    return v if isinstance(v, str) else json.dumps(v)


def events(path, pattern):
    rx = re.compile(pattern)
    with open(path, errors="replace") as f:
        for line in f:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if isinstance(ev, dict) and rx.search(str(ev.get("message", ""))):
                yield ev


def main(argv):
    if len(argv) < 3 or argv[0] not in ("field", "count", "where"):
        sys.stderr.write(__doc__)
        return 2
    cmd, path, pattern, rest = argv[0], argv[1], argv[2], argv[3:]
    if cmd == "field" and len(rest) in (1, 2):
        want, n = (int(rest[1]) if len(rest) == 2 else 1), 0
        for ev in events(path, pattern):
            if rest[0] in ev:
                n += 1
                if n == want:
                    print(text(ev[rest[0]]))
                    break
        return 0
    if cmd == "count" and len(rest) in (0, 2):
        print(sum(1 for ev in events(path, pattern)
                  if not rest or (rest[0] in ev and text(ev[rest[0]]) == rest[1])))
        return 0
    if cmd == "where" and len(rest) == 3:
        for ev in events(path, pattern):
            if rest[0] in ev and text(ev[rest[0]]) == rest[1]:
                print(text(ev.get(rest[2], "")))
                break
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
