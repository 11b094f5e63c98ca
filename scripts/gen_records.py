#!/usr/bin/env python3
"""Write N realistic source records of the Nanchang penalty example (JSON lines) to stdout.

Usage: scripts/gen_records.py N [--defect-every K] [--start S] [--persons-every P]
Every K-th record (default 0: none) carries a wrong target credit-code check character.
Every P-th record (default: the environment's GEN_PERSONS_EVERY, else 0: none) is a penalty on a
natural person with a valid resident ID number (personal data: `[personal_data]` seals it).
Records are ~1 KB each, with distinct case numbers so each becomes its own case.
"""
import json
import sys


def record(i: int, defective: bool = False) -> dict:
    """Record number `i`; `defective`: with a wrong target credit-code check character."""
    return {
        "ajbh": f"NCSJ-CF-2024-{i:07d}",
        "ajmc": f"南昌某商贸有限公司未按规定明码标价案（{i}）",
        "cfjdswh": f"洪市监价罚〔2024〕{i}号",
        "jgmc": "南昌市市场监督管理局",
        "jgdm": "11360100014523152U",
        "xzqh": "360100",
        "jgsxbm": "36010000100012",
        "xdrmc": "南昌赣江商贸有限公司",
        "xdrlb": "法人及非法人组织",
        "xdrzjlx": "统一社会信用代码",
        "xdrzjhm": "91360102MA35G7K86B" if defective else "91360102MA35G7K86A",
        "fddbr": "王建国",
        "xdrxzqh": "360102",
        "xdrdz": "江西省南昌市东湖区八一大道100号",
        "cfyj": "《中华人民共和国价格法》第十三条第一款、第四十二条",
        "wfxwlx": "未按规定明码标价",
        "wfss": "执法人员检查发现当事人经营场所内销售的32种商品未按规定标明价格。",
        "cflb": "罚款、警告",
        "cfnr": "警告，并处罚款人民币2000元",
        "fkje": "0.2",
        "cfcx": "普通程序",
        "sftz": "否",
        "sffzsh": "是",
        "sfjttl": "否",
        "ajly": "02",
        "larq": "2024/1/5",
        "jdrq": "2024年1月22日",
        "cfyxq": "2024-07-21",
        "gsjzq": "2024-04-22",
        "jarq": "2024-02-08",
        "gdrq": "20240220",
        "cljz": "江西省市场监管行政处罚裁量基准 价格类第3项",
        "zfry": [{"xm": "张三", "zfzh": "36010020001"}, {"xm": "李四", "zfzh": "36010020002"}],
        "cd_operation": "i",
        "cd_time": "1705900000000",
    }


WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
CHECK = "10X98765432"


def resident_id(i: int) -> str:
    """A valid GB 11643 number for person `i` (Donghu district, born in 1960-1999)."""
    first17 = f"360102{1960 + i % 40}{1 + i % 12:02d}{1 + i % 28:02d}{i % 1000:03d}"
    return first17 + CHECK[sum(int(d) * w for d, w in zip(first17, WEIGHTS)) % 11]


def person(rec: dict, i: int) -> dict:
    """`rec` as a penalty on a natural person."""
    rec.update({"xdrmc": "王某某", "xdrlb": "自然人", "xdrzjlx": "身份证", "xdrzjhm": resident_id(i)})
    rec.pop("fddbr", None)
    return rec


def main() -> None:
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    n = int(args[0])
    defect_every = int(args[args.index("--defect-every") + 1]) if "--defect-every" in args else 0
    start = int(args[args.index("--start") + 1]) if "--start" in args else 1
    import os
    persons_every = int(args[args.index("--persons-every") + 1]) if "--persons-every" in args else int(
        os.environ.get("GEN_PERSONS_EVERY", "0")
    )
    out = sys.stdout
    for i in range(start, start + n):
        rec = record(i, bool(defect_every) and i % defect_every == 0)
        if persons_every and i % persons_every == 0:
            rec = person(rec, i)
        out.write(json.dumps(rec, ensure_ascii=False))
        out.write("\n")


if __name__ == "__main__":
    main()
