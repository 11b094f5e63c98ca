#!/usr/bin/env python3
"""Write N credit codes (default 1,000,000), one a line, for timing `gateway check uscc`.

Deterministic (seed 42): 60 % valid and normalised, 10 % valid after normalisation (spaces,
hyphen, lower case), 15 % wrong check character, 10 % wrong length, 5 % a letter O (not in the
GB 32100 alphabet). Usage: python3 normalizer/benches/gen_credit_codes.py [N] > codes.txt
"""
import random, sys
ALPHA = "0123456789ABCDEFGHJKLMNPQRTUWXY"
W = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
OW = [3, 7, 9, 10, 5, 8, 4, 2]
REGIONS = ["360100", "360102", "360103", "360111", "110000", "110105", "440300", "320100", "100000"]
def org_check(body):
    s = sum((int(c) if c.isdigit() else ord(c) - 55) * w for c, w in zip(body, OW))
    d = 11 - s % 11
    return "X" if d == 10 else "0" if d == 11 else str(d)
def uscc(r):
    body = "".join(r.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(8))
    first = r.choice(["91", "92", "93", "11", "12", "51", "52"]) + r.choice(REGIONS) + body + org_check(body)
    if first[16] not in ALPHA:
        return None
    s = sum(ALPHA.index(c) * w for c, w in zip(first, W))
    return first + ALPHA[(31 - s % 31) % 31]
r = random.Random(42)
n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
out = []
while len(out) < n:
    c = uscc(r)
    if c is None:
        continue
    k = r.random()
    if k < 0.6:
        out.append(c)                       # valid
    elif k < 0.7:
        out.append(c[:4] + " " + c[4:8] + "-" + c[8:].lower())  # valid after normalisation
    elif k < 0.85:
        out.append(c[:17] + ALPHA[(ALPHA.index(c[17]) + 1) % 31])  # wrong check character
    elif k < 0.95:
        out.append(c[:10])                  # wrong length
    else:
        out.append(c[:5] + "O" + c[6:])     # character not in the alphabet
sys.stdout.write("\n".join(out) + "\n")
