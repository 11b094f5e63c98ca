#!/usr/bin/env python3
"""Write N inspection records of the 互联网+监管 behaviour example (JSON lines) to stdout, for
measuring the joint-inspection index: four agencies, natural-person targets with valid ID numbers,
each target inspected about twice in 2024 on random days (so a few percent of targets are
inspected by two agencies within a week: joint-inspection candidates).

Usage: scripts/gen_inspections.py N [--targets T] [--seed S]
T distinct targets (default N/2); S the random seed (default 1).
"""
import json
import random
import sys
from datetime import date, timedelta

AGENCIES = [
    ("11360100014523152U", "南昌市市场监督管理局", "360100"),
    ("113604000145872014", "九江市生态环境局", "360400"),
    ("11360700014628376B", "赣州市市场监督管理局", "360700"),
    ("11361100014735198A", "上饶市生态环境局", "361100"),
]
WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
CHECK = "10X98765432"


def id_number(n: int) -> str:
    """A valid 18-digit resident ID number, different for every n below 365 * 999 * 40."""
    born = date(1960, 1, 1) + timedelta(days=(n // 999) % (365 * 40))
    body = f"360429{born:%Y%m%d}{n % 999 + 1:03d}"
    return body + CHECK[sum(int(c) * w for c, w in zip(body, WEIGHTS)) % 11]


def record(i: int, target: int, rng: random.Random) -> dict:
    code, name, area = AGENCIES[rng.randrange(len(AGENCIES))]
    day = date(2024, 1, 1) + timedelta(days=rng.randrange(365))
    key = f"GEN-JC-{i:08d}"
    return {
        "behaviour_type": "check",
        "supervise_item_implement_code": "36020000001001",
        "supervise_item_check_icode": f"{code}102001",
        "implement_institution": name,
        "implement_institution_code": code,
        "area_number": area,
        "administrative_cp": f"检查对象{target}",
        "administrative_cp_na": "自然人",
        "administrative_cp_ce_type": "111",
        "administrative_cp_ui_code": id_number(target),
        "address_operating": "江西省九江市湖口县双钟镇石钟山路5号",
        "check_action_code": key,
        "check_action_name": f"检查对象{target}投诉核查（{i}）",
        "check_form": "针对性检查",
        "check_type": "监督检查",
        "check_result": "E",
        "check_date": f"{day:%Y-%m-%d} 10:00:00",
        "check_personnel": ["王五", "赵六"],
        "check_personnel_code": ["36001005", "36001006"],
        "supervise_object_type": "自然人",
        "supervise_object": f"检查对象{target}",
        "case_source": "投诉举报",
        "check_mode": "实地检查",
        "cd_operation": "i",
        "cd_time": f"{day:%Y-%m-%d} 18:30:00",
        "cd_batch": "2024061200001",
        "cd_source": "360000",
        "cd_id": key,
        "record_unique_identity": key,
    }


def main() -> None:
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    n = int(args[0])
    targets = int(args[args.index("--targets") + 1]) if "--targets" in args else max(1, n // 2)
    rng = random.Random(int(args[args.index("--seed") + 1]) if "--seed" in args else 1)
    out = sys.stdout
    for i in range(1, n + 1):
        out.write(json.dumps(record(i, rng.randrange(targets), rng), ensure_ascii=False))
        out.write("\n")


if __name__ == "__main__":
    main()
